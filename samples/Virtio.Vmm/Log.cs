using System;
using Microsoft.Extensions.Logging;

namespace Virtio.Vmm;

/// <summary>The VMM's log messages (compile-time generated).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 9001, Level = LogLevel.Information, Message = "{Name}: virtio-mmio at 0x{MmioBase:x}, GSI {Gsi}, notify by {Notify}, interrupts {Interrupts}")]
    public static partial void DeviceWired(ILogger logger, string name, ulong mmioBase, uint gsi, string notify, string interrupts);

    [LoggerMessage(EventId = 9002, Level = LogLevel.Debug, Message = "{Name}: reset, drained and closed")]
    public static partial void DeviceClosed(ILogger logger, string name);

    [LoggerMessage(EventId = 9003, Level = LogLevel.Warning, Message = "{Name}: reset at shutdown failed")]
    public static partial void ResetFailed(ILogger logger, string name, Exception exception);

    [LoggerMessage(EventId = 9010, Level = LogLevel.Information, Message = "Booting {Guest} (entry 0x{Entry:x}) with {MemoryMiB} MiB, {Devices} device(s), TSC {TscKhz} kHz, guest command line '{CommandLine}'")]
    public static partial void Booting(ILogger logger, string guest, ulong entry, ulong memoryMiB, int devices, uint tscKhz, string commandLine);

    [LoggerMessage(EventId = 9011, Level = LogLevel.Information, Message = "Guest exited with {Value} after {Seconds:F2} s; vCPU exits: {MmioExits} MMIO, {PioExits} PIO")]
    public static partial void GuestExited(ILogger logger, uint value, double seconds, long mmioExits, long pioExits);

    [LoggerMessage(EventId = 9012, Level = LogLevel.Warning, Message = "Interrupted: stopping the guest")]
    public static partial void Interrupted(ILogger logger);

    [LoggerMessage(EventId = 9013, Level = LogLevel.Error, Message = "The guest stopped without writing the exit port: {Reason}; vCPU at RIP 0x{Rip:x}")]
    public static partial void GuestStopped(ILogger logger, string reason, ulong rip);

    [LoggerMessage(EventId = 9014, Level = LogLevel.Error, Message = "The guest failed: {Message}")]
    public static partial void GuestFailed(ILogger logger, string message);

    [LoggerMessage(EventId = 9015, Level = LogLevel.Error, Message = "{Message}")]
    public static partial void Fatal(ILogger logger, string message);

    [LoggerMessage(EventId = 9016, Level = LogLevel.Information, Message = "{Message}")]
    public static partial void Note(ILogger logger, string message);

    [LoggerMessage(EventId = 9017, Level = LogLevel.Warning, Message = "{Message}")]
    public static partial void Caution(ILogger logger, string message);

    [LoggerMessage(EventId = 9018, Level = LogLevel.Information, Message = "{Name}: level-triggered line raised again {Count} time(s) after an end of interrupt")]
    public static partial void LineReasserted(ILogger logger, string name, long count);

    [LoggerMessage(EventId = 9019, Level = LogLevel.Information, Message = "{Name}: {Path}, engine {Engine}")]
    public static partial void DiskOpened(ILogger logger, string name, string path, string engine);
}
