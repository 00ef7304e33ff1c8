using System;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Net;

/// <summary>
/// A frame to transmit, as the guest laid it out: a list of pieces of guest memory (the I/O
/// vectors a vectored backend hands to writev), or one contiguous span. Allocates nothing.
/// </summary>
/// <remarks>Valid only during the <see cref="INetBackend.TryTransmit"/> call it is passed to.</remarks>
public readonly ref struct NetFrameSegments
{
    private readonly IGuestMemory? _memory;
    private readonly ReadOnlySpan<NetSegment> _segments;
    private readonly ReadOnlySpan<IoSegment> _ioSegments;
    private readonly ReadOnlySpan<byte> _contiguous;
    private readonly bool _vectored;

    /// <summary>A frame made of pieces of guest memory; the device checked every piece against memory.</summary>
    /// <param name="memory">The guest memory.</param>
    /// <param name="segments">The pieces, in order.</param>
    public NetFrameSegments(IGuestMemory memory, ReadOnlySpan<NetSegment> segments)
    {
        ArgumentNullException.ThrowIfNull(memory);
        _memory = memory;
        _segments = segments;
        _contiguous = default;
        int length = 0;
        foreach (NetSegment segment in segments)
        {
            length += segment.Length;
        }

        Length = length;
        Count = segments.Length;
    }

    /// <summary>A frame in one contiguous span (for embedders and tests calling a backend directly).</summary>
    /// <param name="frame">The frame's bytes.</param>
    public NetFrameSegments(ReadOnlySpan<byte> frame)
    {
        _memory = null;
        _segments = default;
        _contiguous = frame;
        Length = frame.Length;
        Count = 1;
    }

    /// <summary>
    /// A frame made of pieces of guest memory the device already mapped (what a <see cref="ChainReader"/>
    /// hands out past the header); <paramref name="length"/> is their total.
    /// </summary>
    internal NetFrameSegments(ReadOnlySpan<IoSegment> segments, int length)
    {
        _memory = null;
        _ioSegments = segments;
        _vectored = true;
        Length = length;
        Count = segments.Length;
    }

    /// <summary>The frame's length in bytes.</summary>
    public int Length { get; }

    /// <summary>How many pieces the frame has.</summary>
    public int Count { get; }

    /// <summary>Piece <paramref name="index"/> of the frame.</summary>
    /// <param name="index">From 0 to <see cref="Count"/> - 1.</param>
    /// <returns>The bytes; empty if guest memory no longer holds the piece.</returns>
    public ReadOnlySpan<byte> this[int index]
    {
        get
        {
            if (_vectored)
            {
                return _ioSegments[index].AsSpan();
            }

            if (_memory is null)
            {
                return index == 0 ? _contiguous : throw new ArgumentOutOfRangeException(nameof(index));
            }

            NetSegment segment = _segments[index];
            return _memory.TryGetSpan(segment.Address, segment.Length, out Span<byte> span) ? span : default;
        }
    }

    /// <summary>Copies the whole frame into <paramref name="destination"/> (for backends that need it contiguous).</summary>
    /// <param name="destination">At least <see cref="Length"/> bytes.</param>
    /// <returns>Bytes copied.</returns>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than the frame.</exception>
    public int CopyTo(Span<byte> destination)
    {
        if (_vectored)
        {
            if (destination.Length < Length)
            {
                throw new ArgumentException("Destination is shorter than the frame.", nameof(destination));
            }

            // The device's own frames: the pieces are mapped guest memory, read across their edges.
            return new ChainReader(_ioSegments).Read(destination);
        }

        int offset = 0;
        for (int i = 0; i < Count; i++)
        {
            ReadOnlySpan<byte> piece = this[i];
            piece.CopyTo(destination[offset..]);
            offset += piece.Length;
        }

        return offset;
    }
}
