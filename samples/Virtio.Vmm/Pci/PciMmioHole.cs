using System;
using System.Threading;
using Virtio.Core.Transport.Pci;
using Virtio.Kvm.Bus;

namespace Virtio.Vmm.Pci;

/// <summary>
/// The 32-bit MMIO hole the PCI functions' BARs live in, [<see cref="Base"/>, <see cref="End"/>): above
/// RAM (at most 3 GiB, below 0xC0000000) and below the IOAPIC at 0xFEC00000 and the local APIC at
/// 0xFEE00000. One window on the bus for the whole hole, so a BAR the guest moves anywhere inside it is
/// still reached: each access goes to the function whose decoding BAR holds it, and one no BAR holds
/// reads all ones (a master abort). A BAR moved outside the hole is no longer reached (RAM or nothing
/// is there). <see cref="PciBarAllocator"/> places the BARs in it.
/// </summary>
internal sealed class PciMmioHole : IKvmIoHandler
{
    /// <summary>The hole's first address.</summary>
    public const ulong Base = 0xE000_0000;

    /// <summary>One past its last address: the IOAPIC's page.</summary>
    public const ulong End = 0xFEC0_0000;

    private VirtioPciFunction[] _functions = [];

    /// <summary>Reaches <paramref name="function"/>'s BARs through the hole from now on.</summary>
    public void Add(VirtioPciFunction function)
    {
        VirtioPciFunction[] next = [.. _functions, function];
        Volatile.Write(ref _functions, next);
    }

    public void Read(ulong offset, Span<byte> data)
    {
        ulong address = Base + offset;
        foreach (VirtioPciFunction function in Volatile.Read(ref _functions))
        {
            if (function.TryReadMemory(address, data))
            {
                return;
            }
        }

        data.Fill(0xFF);
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        ulong address = Base + offset;
        foreach (VirtioPciFunction function in Volatile.Read(ref _functions))
        {
            if (function.TryWriteMemory(address, data))
            {
                return;
            }
        }
    }
}
