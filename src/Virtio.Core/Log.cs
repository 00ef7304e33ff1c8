using System;
using Microsoft.Extensions.Logging;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;

namespace Virtio.Core;

/// <summary>Virtio.Core's log messages (compile-time generated, no allocation when disabled).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Debug, Message = "Virtqueue {QueueIndex} stopped: the driver broke a ring rule ({Error})")]
    public static partial void QueueBroken(ILogger logger, ushort queueIndex, QueueError error);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Error, Message = "Virtqueue {QueueIndex}: the device returned head {HeadIndex}, which is not in flight; ignored")]
    public static partial void UsedHeadNotInFlight(ILogger logger, ushort queueIndex, ushort headIndex);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "Virtqueue {QueueIndex}: dropped the completion of head {HeadIndex}, popped before the queue was stopped or restored; further ones are counted (virtio.queue.completions.stale), not logged")]
    public static partial void StaleCompletionDropped(ILogger logger, ushort queueIndex, ushort headIndex);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Device {DeviceId} needs reset: {Reason}")]
    public static partial void NeedsReset(ILogger logger, ushort deviceId, string reason);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Error, Message = "Device {DeviceId}: processing queue {QueueIndex} threw; the queue is broken (DEVICE_NEEDS_RESET)")]
    public static partial void ProcessingThrew(ILogger logger, ushort deviceId, ushort queueIndex, Exception exception);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Information, Message = "Device {DeviceId}: FEATURES_OK refused, the driver asked for 0x{Requested:x16} of 0x{Offered:x16} offered")]
    public static partial void FeaturesRefused(ILogger logger, ushort deviceId, ulong requested, ulong offered);

    [LoggerMessage(EventId = 1103, Level = LogLevel.Warning, Message = "Device {DeviceId}: status write 0x{Status:x2} ignored: {Reason}")]
    public static partial void StatusIgnored(ILogger logger, ushort deviceId, byte status, string reason);

    [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "Device {DeviceId}: queue {QueueIndex} could not be started ({Error})")]
    public static partial void QueueActivationFailed(ILogger logger, ushort deviceId, ushort queueIndex, QueueError error);

    [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "virtio-mmio: ignored {Kind} at offset 0x{Offset:x3} ({Size} bytes); further ones of this kind are not logged")]
    public static partial void IgnoredAccess(ILogger logger, string kind, ulong offset, int size);

    [LoggerMessage(EventId = 1301, Level = LogLevel.Information, Message = "Queue {QueueIndex}: host notifier refused ({Reason}); kicks are processed synchronously")]
    public static partial void NotifierRefused(ILogger logger, ushort queueIndex, string reason);

    [LoggerMessage(EventId = 1302, Level = LogLevel.Debug, Message = "Queue {QueueIndex}: host notifier {From} -> {To}")]
    public static partial void NotifierTransition(ILogger logger, ushort queueIndex, HostNotifierState from, HostNotifierState to);

    [LoggerMessage(EventId = 1303, Level = LogLevel.Error, Message = "Queue {QueueIndex}: I/O thread {Thread} did not run a notifier transition within the timeout")]
    public static partial void NotifierTransitionTimedOut(ILogger logger, ushort queueIndex, string thread);

    [LoggerMessage(EventId = 1501, Level = LogLevel.Warning, Message = "virtio-pci: ignored {Kind} at {Region} offset 0x{Offset:x} ({Size} bytes); further ones of this kind are not logged")]
    public static partial void PciIgnoredAccess(ILogger logger, string kind, string region, ulong offset, int size);

    [LoggerMessage(EventId = 1502, Level = LogLevel.Debug, Message = "virtio-pci: BAR {Index} now decodes at 0x{Address:x} ({Size} bytes); 0 with decoding off")]
    public static partial void PciBarMoved(ILogger logger, int index, ulong address, ulong size);

    [LoggerMessage(EventId = 1503, Level = LogLevel.Debug, Message = "virtio-pci: MSI-X {State}, Function Mask {FunctionMask}, Bus Master {BusMaster}")]
    public static partial void PciMsiXControl(ILogger logger, string state, bool functionMask, bool busMaster);
}
