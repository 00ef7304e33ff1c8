using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace Virtio.Fuzz.Seeds;

/// <summary>Builds a seed input field by field, little-endian.</summary>
internal sealed class SeedWriter
{
    private readonly List<byte> _bytes = new();

    public SeedWriter U8(int value)
    {
        _bytes.Add((byte)value);
        return this;
    }

    public SeedWriter U16(int value) => Raw(stackalloc byte[2], static (s, v) => BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)v), (ulong)value);

    public SeedWriter U32(uint value) => Raw(stackalloc byte[4], static (s, v) => BinaryPrimitives.WriteUInt32LittleEndian(s, (uint)v), value);

    public SeedWriter U64(ulong value) => Raw(stackalloc byte[8], static (s, v) => BinaryPrimitives.WriteUInt64LittleEndian(s, v), value);

    public SeedWriter Bytes(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes)
        {
            _bytes.Add(b);
        }

        return this;
    }

    /// <summary><paramref name="count"/> bytes of a recognisable pattern.</summary>
    public SeedWriter Pattern(int count, int seed)
    {
        for (int i = 0; i < count; i++)
        {
            _bytes.Add((byte)((i * 31) + seed));
        }

        return this;
    }

    public byte[] ToArray() => _bytes.ToArray();

    private SeedWriter Raw(Span<byte> scratch, SpanAction write, ulong value)
    {
        write(scratch, value);
        return Bytes(scratch);
    }

    private delegate void SpanAction(Span<byte> span, ulong value);
}
