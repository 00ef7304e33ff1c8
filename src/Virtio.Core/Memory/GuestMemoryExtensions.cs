using System;
using System.Buffers.Binary;

namespace Virtio.Core.Memory;

/// <summary>
/// Little-endian reads and writes of guest memory (virtio 1.x structures are little-endian,
/// virtio 1.2 §1.4). Each returns false instead of touching anything outside guest memory.
/// </summary>
public static class GuestMemoryExtensions
{
    /// <summary>Copies guest memory at <paramref name="address"/> into <paramref name="destination"/>.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to read.</param>
    /// <param name="destination">Receives <c>destination.Length</c> bytes.</param>
    /// <returns>False, with nothing copied, when the range is not all guest memory of one region.</returns>
    public static bool TryRead(this IGuestMemory memory, GuestAddress address, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (!memory.TryGetSpan(address, destination.Length, out Span<byte> span))
        {
            return false;
        }

        span.CopyTo(destination);
        return true;
    }

    /// <summary>Copies <paramref name="source"/> into guest memory at <paramref name="address"/>.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to write.</param>
    /// <param name="source">The bytes.</param>
    /// <returns>False, with nothing written, when the range is not all guest memory of one region.</returns>
    public static bool TryWrite(this IGuestMemory memory, GuestAddress address, ReadOnlySpan<byte> source)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (!memory.TryGetSpan(address, source.Length, out Span<byte> span))
        {
            return false;
        }

        source.CopyTo(span);
        return true;
    }

    /// <summary>Reads a little-endian 16-bit value.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to read.</param>
    /// <param name="value">The value read, or 0.</param>
    /// <returns>False when the two bytes are not guest memory.</returns>
    public static bool TryReadUInt16(this IGuestMemory memory, GuestAddress address, out ushort value)
    {
        ArgumentNullException.ThrowIfNull(memory);
        bool ok = memory.TryGetSpan(address, sizeof(ushort), out Span<byte> span);
        value = ok ? BinaryPrimitives.ReadUInt16LittleEndian(span) : default;
        return ok;
    }

    /// <summary>Reads a little-endian 32-bit value.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to read.</param>
    /// <param name="value">The value read, or 0.</param>
    /// <returns>False when the four bytes are not guest memory.</returns>
    public static bool TryReadUInt32(this IGuestMemory memory, GuestAddress address, out uint value)
    {
        ArgumentNullException.ThrowIfNull(memory);
        bool ok = memory.TryGetSpan(address, sizeof(uint), out Span<byte> span);
        value = ok ? BinaryPrimitives.ReadUInt32LittleEndian(span) : default;
        return ok;
    }

    /// <summary>Reads a little-endian 64-bit value.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to read.</param>
    /// <param name="value">The value read, or 0.</param>
    /// <returns>False when the eight bytes are not guest memory.</returns>
    public static bool TryReadUInt64(this IGuestMemory memory, GuestAddress address, out ulong value)
    {
        ArgumentNullException.ThrowIfNull(memory);
        bool ok = memory.TryGetSpan(address, sizeof(ulong), out Span<byte> span);
        value = ok ? BinaryPrimitives.ReadUInt64LittleEndian(span) : default;
        return ok;
    }

    /// <summary>Writes a little-endian 16-bit value.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to write.</param>
    /// <param name="value">The value.</param>
    /// <returns>False, with nothing written, when the two bytes are not guest memory.</returns>
    public static bool TryWriteUInt16(this IGuestMemory memory, GuestAddress address, ushort value)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (!memory.TryGetSpan(address, sizeof(ushort), out Span<byte> span))
        {
            return false;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(span, value);
        return true;
    }

    /// <summary>Writes a little-endian 32-bit value.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to write.</param>
    /// <param name="value">The value.</param>
    /// <returns>False, with nothing written, when the four bytes are not guest memory.</returns>
    public static bool TryWriteUInt32(this IGuestMemory memory, GuestAddress address, uint value)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (!memory.TryGetSpan(address, sizeof(uint), out Span<byte> span))
        {
            return false;
        }

        BinaryPrimitives.WriteUInt32LittleEndian(span, value);
        return true;
    }

    /// <summary>Writes a little-endian 64-bit value.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="address">Where to write.</param>
    /// <param name="value">The value.</param>
    /// <returns>False, with nothing written, when the eight bytes are not guest memory.</returns>
    public static bool TryWriteUInt64(this IGuestMemory memory, GuestAddress address, ulong value)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (!memory.TryGetSpan(address, sizeof(ulong), out Span<byte> span))
        {
            return false;
        }

        BinaryPrimitives.WriteUInt64LittleEndian(span, value);
        return true;
    }
}
