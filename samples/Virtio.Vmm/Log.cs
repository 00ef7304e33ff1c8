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

    [LoggerMessage(EventId = 9030, Level = LogLevel.Information, Message = "{Name}: virtio-pci at 00:{Slot:x2}.0, BAR 0 at 0x{Bar0:x}, INTx on GSI {Gsi} (level, resample), {MsiX}, notify by {Notify}")]
    public static partial void PciDeviceWired(ILogger logger, string name, int slot, ulong bar0, uint gsi, string msiX, string notify);

    [LoggerMessage(EventId = 9031, Level = LogLevel.Information, Message = "{Name}: MSI-X vectors fired (vector=count, of {Vectors}):{Fired}; {Dropped} raise(s) with no route")]
    public static partial void MsiXFired(ILogger logger, string name, int vectors, string fired, long dropped);

    [LoggerMessage(EventId = 9032, Level = LogLevel.Information, Message = "{Name}: INTx asserted {Count} time(s), raised again {Reasserted} time(s) after an end of interrupt")]
    public static partial void IntxCount(ILogger logger, string name, long count, long reasserted);

    [LoggerMessage(EventId = 9033, Level = LogLevel.Information, Message = "{Name}: the guest moved the doorbells from 0x{From:x} to 0x{To:x}: {Outcome}")]
    public static partial void DoorbellsMoved(ILogger logger, string name, ulong from, ulong to, string outcome);

    [LoggerMessage(EventId = 9034, Level = LogLevel.Warning, Message = "PCI configuration mechanism #1: ignored a {Width}-byte access at port 0x{Port:x} (CONFIG_ADDRESS takes 32-bit accesses only, CONFIG_DATA 1, 2 or 4 bytes inside its dword); logged once")]
    public static partial void PciOddAccess(ILogger logger, ulong port, int width);

    [LoggerMessage(EventId = 9035, Level = LogLevel.Information, Message = "PCI bus 0: host bridge at 00:00.0, configuration mechanism #1 at ports 0xCF8-0xCFF, BARs in the MMIO hole 0x{HoleBase:x}-0x{HoleEnd:x}")]
    public static partial void PciBus(ILogger logger, ulong holeBase, ulong holeEnd);

    [LoggerMessage(EventId = 9036, Level = LogLevel.Debug, Message = "{Name}: BAR 0 stopped decoding: the doorbells at 0x{Address:x} are off their ioeventfds")]
    public static partial void DoorbellsUnbound(ILogger logger, string name, ulong address);

    [LoggerMessage(EventId = 9037, Level = LogLevel.Debug, Message = "{Name}: BAR 0 decodes again at the same place: the doorbells at 0x{Address:x} are back: {Outcome}")]
    public static partial void DoorbellsRebound(ILogger logger, string name, ulong address, string outcome);
}
