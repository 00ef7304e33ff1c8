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
        byte[] input = Input(Size8 | 0x20, writeAmount: 2, memory: 256, ops: 1);
        Span<byte> memory = input.AsSpan(3);
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
        Span<byte> memory = input.AsSpan(3);
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
        Span<byte> memory = input.AsSpan(3);
        Descriptor(memory, 0, 0x400, 8, FlagNext, 1);
        Descriptor(memory, 1, 0x408, 8, FlagNext, 0);
        Avail(memory, 0);
        return input;
    }

    /// <summary>
    /// A back end taking over: the queue restored at next-available 5 and next-used 3 (EVENT_IDX),
    /// heads 1 and 0 resubmitted from an in-flight region, then one more chain on the ring.
    /// </summary>
    public static byte[] RestoreAndResubmit()
    {
        const int Extra = 4 + 1 + 4; // two u16 indices, a count, two u16 heads
        byte[] input = new byte[3 + Extra + 256];
        input[0] = Size8 | 0x08;
        input[1] = 4;
        input[2] = 1 | 2 | 4;
        BinaryPrimitives.WriteUInt16LittleEndian(input.AsSpan(3), 5);
        BinaryPrimitives.WriteUInt16LittleEndian(input.AsSpan(5), 3);
        input[7] = 2;
        BinaryPrimitives.WriteUInt16LittleEndian(input.AsSpan(8), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(input.AsSpan(10), 0);
        Span<byte> memory = input.AsSpan(3 + Extra);
        Descriptor(memory, 0, 0x400, 16, FlagNext, 3);
        Descriptor(memory, 3, 0x800, 64, FlagWrite, 0);
        Descriptor(memory, 1, 0x1000, 32, FlagWrite, 0);
        Descriptor(memory, 2, 0x1400, 8, 0, 0);
        BinaryPrimitives.WriteUInt16LittleEndian(memory[(AvailRing + 2)..], 6);          // idx: one past next-available 5
        BinaryPrimitives.WriteUInt16LittleEndian(memory[(AvailRing + 4 + (2 * 5))..], 2); // ring[5] = head 2
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

    private static byte[] Input(int mode, byte writeAmount, int memory, int ops = 0)
    {
        byte[] input = new byte[3 + memory];
        input[0] = (byte)mode;
        input[1] = writeAmount;
        input[2] = (byte)ops;
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
