using System;
using Microsoft.Extensions.Logging;

namespace Virtio.Kvm;

/// <summary>Virtio.Kvm's log messages (compile-time generated, no allocation when disabled); event ids 5001-5019.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "MSI-X vector {Vector} (GSI {Gsi}): message address 0x{Address:x} data 0x{Data:x} refused: {Reason}; the vector delivers nothing until the guest programs a valid one; further refusals of this vector are counted, not logged")]
    public static partial void MsiMessageRefused(ILogger logger, ushort vector, uint gsi, ulong address, uint data, string reason);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Error, Message = "MSI-X vector {Vector} (GSI {Gsi}): installing its route failed; the vector delivers nothing until the guest reprograms it")]
    public static partial void MsiRouteFailed(ILogger logger, ushort vector, uint gsi, Exception exception);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "MSI-X: vector {Vector} configured, but only {Count} vectors have irqfds; ignored; further ones are not logged")]
    public static partial void MsiVectorOutOfRange(ILogger logger, ushort vector, int count);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Debug, Message = "MSI-X vector {Vector}: GSI {Gsi} routed to address 0x{Address:x} data 0x{Data:x}")]
    public static partial void MsiRouted(ILogger logger, ushort vector, uint gsi, ulong address, uint data);
}
