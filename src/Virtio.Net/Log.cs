using Microsoft.Extensions.Logging;

namespace Virtio.Net;

/// <summary>The device's log messages (event IDs 3000-3099).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "Queue {QueueIndex}: transmit frame dropped ({Reason})")]
    public static partial void TxDropped(ILogger logger, ushort queueIndex, NetDropReason reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Debug, Message = "Queue {QueueIndex}: receive frame of {Length} bytes dropped ({Reason})")]
    public static partial void RxDropped(ILogger logger, ushort queueIndex, int length, NetDropReason reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Debug, Message = "Control command class {Class} command {Command} answered {Ack}")]
    public static partial void ControlCommand(ILogger logger, byte @class, byte command, byte ack);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Link {State}")]
    public static partial void LinkChanged(ILogger logger, string state);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "Features {Requested:X} refused: {Reason}")]
    public static partial void FeatureDependency(ILogger logger, ulong requested, string reason);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Debug, Message = "Queue {QueueIndex}: control chain without an ack byte, returned unanswered")]
    public static partial void ControlWithoutAck(ILogger logger, ushort queueIndex);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "Queue {QueueIndex}: a receive chain of more than {Bound} buffers was given back unused (NetDeviceOptions.MaxRxChainBuffers); further ones are only counted")]
    public static partial void RxChainRefused(ILogger logger, ushort queueIndex, int bound);
}
