using System;
using System.Runtime.InteropServices;

namespace Virtio.Core.Queues;

/// <summary>
/// A position in a list of <see cref="IoSegment"/>s: the segment, the offset in it, and the bytes
/// left. The shared walking of <see cref="ChainReader"/> and <see cref="ChainWriter"/>; empty
/// segments are stepped over, and a count larger than what is left is cut to it.
/// </summary>
internal ref struct SegmentCursor
{
    private readonly ReadOnlySpan<IoSegment> _segments;
    private int _index;
    private int _offset;
    private long _remaining;

    public SegmentCursor(ReadOnlySpan<IoSegment> segments)
    {
        _segments = segments;
        long total = 0;
        foreach (IoSegment segment in segments)
        {
            total += segment.Length; // at most int.MaxValue segments of int.MaxValue: no overflow
        }

        _remaining = total;
    }

    public readonly long Remaining => _remaining;

    public long Skip(long count)
    {
        long skipped = Math.Clamp(count, 0, _remaining);
        long left = skipped;
        while (left > 0)
        {
            int rest = _segments[_index].Length - _offset;
            if (left < rest)
            {
                _offset += (int)left;
                break;
            }

            left -= rest;
            _index++;
            _offset = 0;
        }

        _remaining -= skipped;
        return skipped;
    }

    /// <summary>Copies between the segments and <paramref name="other"/>, as much as both hold, and moves on.</summary>
    public int Copy(scoped Span<byte> other, bool intoSegments)
    {
        int done = 0;
        while (done < other.Length && _remaining > 0)
        {
            Span<byte> current = _segments[_index].AsSpan()[_offset..];
            int take = Math.Min(current.Length, other.Length - done);
            if (intoSegments)
            {
                other.Slice(done, take).CopyTo(current);
            }
            else
            {
                current[..take].CopyTo(other[done..]);
            }

            done += take;
            Skip(take);
        }

        return done;
    }

    public readonly int PeekSegments(Span<IoSegment> destination, long maxBytes)
    {
        long budget = Math.Clamp(maxBytes, 0, _remaining);
        int count = 0;
        int offset = _offset;
        for (int i = _index; budget > 0 && count < destination.Length; i++)
        {
            IoSegment segment = _segments[i];
            int length = (int)Math.Min(segment.Length - offset, budget);
            if (length > 0)
            {
                destination[count++] = segment.Slice(offset, length);
                budget -= length;
            }

            offset = 0;
        }

        return count;
    }

    /// <summary>A writable view of read-only caller bytes, for <see cref="Copy"/> in the into-segments direction, which only reads it.</summary>
    public static Span<byte> AsSource(ReadOnlySpan<byte> source) =>
        MemoryMarshal.CreateSpan(ref MemoryMarshal.GetReference(source), source.Length);
}
