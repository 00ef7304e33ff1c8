using System;
using System.Buffers.Binary;

namespace Virtio.Fuzz;

/// <summary>
/// Reads fields off the front of an input; past its end every read gives zero (and
/// <see cref="IsEmpty"/> is true), so any input, however short, is a whole test case.
/// </summary>
internal ref struct FuzzInput(ReadOnlySpan<byte> data)
{
    private ReadOnlySpan<byte> _rest = data;

    /// <summary>Whether every byte has been read.</summary>
    public readonly bool IsEmpty => _rest.IsEmpty;

    /// <summary>The bytes not read yet.</summary>
    public readonly ReadOnlySpan<byte> Rest => _rest;

    public byte Byte()
    {
        if (_rest.IsEmpty)
        {
            return 0;
        }

        byte value = _rest[0];
        _rest = _rest[1..];
        return value;
    }

    public ushort UInt16()
    {
        Span<byte> raw = stackalloc byte[2];
        Fill(raw);
        return BinaryPrimitives.ReadUInt16LittleEndian(raw);
    }

    public uint UInt32()
    {
        Span<byte> raw = stackalloc byte[4];
        Fill(raw);
        return BinaryPrimitives.ReadUInt32LittleEndian(raw);
    }

    public ulong UInt64()
    {
        Span<byte> raw = stackalloc byte[8];
        Fill(raw);
        return BinaryPrimitives.ReadUInt64LittleEndian(raw);
    }

    /// <summary>Takes up to <paramref name="count"/> bytes (fewer near the end).</summary>
    public ReadOnlySpan<byte> Take(int count)
    {
        ReadOnlySpan<byte> taken = _rest[..Math.Min(count, _rest.Length)];
        _rest = _rest[taken.Length..];
        return taken;
    }

    /// <summary>Fills <paramref name="destination"/> from the input, zeros past its end.</summary>
    public void Fill(scoped Span<byte> destination)
    {
        ReadOnlySpan<byte> taken = Take(destination.Length);
        taken.CopyTo(destination);
        destination[taken.Length..].Clear();
    }
}
