using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Text;
using Virtio.Core.Memory;

namespace Virtio.Vmm.Boot;

/// <summary>
/// struct boot_info at 0x7000 (samples/guest/README.md, version 1): magic, version, memory size, TSC
/// frequency, flags, the guest's command line and the device table.
/// </summary>
internal static class BootInfo
{
    /// <summary>Where the boot info lives (RDI at entry).</summary>
    public const ulong Address = 0x7000;

    /// <summary>"VIRT" as a little-endian u32.</summary>
    public const uint Magic = 0x54524956;

    /// <summary>The contract's version.</summary>
    public const uint Version = 1;

    /// <summary>The most devices the table holds.</summary>
    public const int MaxDevices = 16;

    /// <summary>Flag bit 0: interrupts are wired through irqfds.</summary>
    public const uint FlagInterrupts = 1;

    /// <summary>Flag bit 1: queue notifies go through ioeventfds.</summary>
    public const uint FlagIoEventFd = 2;

    /// <summary>Flag bit 2: device interrupt lines are level-triggered (irqfds with a resample fd).</summary>
    public const uint FlagLevelInterrupts = 4;

    /// <summary>Flag bit 3: the devices are virtio-pci functions on PCI bus 0 (the device table is empty; the guest enumerates the bus).</summary>
    public const uint FlagPci = 8;

    private const int Size = 4096;
    private const int CommandLineOffset = 32;
    private const int CommandLineSize = 256;
    private const int DeviceTableOffset = 288;

    /// <summary>Writes the boot info into guest RAM.</summary>
    /// <exception cref="ArgumentException">The command line is 256 bytes or longer, or there are more than 16 devices.</exception>
    public static void Write(GuestMemory memory, ulong memorySize, uint tscKhz, uint flags, string commandLine, IReadOnlyList<BootDevice> devices)
    {
        byte[] line = Encoding.ASCII.GetBytes(commandLine);
        if (line.Length >= CommandLineSize)
        {
            throw new ArgumentException($"the guest command line is {line.Length} bytes; at most {CommandLineSize - 1} fit", nameof(commandLine));
        }

        if (devices.Count > MaxDevices)
        {
            throw new ArgumentException($"{devices.Count} devices; the boot info holds at most {MaxDevices}", nameof(devices));
        }

        if (!memory.TryGetSpan(new GuestAddress(Address), Size, out Span<byte> info))
        {
            throw new InvalidOperationException("guest RAM does not cover the boot info page");
        }

        info.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(info, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(info[4..], Version);
        BinaryPrimitives.WriteUInt64LittleEndian(info[8..], memorySize);
        BinaryPrimitives.WriteUInt64LittleEndian(info[16..], tscKhz);
        BinaryPrimitives.WriteUInt32LittleEndian(info[24..], (uint)devices.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(info[28..], flags);
        line.CopyTo(info[CommandLineOffset..]);
        for (int i = 0; i < devices.Count; i++)
        {
            Span<byte> row = info[(DeviceTableOffset + (i * 16))..];
            BinaryPrimitives.WriteUInt64LittleEndian(row, devices[i].MmioBase);
            BinaryPrimitives.WriteUInt32LittleEndian(row[8..], devices[i].Gsi);
            BinaryPrimitives.WriteUInt32LittleEndian(row[12..], devices[i].DeviceId);
        }
    }
}
