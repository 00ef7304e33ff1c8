using System;
using System.Runtime.InteropServices;

namespace Virtio.Core.Queues;

/// <summary>
/// Writes a descriptor chain's device-writable bytes in order, across buffer edges, and counts what
/// was written (the used length, virtio 1.2 §2.7.8). Also hands the rest out as
/// <see cref="IoSegment"/>s for zero-copy I/O. Allocates nothing. Build it over the writable segments
/// <see cref="DescriptorChain.TryGather"/> collected (virtio-queue's <c>Writer</c>, over a caller's span).
/// </summary>
/// <remarks>Use it on one thread while the chain is in flight.</remarks>
public ref struct ChainWriter
{
    private SegmentCursor _cursor;
    private long _written;

    /// <summary>Creates a writer over <paramref name="segments"/> (the chain's writable segments, in order).</summary>
    /// <param name="segments">The segments; empty ones are allowed and stepped over.</param>
    public ChainWriter(ReadOnlySpan<IoSegment> segments) => _cursor = new SegmentCursor(segments);

    /// <summary>Bytes of room not yet written or skipped.</summary>
    public readonly long Remaining => _cursor.Remaining;

    /// <summary>Bytes written so far (skipped bytes are not counted).</summary>
    public readonly long Written => _written;

    /// <summary>Writes as much of <paramref name="source"/> as fits, at most <paramref name="maxBytes"/> bytes.</summary>
    /// <param name="source">The bytes.</param>
    /// <param name="maxBytes">A cap on the bytes written; negative writes nothing.</param>
    /// <returns>How many bytes were written.</returns>
    public int Write(scoped ReadOnlySpan<byte> source, int maxBytes = int.MaxValue)
    {
        int length = Math.Clamp(maxBytes, 0, source.Length);
        int done = _cursor.Copy(SegmentCursor.AsSource(source[..length]), intoSegments: true);
        _written += done;
        return done;
    }

    /// <summary>Writes all of <paramref name="source"/>, or, when it does not fit, nothing (and returns false).</summary>
    /// <param name="source">The bytes.</param>
    /// <returns>True when every byte was written.</returns>
    public bool TryWrite(scoped ReadOnlySpan<byte> source)
    {
        if (source.Length > _cursor.Remaining)
        {
            return false;
        }

        Write(source);
        return true;
    }

    /// <summary>Writes an unmanaged struct byte for byte (host byte order), or nothing when it does not fit.</summary>
    /// <typeparam name="T">A struct without references, laid out as the device structure.</typeparam>
    /// <param name="value">The struct.</param>
    /// <returns>True when <c>sizeof(T)</c> bytes were written.</returns>
    public bool TryWrite<T>(in T value)
        where T : unmanaged =>
        TryWrite(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    /// <summary>Skips up to <paramref name="count"/> bytes of room without writing them (none for a negative count).</summary>
    /// <param name="count">Bytes to skip.</param>
    /// <returns>How many were skipped.</returns>
    public long Skip(long count) => _cursor.Skip(count);

    /// <summary>
    /// Records <paramref name="count"/> bytes written by someone else (the kernel, through iovecs
    /// from <see cref="PeekSegments"/>): moves past them and counts them in <see cref="Written"/>.
    /// </summary>
    /// <param name="count">Bytes the I/O wrote; cut to <see cref="Remaining"/>.</param>
    /// <returns>How many were recorded.</returns>
    public long Advance(long count)
    {
        long done = _cursor.Skip(count);
        _written += done;
        return done;
    }

    /// <summary>
    /// Copies the segments that hold the next bytes of room (the first cut to the position, the last to
    /// the cap) into <paramref name="destination"/>, without moving. Empty segments are left out.
    /// </summary>
    /// <param name="destination">Receives segments; as many as fit.</param>
    /// <param name="maxBytes">The most bytes the segments cover together.</param>
    /// <returns>How many segments were written.</returns>
    public readonly int PeekSegments(Span<IoSegment> destination, long maxBytes = long.MaxValue) =>
        _cursor.PeekSegments(destination, maxBytes);
}
