using System;
using Microsoft.Extensions.Logging;
using Virtio.Core.Queues;

namespace Virtio.VhostUser;

/// <summary>Virtio.VhostUser's log messages (compile-time generated).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "vhost-user: listening on {SocketPath} for a device of type {DeviceId} (virtio 1.2 §5) with {QueueCount} queue(s)")]
    public static partial void Listening(ILogger logger, string socketPath, ushort deviceId, int queueCount);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Information, Message = "vhost-user: front end {Connection} connected")]
    public static partial void Connected(ILogger logger, int connection);

    [LoggerMessage(EventId = 4030, Level = LogLevel.Warning, Message = "vhost-user: front end {Connection} refused: its user id {UserId} (SO_PEERCRED) is not allowed")]
    public static partial void PeerRefused(ILogger logger, int connection, string userId);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Information, Message = "vhost-user: front end {Connection} disconnected; rings stopped, device state kept for a reconnect")]
    public static partial void Disconnected(ILogger logger, int connection);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "vhost-user: closing connection {Connection}: {Reason}")]
    public static partial void ProtocolError(ILogger logger, int connection, string reason);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Debug, Message = "vhost-user: {Request} size {Size} fds {FdCount} flags 0x{Flags:x}")]
    public static partial void Request(ILogger logger, Protocol.VhostUserRequest request, int size, int fdCount, uint flags);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Debug, Message = "vhost-user: ring {Index} started (size {Size}, avail {NextAvail}, used {NextUsed})")]
    public static partial void RingStarted(ILogger logger, ushort index, ushort size, ushort nextAvail, ushort nextUsed);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Debug, Message = "vhost-user: ring {Index} stopped at avail {NextAvail}")]
    public static partial void RingStopped(ILogger logger, ushort index, ushort nextAvail);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Error, Message = "vhost-user: ring {Index} still has {InFlight} request(s) in flight after {Timeout}; stopping it anyway (they keep their memory mapped, and their completions will be dropped)")]
    public static partial void StopTimedOut(ILogger logger, ushort index, int inFlight, TimeSpan timeout);

    [LoggerMessage(EventId = 4009, Level = LogLevel.Error, Message = "vhost-user: connection {Connection} failed")]
    public static partial void ConnectionFailed(ILogger logger, int connection, Exception exception);

    [LoggerMessage(EventId = 4010, Level = LogLevel.Information, Message = "vhost-user: features 0x{Features:x} negotiated (protocol features 0x{ProtocolFeatures:x})")]
    public static partial void FeaturesNegotiated(ILogger logger, ulong features, ulong protocolFeatures);

    [LoggerMessage(EventId = 4011, Level = LogLevel.Information, Message = "vhost-user: memory table has {Count} region(s), {Bytes} bytes")]
    public static partial void MemoryTable(ILogger logger, int count, ulong bytes);

    [LoggerMessage(EventId = 4012, Level = LogLevel.Information, Message = "vhost-user: ring {Index}: resubmitting {Count} request(s) left in flight by an earlier back end (from used index {UsedIdx})")]
    public static partial void Resubmitting(ILogger logger, ushort index, int count, ushort usedIdx);

    [LoggerMessage(EventId = 4013, Level = LogLevel.Information, Message = "vhost-user: in-flight region {How}: {QueueCount} queue(s) of {QueueSize} entries")]
    public static partial void InFlightRegion(ILogger logger, string how, ushort queueCount, ushort queueSize);

    [LoggerMessage(EventId = 4014, Level = LogLevel.Warning, Message = "vhost-user: ring {Index} (size {Num}) does not fit the in-flight region ({QueueCount} queues of {QueueSize}): its requests are not tracked")]
    public static partial void RingNotTracked(ILogger logger, ushort index, ushort num, ushort queueCount, ushort queueSize);

    [LoggerMessage(EventId = 4015, Level = LogLevel.Error, Message = "vhost-user: ring {Index}: the in-flight region's heads were refused ({Error}); the device needs a reset")]
    public static partial void ResubmitRefused(ILogger logger, ushort index, QueueError error);

    [LoggerMessage(EventId = 4016, Level = LogLevel.Information, Message = "vhost-user: {SocketPath} now belongs to another server; left in place")]
    public static partial void SocketReplaced(ILogger logger, string socketPath);

    [LoggerMessage(EventId = 4017, Level = LogLevel.Warning, Message = "vhost-user: ring {Index}: its I/O thread did not come round within {Timeout} ({Work}); going on without it")]
    public static partial void IoThreadTimedOut(ILogger logger, ushort index, string work, TimeSpan timeout);

    [LoggerMessage(EventId = 4018, Level = LogLevel.Warning, Message = "vhost-user: memory table generation {Number} retired with {InFlight} request(s) still in flight; its mappings stay until they complete (for ever if they never do)")]
    public static partial void GenerationRetiredInFlight(ILogger logger, long number, long inFlight);

    [LoggerMessage(EventId = 4019, Level = LogLevel.Debug, Message = "vhost-user: memory table generation {Number} released, {Unmapped} region(s) unmapped")]
    public static partial void GenerationReleased(ILogger logger, long number, int unmapped);

    [LoggerMessage(EventId = 4021, Level = LogLevel.Debug, Message = "vhost-user: ring {Index}: waiting for {InFlight} request(s) to return before it stops")]
    public static partial void DrainWaiting(ILogger logger, ushort index, int inFlight);

    [LoggerMessage(EventId = 4020, Level = LogLevel.Warning, Message = "vhost-user: ring {Index} head {Head} was popped again after a reset forgot it; the memory table generation {Number} it pinned stays mapped (further ones not logged)")]
    public static partial void PinForgotten(ILogger logger, ushort index, ushort head, long number);

    [LoggerMessage(EventId = 4034, Level = LogLevel.Warning, Message = "vhost-user: ring {Index}: the in-flight region's packed state does not hold together ({Why}); started afresh at the front end's base, requests an earlier back end left in flight on it are lost")]
    public static partial void PackedRegionRefused(ILogger logger, ushort index, string why);

    [LoggerMessage(EventId = 4031, Level = LogLevel.Information, Message = "vhost-user: back-end request channel set (SET_BACKEND_REQ_FD): configuration changes are sent to the front end")]
    public static partial void BackendChannelSet(ILogger logger);

    [LoggerMessage(EventId = 4032, Level = LogLevel.Information, Message = "vhost-user: configuration change (CONFIG_CHANGE_MSG) sent to the front end")]
    public static partial void ConfigChangeSent(ILogger logger);

    [LoggerMessage(EventId = 4033, Level = LogLevel.Warning, Message = "vhost-user: configuration change not sent to the front end ({Why}); channel broken: {Broken}")]
    public static partial void ConfigChangeDropped(ILogger logger, string why, bool broken);

    [LoggerMessage(EventId = 4060, Level = LogLevel.Information, Message = "vhost-user: device stopped and reset on {Request}: rings drained, features to be negotiated again (each ring keeps its position for GET_VRING_BASE)")]
    public static partial void DeviceStopped(ILogger logger, Protocol.VhostUserRequest request);

    [LoggerMessage(EventId = 4061, Level = LogLevel.Debug, Message = "vhost-user: driver status 0x{Status:x2} (SET_STATUS)")]
    public static partial void StatusSet(ILogger logger, byte status);

    [LoggerMessage(EventId = 4062, Level = LogLevel.Warning, Message = "vhost-user: the front end acknowledged a configuration change with status {Status} (it failed to handle it)")]
    public static partial void ConfigChangeRefused(ILogger logger, ulong status);

    [LoggerMessage(EventId = 4063, Level = LogLevel.Information, Message = "vhost-user: device reset on RESET_DEVICE: rings drained, features to be negotiated again, rings' configuration and the in-flight region forgotten")]
    public static partial void DeviceReset(ILogger logger);
}
