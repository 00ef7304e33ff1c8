using System;
using Virtio.Core.Memory;
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
    private readonly int[] _written;
    private NetSegment[] _segments;
    private int _usedSegments;

    public NetRxReservation(int maxChains)
    {
        _heads = new ushort[maxChains];
        _segmentStart = new int[maxChains];
        _segmentCount = new int[maxChains];
        _capacity = new int[maxChains];
        _written = new int[maxChains];
        _segments = new NetSegment[maxChains * 2];
    }

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
            long capacity = 0;
            while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
            {
                if (buffer.IsWriteOnly && buffer.Length > 0)
                {
                    AddSegment(new NetSegment(buffer.Address, buffer.Length));
                    capacity += buffer.Length;
                }
            }

            if (chain.Error != QueueError.None)
            {
                _usedSegments = start;
                return false;
            }

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
    public void Complete(SplitVirtqueue queue, IGuestMemory memory, ReadOnlySpan<byte> header, ReadOnlySpan<byte> frame, int chains)
    {
        Array.Clear(_written, 0, chains);
        var cursor = new Cursor();
        Write(memory, ref cursor, header);
        Write(memory, ref cursor, frame);
        for (int i = 0; i < chains; i++)
        {
            queue.AddUsed(_heads[i], (uint)_written[i]);
        }

        RemoveFirst(chains);
    }

    /// <summary>Forgets every reserved chain (the device is resetting: Core clears the rings).</summary>
    public void Clear()
    {
        ChainCount = 0;
        _usedSegments = 0;
        TotalCapacity = 0;
    }

    private void Write(IGuestMemory memory, ref Cursor cursor, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty && cursor.Chain < ChainCount)
        {
            if (cursor.Segment >= _segmentCount[cursor.Chain])
            {
                cursor.Chain++;
                cursor.Segment = 0;
                cursor.Offset = 0;
                continue;
            }

            NetSegment segment = _segments[_segmentStart[cursor.Chain] + cursor.Segment];
            if (!memory.TryGetSpan(segment.Address, segment.Length, out Span<byte> span))
            {
                cursor.Segment++;
                cursor.Offset = 0;
                continue;
            }

            int take = Math.Min(source.Length, span.Length - cursor.Offset);
            source[..take].CopyTo(span[cursor.Offset..]);
            source = source[take..];
            cursor.Offset += take;
            _written[cursor.Chain] += take;
            if (cursor.Offset == span.Length)
            {
                cursor.Segment++;
                cursor.Offset = 0;
            }
        }
    }

    private void AddSegment(NetSegment segment)
    {
        if (_usedSegments == _segments.Length)
        {
            // Rare: indirect tables make chains longer than the ring; grows once, then stays.
            NetSegment[] grown = new NetSegment[_segments.Length * 2];
            _segments.CopyTo(grown, 0);
            _segments = grown;
        }

        _segments[_usedSegments++] = segment;
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

    private struct Cursor
    {
        public int Chain;
        public int Segment;
        public int Offset;
    }
}
