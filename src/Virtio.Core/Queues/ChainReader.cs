using System;
using System.Runtime.InteropServices;

namespace Virtio.Core.Queues;

/// <summary>
/// Reads a descriptor chain's device-readable bytes in order, across buffer edges: exact headers
/// (a span or an unmanaged struct), skips, and the rest handed out as <see cref="IoSegment"/>s for
/// zero-copy I/O. Allocates nothing. Build it over the readable segments
/// <see cref="DescriptorChain.TryGather"/> collected (virtio-queue's <c>Reader</c>, over a caller's span).
/// </summary>
/// <remarks>
/// Use it on one thread while the chain is in flight. The guest may rewrite its buffers at any time:
/// copy a header out once with <see cref="TryRead(Span{byte})"/> and validate the copy.
/// </remarks>
public ref struct ChainReader
{
    private SegmentCursor _cursor;

    /// <summary>Creates a reader over <paramref name="segments"/> (the chain's readable segments, in order).</summary>
    /// <param name="segments">The segments; empty ones are allowed and stepped over.</param>
    public ChainReader(ReadOnlySpan<IoSegment> segments) => _cursor = new SegmentCursor(segments);

    /// <summary>Bytes not yet read or skipped.</summary>
    public readonly long Remaining => _cursor.Remaining;

    /// <summary>
    /// Reads exactly <c>destination.Length</c> bytes. When fewer remain, nothing is read, the position
    /// does not move and the method returns false (a header shorter than the device needs).
    /// </summary>
    /// <param name="destination">Receives the bytes.</param>
    /// <returns>True when the whole span was filled.</returns>
    public bool TryRead(scoped Span<byte> destination)
    {
        if (destination.Length > _cursor.Remaining)
        {
            return false;
        }

        _cursor.Copy(destination, intoSegments: false);
        return true;
    }

    /// <summary>
    /// Reads an unmanaged struct byte for byte (host byte order: virtio structures are little-endian,
    /// like the hosts this library runs on). False, with nothing read, when too few bytes remain.
    /// </summary>
    /// <typeparam name="T">A struct without references, laid out as the device structure.</typeparam>
    /// <param name="value">The struct read, or default.</param>
    /// <returns>True when <c>sizeof(T)</c> bytes were read.</returns>
    public bool TryRead<T>(out T value)
        where T : unmanaged
    {
        value = default;
        return TryRead(MemoryMarshal.AsBytes(new Span<T>(ref value)));
    }

    /// <summary>Reads as many bytes as remain, up to <c>destination.Length</c>.</summary>
    /// <param name="destination">Receives the bytes.</param>
    /// <returns>How many bytes were read.</returns>
    public int Read(scoped Span<byte> destination) => _cursor.Copy(destination, intoSegments: false);

    /// <summary>Skips up to <paramref name="count"/> bytes (all that remain when fewer do; none for a negative count).</summary>
    /// <param name="count">Bytes to skip.</param>
    /// <returns>How many were skipped.</returns>
    public long Skip(long count) => _cursor.Skip(count);

    /// <summary>
    /// Copies the segments that hold the next bytes (the first cut to the position, the last to the cap)
    /// into <paramref name="destination"/>, without moving: build iovecs from them, then <see cref="Skip"/>
    /// what the I/O consumed. Empty segments are left out.
    /// </summary>
    /// <param name="destination">Receives segments; as many as fit.</param>
    /// <param name="maxBytes">The most bytes the segments cover together.</param>
    /// <returns>How many segments were written.</returns>
    public readonly int PeekSegments(Span<IoSegment> destination, long maxBytes = long.MaxValue) =>
        _cursor.PeekSegments(destination, maxBytes);
}
