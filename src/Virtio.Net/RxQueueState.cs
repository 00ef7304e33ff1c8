using System;
using System.Threading;

namespace Virtio.Net;

/// <summary>
/// The receive side of one queue pair: a staging buffer holding the frame taken from the backend
/// until the guest has room for it, and the guest chains popped for it (reserved) but not yet used.
/// Touched only while the device processes the pair's receive queue (serialized by Core) or resets.
/// </summary>
internal sealed class RxQueueState
{
    public RxQueueState(NetDevice device, int pair, int maxChains, int stagingSize)
    {
        Device = device;
        Pair = pair;
        QueueIndex = (ushort)(2 * pair);
        Staging = new byte[stagingSize];
        Heads = new ushort[maxChains];
        SegmentStart = new int[maxChains];
        SegmentCount = new int[maxChains];
        Capacity = new int[maxChains];
        Written = new int[maxChains];
        Segments = new NetSegment[maxChains * 2];
    }

    public NetDevice Device { get; }

    public int Pair { get; }

    public ushort QueueIndex { get; }

    public Lock Gate { get; } = new();

    /// <summary>The IoThread registration of the backend's readiness fd; null while not watched.</summary>
    public IDisposable? Registration { get; set; }

    public byte[] Staging { get; }

    public bool HasPending { get; set; }

    public int PendingLength { get; set; }

    public VirtioNetHeader PendingHeader { get; set; }

    public ushort[] Heads { get; }

    public int[] SegmentStart { get; }

    public int[] SegmentCount { get; }

    public int[] Capacity { get; }

    public int[] Written { get; }

    public NetSegment[] Segments { get; private set; }

    public int ChainCount { get; set; }

    public int UsedSegments { get; set; }

    public long TotalCapacity { get; set; }

    public void AddSegment(NetSegment segment)
    {
        if (UsedSegments == Segments.Length)
        {
            // Rare: indirect tables make chains longer than the ring; grows once, then stays.
            NetSegment[] grown = new NetSegment[Segments.Length * 2];
            Segments.CopyTo(grown, 0);
            Segments = grown;
        }

        Segments[UsedSegments++] = segment;
    }

    /// <summary>Forgets the first <paramref name="chains"/> reserved chains (returned to the guest).</summary>
    public void RemoveFirst(int chains)
    {
        if (chains >= ChainCount)
        {
            ChainCount = 0;
            UsedSegments = 0;
            TotalCapacity = 0;
            return;
        }

        int firstSegment = SegmentStart[chains];
        int movedSegments = UsedSegments - firstSegment;
        Array.Copy(Segments, firstSegment, Segments, 0, movedSegments);
        int remaining = ChainCount - chains;
        long capacity = 0;
        for (int i = 0; i < remaining; i++)
        {
            Heads[i] = Heads[i + chains];
            SegmentStart[i] = SegmentStart[i + chains] - firstSegment;
            SegmentCount[i] = SegmentCount[i + chains];
            Capacity[i] = Capacity[i + chains];
            capacity += Capacity[i];
        }

        ChainCount = remaining;
        UsedSegments = movedSegments;
        TotalCapacity = capacity;
    }

    public void Clear()
    {
        HasPending = false;
        ChainCount = 0;
        UsedSegments = 0;
        TotalCapacity = 0;
    }
}
