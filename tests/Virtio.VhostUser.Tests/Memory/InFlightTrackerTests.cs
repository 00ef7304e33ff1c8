using System;
using System.Buffers.Binary;
using Virtio.VhostUser.Memory;
using Xunit;

namespace Virtio.VhostUser.Tests.Memory;

/// <summary>
/// The inflight region's split-queue bookkeeping (vhost-user.rst, "InFlight I/O tracking") as the
/// queue's seam drives it, and what a restarted back end reads back from it.
/// </summary>
public sealed class InFlightTrackerTests
{
    private const ushort QueueSize = 8;

    [Fact]
    public void PublishedBatch_IsCleared_AndTheRestIsResubmittedOldestFirst()
    {
        using InFlightRegion region = InFlightRegion.Create(1, QueueSize);
        InFlightTracker tracker = Started(region, usedIdx: 10);
        tracker.ChainTaken(5);
        tracker.ChainTaken(2);
        tracker.ChainTaken(7);
        tracker.ChainTaken(1);
        tracker.ChainUsed(2);
        tracker.ChainUsed(1);
        tracker.UsedPublished(12);

        Span<byte> header = region.QueueSpan(0);
        Assert.Equal(12, BinaryPrimitives.ReadUInt16LittleEndian(header[14..]));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(header[12..]));

        var next = new InFlightTracker(region, 0);
        Assert.Equal([5, 7], next.Recover(usedIdx: 12));
    }

    [Fact]
    public void BatchPublishedButNotCleared_IsClearedOnRecovery()
    {
        using InFlightRegion region = InFlightRegion.Create(1, QueueSize);
        InFlightTracker tracker = Started(region, usedIdx: 0);
        tracker.ChainTaken(3);
        tracker.ChainTaken(4);
        tracker.ChainTaken(6);
        tracker.ChainUsed(6);
        tracker.ChainUsed(3);

        // The back end died right after storing used->idx = 2, before UsedPublished cleared the batch.
        var next = new InFlightTracker(region, 0);
        Assert.Equal([4], next.Recover(usedIdx: 2));
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(region.QueueSpan(0)[14..]));
    }

    [Fact]
    public void UsedButNotPublished_IsStillInFlight()
    {
        using InFlightRegion region = InFlightRegion.Create(1, QueueSize);
        InFlightTracker tracker = Started(region, usedIdx: 0);
        tracker.ChainTaken(3);
        tracker.ChainTaken(4);
        tracker.ChainUsed(4);

        Assert.Equal([3, 4], new InFlightTracker(region, 0).Recover(usedIdx: 0));
    }

    [Fact]
    public void HostileBatchLinks_StayInsideTheRegion()
    {
        using InFlightRegion region = InFlightRegion.Create(1, QueueSize);
        InFlightTracker tracker = Started(region, usedIdx: 0);
        tracker.ChainTaken(1);
        Span<byte> queue = region.QueueSpan(0);
        BinaryPrimitives.WriteUInt16LittleEndian(queue[12..], 0xFFFF); // last_batch_head outside
        BinaryPrimitives.WriteUInt16LittleEndian(queue[14..], 0x8000); // used_idx far behind

        // Too far behind to be a batch: nothing walked, the region resynchronised, head 1 kept.
        Assert.Equal([1], new InFlightTracker(region, 0).Recover(usedIdx: 3));
        Assert.Equal(3, BinaryPrimitives.ReadUInt16LittleEndian(queue[14..]));
    }

    /// <summary>A tracker on a fresh region, as a ring starts with it.</summary>
    private static InFlightTracker Started(InFlightRegion region, ushort usedIdx)
    {
        var tracker = new InFlightTracker(region, 0);
        Assert.Empty(tracker.Recover(usedIdx));
        return tracker;
    }
}
