using System;
using System.Buffers.Binary;
using Virtio.Core.Transport.Pci;

namespace Virtio.Vmm.Pci;

/// <summary>Assigns BAR addresses in the <see cref="PciMmioHole"/>, as firmware does before the guest runs.</summary>
internal sealed class PciBarAllocator
{
    private ulong _next = PciMmioHole.Base;

    /// <summary>
    /// Places every BAR of <paramref name="function"/> in the hole as firmware would: each naturally
    /// aligned (to its size, at least 4 KiB) after the last one placed, written into the BAR registers
    /// (both halves of a 64-bit BAR), then Memory Space Enable set.
    /// </summary>
    /// <exception cref="InvalidOperationException">The hole is full.</exception>
    public void Place(VirtioPciFunction function)
    {
        Span<byte> register = stackalloc byte[4];
        for (int bar = 0; bar < 6; bar++)
        {
            ulong size = function.GetBarSize(bar);
            if (size == 0)
            {
                continue;
            }

            ulong align = Math.Max(size, 0x1000);
            ulong address = (_next + align - 1) & ~(align - 1);
            if (address + size > PciMmioHole.End || address + size < address)
            {
                throw new InvalidOperationException($"the PCI MMIO hole 0x{PciMmioHole.Base:x}-0x{PciMmioHole.End:x} has no room for a 0x{size:x}-byte BAR");
            }

            _next = address + size;
            function.ReadConfigSpace(0x10 + (4 * bar), register);
            bool is64 = (register[0] & 0x7) == 0x4;
            WriteDword(function, 0x10 + (4 * bar), (uint)address);
            if (is64)
            {
                WriteDword(function, 0x14 + (4 * bar), (uint)(address >> 32));
                bar++;
            }
        }

        function.ReadConfigSpace(0x04, register[..2]);
        register[0] |= 0x02; // Memory Space Enable
        function.WriteConfigSpace(0x04, register[..2]);

    }

    private static void WriteDword(VirtioPciFunction function, int offset, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        function.WriteConfigSpace(offset, bytes);
    }
}
