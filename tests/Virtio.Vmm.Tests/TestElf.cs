using System;
using System.Buffers.Binary;

namespace Virtio.Vmm.Tests;

/// <summary>Hand-built ELF64 x86-64 executables: a header, one PT_LOAD program header, then the code.</summary>
internal static class TestElf
{
    /// <summary>nop; nop; nop; hlt.</summary>
    public static readonly byte[] Halt = [0x90, 0x90, 0x90, 0xF4];

    /// <summary>
    /// An image whose one segment loads at <paramref name="paddr"/> (p_vaddr the same) with
    /// <paramref name="fileSize"/> bytes of <paramref name="code"/> (default <see cref="Halt"/>) and
    /// <paramref name="memSize"/> bytes in memory.
    /// </summary>
    public static byte[] Build(ulong paddr, ulong fileSize, ulong memSize, ulong entry, byte[]? code = null)
    {
        code ??= Halt;
        byte[] image = new byte[64 + 56 + (int)fileSize];
        Span<byte> h = image;
        "\u007fELF"u8.CopyTo(h);
        h[4] = 2; // ELFCLASS64
        h[5] = 1; // little-endian
        h[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(h[16..], 2);  // ET_EXEC
        BinaryPrimitives.WriteUInt16LittleEndian(h[18..], 62); // EM_X86_64
        BinaryPrimitives.WriteUInt64LittleEndian(h[24..], entry);
        BinaryPrimitives.WriteUInt64LittleEndian(h[32..], 64); // e_phoff
        BinaryPrimitives.WriteUInt16LittleEndian(h[52..], 64);
        BinaryPrimitives.WriteUInt16LittleEndian(h[54..], 56);
        BinaryPrimitives.WriteUInt16LittleEndian(h[56..], 1);
        Span<byte> ph = h[64..];
        BinaryPrimitives.WriteUInt32LittleEndian(ph, 1); // PT_LOAD
        BinaryPrimitives.WriteUInt32LittleEndian(ph[4..], 5);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[8..], 64 + 56);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[16..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[24..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[32..], fileSize);
        BinaryPrimitives.WriteUInt64LittleEndian(ph[40..], memSize);
        code.AsSpan(0, (int)Math.Min(fileSize, (ulong)code.Length)).CopyTo(image.AsSpan(64 + 56));
        return image;
    }
}
