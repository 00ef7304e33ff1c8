using System;
using Virtio.Core.Queues;

namespace Virtio.Net;

/// <summary>
/// The guest receive chains one receive queue has popped for frames (reserved) but not yet used,
/// with their writable buffers: one chain per frame, or, under VIRTIO_NET_F_MRG_RXBUF (virtio 1.2
/// §5.1.6.4), as many as a frame needs. Frames are scattered into them in order, and the chains
/// they fill go back on the used ring. The arrays are sized once, so nothing is allocated per frame.
/// </summary>
/// <remarks>Touched only while its receive queue is processed (serialized by Core) or reset.</remarks>
internal sealed class NetRxReservation
{
    private readonly ushort[] _heads;
    private readonly int[] _segmentStart;
    private readonly int[] _segmentCount;
    private readonly int[] _capacity;
    private readonly int _maxChainBuffers;
    private IoSegment[] _segments;
    private int _usedSegments;

    /// <param name="maxChains">The most chains held at once (the queue size).</param>
    /// <param name="maxChainBuffers">The most non-empty buffers one chain may have: with
    /// <paramref name="maxChains"/>, it bounds the segment array however long the guest's chains are.</param>
    public NetRxReservation(int maxChains, int maxChainBuffers)
    {
        _maxChainBuffers = maxChainBuffers;
        _heads = new ushort[maxChains];
        _segmentStart = new int[maxChains];
        _segmentCount = new int[maxChains];
        _capacity = new int[maxChains];
        _segments = new IoSegment[maxChains * 2];
    }

    /// <summary>Chains given back unused because they had more than the bound of buffers.</summary>
    public long RefusedChains { get; private set; }

    /// <summary>How many segments the array holds room for (what a long chain could make it keep).</summary>
    public int SegmentCapacity => _segments.Length;

    /// <summary>Chains reserved.</summary>
    public int ChainCount { get; private set; }

    /// <summary>Writable bytes of all reserved chains.</summary>
    public long TotalCapacity { get; private set; }

    /// <summary>Writable bytes of the first reserved chain; at least one must be reserved.</summary>
    public int FirstCapacity => _capacity[0];

    /// <summary>
    /// Pops one more chain with writable bytes and reserves it. Chains with none are returned at once.
    /// False when the ring is empty, the reservation is full, or the chain broke the queue
    /// (<see cref="SplitVirtqueue.Error"/> says so).
    /// </summary>
    public bool TryReserve(SplitVirtqueue queue)
    {
        // The loop ends when the ring is empty.
        for (int attempts = 0; attempts <= queue.Size; attempts++)
        {
            if (ChainCount == _heads.Length || !queue.TryPopChain(out DescriptorChain chain))
            {
                return false;
            }

            int start = _usedSegments;
            if (!chain.TryGather(_segments.AsSpan(start), out int readable, out int count))
            {
                return false;
            }

            if (count > _maxChainBuffers)
            {
                // Longer than any receive chain a driver needs: given back unused, so the arrays
                // stay within maxChains x maxChainBuffers (review finding 9, peer-driven growth).
                RefusedChains++;
                queue.AddUsed(chain.HeadIndex, 0);
                continue;
            }

            if (start + count > _segments.Length)
            {
                // Rare: indirect tables make chains longer than the ring. Grows at most to
                // (chains held + 1) x maxChainBuffers, the bound above, then stays.
                Array.Resize(ref _segments, Math.Max(Math.Min(_segments.Length * 2, _heads.Length * _maxChainBuffers), start + count));
                chain.Reset();
                chain.TryGather(_segments.AsSpan(start), out readable, out count);
            }

            // Device-readable buffers come first; only the writable ones after them take the frame.
            Array.Copy(_segments, start + readable, _segments, start, count - readable);
            _usedSegments = start + count - readable;
            long capacity = new ChainWriter(_segments.AsSpan(start, _usedSegments - start)).Remaining;
            if (capacity == 0)
            {
                _usedSegments = start;
                queue.AddUsed(chain.HeadIndex, 0);
                continue;
            }

            int slot = ChainCount++;
            _heads[slot] = chain.HeadIndex;
            _segmentStart[slot] = start;
            _segmentCount[slot] = _usedSegments - start;
            _capacity[slot] = (int)Math.Min(capacity, int.MaxValue);
            TotalCapacity += _capacity[slot];
            return true;
        }

        return false;
    }

    /// <summary>How many of the reserved chains, from the first, hold <paramref name="needed"/> bytes; they must.</summary>
    public int ChainsFor(int needed)
    {
        int chains = 1;
        long capacity = _capacity[0];
        while (capacity < needed)
        {
            capacity += _capacity[chains++];
        }

        return chains;
    }

    /// <summary>
    /// Writes <paramref name="header"/> then <paramref name="frame"/> across the first
    /// <paramref name="chains"/> reserved chains, puts them on the used ring with the bytes each got,
    /// and forgets them.
    /// </summary>
    public void Complete(SplitVirtqueue queue, ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame, int chains)
    {
        for (int i = 0; i < chains; i++)
        {
            var writer = new ChainWriter(_segments.AsSpan(_segmentStart[i], _segmentCount[i]));
            header = header[writer.Write(header)..];
            frame = frame[writer.Write(frame)..];
            queue.AddUsed(_heads[i], (uint)writer.Written);
        }

        RemoveFirst(chains);
    }

    /// <summary>
    /// Gives every reserved chain back to the driver unused and forgets them (the ring is stopping).
    /// virtio 1.2 §2.7.8 (The Virtqueue Used Ring): <c>len</c> is "the total of bytes written into the
    /// buffer" and the device "MUST write at least len bytes", so length 0 is a conforming return of a
    /// buffer the device never wrote, and the driver "MUST NOT make assumptions about data in
    /// device-writable buffers beyond the first len bytes". Each head leaves the queue's in-flight
    /// count, also on a broken queue, where nothing reaches the used ring.
    /// </summary>
    public void ReturnAll(SplitVirtqueue queue)
    {
        for (int i = 0; i < ChainCount; i++)
        {
            queue.AddUsed(_heads[i], 0);
        }

        Clear();
    }

    /// <summary>Forgets every reserved chain (the device is resetting: Core clears the rings).</summary>
    public void Clear()
    {
        ChainCount = 0;
        _usedSegments = 0;
        TotalCapacity = 0;
    }

    private void RemoveFirst(int chains)
    {
        if (chains >= ChainCount)
        {
            Clear();
            return;
        }

        int firstSegment = _segmentStart[chains];
        int movedSegments = _usedSegments - firstSegment;
        Array.Copy(_segments, firstSegment, _segments, 0, movedSegments);
        int remaining = ChainCount - chains;
        long capacity = 0;
        for (int i = 0; i < remaining; i++)
        {
            _heads[i] = _heads[i + chains];
            _segmentStart[i] = _segmentStart[i + chains] - firstSegment;
            _segmentCount[i] = _segmentCount[i + chains];
            _capacity[i] = _capacity[i + chains];
            capacity += _capacity[i];
        }

        ChainCount = remaining;
        _usedSegments = movedSegments;
        TotalCapacity = capacity;
    }
}
