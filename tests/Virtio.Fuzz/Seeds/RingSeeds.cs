using System;
using System.Buffers.Binary;

namespace Virtio.Fuzz.Seeds;

/// <summary>
/// Seeds of the <c>ring</c> target: a queue of size 8, so the descriptor table is at 0 (128 bytes),
/// the available ring at 128 and the used ring at 152 (see <see cref="Targets.RingTarget"/>).
/// </summary>
internal static class RingSeeds
{
    public const ushort FlagNext = 1, FlagWrite = 2, FlagIndirect = 4;
    private const byte Size8 = 2;           // mode bits 0-2: size 2 << 2
    private const int AvailRing = 128;

    /// <summary>Two chains: header + writable buffer, and one readable buffer.</summary>
    public static byte[] TwoChains()
    {
        byte[] input = Input(Size8 | 0x20, writeAmount: 2, memory: 256);
        Span<byte> memory = input.AsSpan(2);
        Descriptor(memory, 0, 0x400, 16, FlagNext, 1);
        Descriptor(memory, 1, 0x800, 64, FlagWrite, 0);
        Descriptor(memory, 2, 0x1000, 32, 0, 0);
        Avail(memory, 0, 2);
        return input;
    }

    /// <summary>One chain through an indirect table of two buffers (INDIRECT_DESC negotiated).</summary>
    public static byte[] Indirect()
    {
        byte[] input = Input(Size8 | 0x10 | 0x08, writeAmount: 255, memory: 256);
        Span<byte> memory = input.AsSpan(2);
        Descriptor(memory, 0, 0xE0, 32, FlagIndirect, 0);
        Descriptor(memory[0xE0..], 0, 0x400, 8, FlagNext, 1);
        Descriptor(memory[0xE0..], 1, 0x10000, 8, FlagWrite, 0);
        Avail(memory, 0);
        return input;
    }

    /// <summary>A chain whose next links loop (the walk must stop, the queue break).</summary>
    public static byte[] Loop()
    {
        byte[] input = Input(Size8, writeAmount: 1, memory: 160);
        Span<byte> memory = input.AsSpan(2);
        Descriptor(memory, 0, 0x400, 8, FlagNext, 1);
        Descriptor(memory, 1, 0x408, 8, FlagNext, 0);
        Avail(memory, 0);
        return input;
    }

    /// <summary>Writes descriptor <paramref name="index"/> of the table at the start of <paramref name="table"/>.</summary>
    public static void Descriptor(Span<byte> table, int index, ulong address, uint length, ushort flags, ushort next)
    {
        Span<byte> d = table.Slice(16 * index, 16);
        BinaryPrimitives.WriteUInt64LittleEndian(d, address);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], next);
    }

    private static byte[] Input(int mode, byte writeAmount, int memory)
    {
        byte[] input = new byte[2 + memory];
        input[0] = (byte)mode;
        input[1] = writeAmount;
        return input;
    }

    private static void Avail(Span<byte> memory, params ReadOnlySpan<ushort> heads)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(memory[(AvailRing + 2)..], (ushort)heads.Length);
        for (int i = 0; i < heads.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(memory[(AvailRing + 4 + (2 * i))..], heads[i]);
        }
    }
}
