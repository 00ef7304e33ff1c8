using System;
using System.Buffers.Binary;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.Tests.Memory;

/// <summary>
/// The in-flight region's packed-queue bookkeeping (vhost-user.rst, "InFlight I/O tracking", packed
/// layout) as the queue's seam drives it, what a restarted back end reads back from it (a batch caught
/// between its used descriptors and their flags is settled by the ring), and regions the front end
/// scribbled on, which are started afresh with a reason and never followed out of bounds.
/// </summary>
public sealed class PackedInFlightTrackerTests
{
    private const ushort RingSize = 16;
    private const ushort Avail = 1 << 7;
    private const ushort Used = 1 << 15;
    private static readonly PackedBase s_initial = PackedBase.Initial;

    [Fact]
    public void ChainInFlight_IsResubmittedFromItsCopy_AndTheRingStartsPastIt()
    {
        using InFlightRegion region = InFlightRegion.Create(1, RingSize);
        PackedInFlightTracker tracker = Started(region);
        byte[] chain = Chain(id: 3, 0x1000, 0x2000);
        tracker.PackedChainTaken(3, chain.AsSpan(0, 16), chain.AsSpan(16));

        PackedRecovery recovery = Recover(region, Ring(), out string? why);

        Assert.Null(why);
        Assert.Equal(new PackedBase(2, true, 0, true), recovery.Start);
        Assert.Equal([2], recovery.ChainLengths);
        Assert.Equal(chain, recovery.Descriptors);
    }

    [Fact]
    public void UsedButFlagsNotStored_IsStillInFlight()
    {
        using InFlightRegion region = InFlightRegion.Create(1, RingSize);
        PackedInFlightTracker tracker = Started(region);
        byte[] chain = Chain(id: 3, 0x1000, 0x2000);
        tracker.PackedChainTaken(3, chain, default);
        tracker.ChainUsed(3);

        // Slot 0 still has the driver's flags: the used descriptor was never handed over.
        byte[] ring = Ring();
        SetFlags(ring, 0, Avail);
        PackedRecovery recovery = Recover(region, ring, out _);

        Assert.Equal([2], recovery.ChainLengths);
        Assert.Equal(new PackedBase(2, true, 0, true), recovery.Start);
    }

    [Theory]
    [InlineData(Avail | Used)] // the used descriptor, stored
    [InlineData(Used)] // the driver took it already and made the slot available again, next lap
    public void UsedAndFlagsStored_ButNotCommitted_IsDone(ushort slotFlags)
    {
        using InFlightRegion region = InFlightRegion.Create(1, RingSize);
        PackedInFlightTracker tracker = Started(region);
        tracker.PackedChainTaken(3, Chain(id: 3, 0x1000, 0x2000), default);
        tracker.PackedChainTaken(5, Chain(id: 5, 0x3000), default);
        tracker.ChainUsed(3);

        byte[] ring = Ring();
        SetFlags(ring, 0, slotFlags);
        PackedRecovery recovery = Recover(region, ring, out _);

        Assert.Equal([1], recovery.ChainLengths);
        Assert.Equal(5, BinaryPrimitives.ReadUInt16LittleEndian(recovery.Descriptors.AsSpan(12)));
        Assert.Equal(new PackedBase(3, true, 2, true), recovery.Start);
    }

    [Fact]
    public void Published_IsDone_AndItsEntriesAreFreeAgain()
    {
        using InFlightRegion region = InFlightRegion.Create(1, RingSize);
        PackedInFlightTracker tracker = Started(region);
        for (int lap = 0; lap < 3 * RingSize; lap++)
        {
            // Chains of three, used at once: entries return to the free list, the positions wrap.
            ushort id = (ushort)(lap % RingSize);
            tracker.PackedChainTaken(id, Chain(id, 0x1000, 0x2000, 0x3000), default);
            tracker.ChainUsed(id);
            tracker.UsedPublished(0);
        }

        PackedRecovery recovery = Recover(region, Ring(), out string? why);

        Assert.Null(why);
        Assert.Empty(recovery.ChainLengths);
        // 144 descriptors on a ring of 16: nine laps, so position 0 with both counters flipped nine times (to 0).
        Assert.Equal(new PackedBase(0, false, 0, false), recovery.Start);
    }

    [Fact]
    public void TakeUsePublish_AllocatesNothing()
    {
        using InFlightRegion region = InFlightRegion.Create(1, RingSize);
        PackedInFlightTracker tracker = Started(region);
        byte[] chain = Chain(id: 0, 0x1000, 0x2000, 0x3000);
        tracker.PackedChainTaken(0, chain.AsSpan(0, 32), chain.AsSpan(32)); // warm up
        tracker.ChainUsed(0);
        tracker.UsedPublished(0);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < 10_000; round++)
        {
            ushort id = (ushort)(round % 4);
            BinaryPrimitives.WriteUInt16LittleEndian(chain.AsSpan(32 + 12), id);
            tracker.PackedChainTaken(id, chain.AsSpan(0, 32), chain.AsSpan(32));
            tracker.ChainUsed(id);
            tracker.UsedPublished(0);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void RegionOfASplitRing_IsStartedAfresh()
    {
        using InFlightRegion region = InFlightRegion.Create(1, RingSize);
        var split = new InFlightTracker(region, 0);
        Assert.Empty(split.Recover(usedIdx: 0));
        split.ChainTaken(4);

        var tracker = new PackedInFlightTracker(region, 0, RingSize);
        Assert.Null(tracker.Recover(Ring(), new PackedBase(5, true, 5, true), out string? why));
        Assert.Null(why);
        Assert.Empty(Recover(region, Ring(), out _).ChainLengths);

        // And the other way round: the split tracker does not read a packed region as its own.
        Assert.Empty(new InFlightTracker(region, 0).Recover(usedIdx: 0));
    }

    [Theory]
    [InlineData("inflight", "has inflight 7")]
    [InlineData("num0", "has 0 descriptor(s)")]
    [InlineData("numHuge", "has 40 descriptor(s)")]
    [InlineData("loop", "in another chain")]
    [InlineData("nextOutside", "outside the ring")]
    [InlineData("idTwice", "given twice")]
    [InlineData("idOutside", "out of range")]
    [InlineData("usedPast", "used position is past the ring")]
    public void HostileRegion_IsStartedAfreshWithTheReason(string damage, string reason)
    {
        using InFlightRegion region = InFlightRegion.Create(1, RingSize);
        PackedInFlightTracker tracker = Started(region);
        tracker.PackedChainTaken(3, Chain(id: 3, 0x1000, 0x2000), default); // entries 0, 1
        tracker.PackedChainTaken(5, Chain(id: 5, 0x3000, 0x4000), default); // entries 2, 3
        Span<byte> queue = region.QueueSpan(0);
        Span<byte> Entry(int e) => region.QueueSpan(0).Slice(32 + (32 * e), 32);
        switch (damage)
        {
            case "inflight": Entry(0)[0] = 7; break;
            case "num0": BinaryPrimitives.WriteUInt16LittleEndian(Entry(0)[6..], 0); break;
            case "numHuge": BinaryPrimitives.WriteUInt16LittleEndian(Entry(0)[6..], 40); break;
            case "loop": BinaryPrimitives.WriteUInt16LittleEndian(Entry(2)[2..], 1); BinaryPrimitives.WriteUInt64LittleEndian(Entry(2)[8..], 0); break;
            case "nextOutside": BinaryPrimitives.WriteUInt16LittleEndian(Entry(0)[2..], 0xFFF0); break;
            case "idTwice": BinaryPrimitives.WriteUInt16LittleEndian(Entry(3)[16..], 3); break;
            case "idOutside": BinaryPrimitives.WriteUInt16LittleEndian(Entry(1)[16..], 999); break;
            case "usedPast": BinaryPrimitives.WriteUInt16LittleEndian(queue[18..], 40); break;
        }

        var next = new PackedInFlightTracker(region, 0, RingSize);
        Assert.Null(next.Recover(Ring(), s_initial, out string? why));
        Assert.NotNull(why);
        Assert.Contains(reason, why, StringComparison.Ordinal);

        // Afresh: nothing in flight any more, and the region holds together again.
        Assert.Empty(Recover(region, Ring(), out string? again).ChainLengths);
        Assert.Null(again);
    }

    /// <summary>A tracker on a fresh region, as a ring starts with it.</summary>
    private static PackedInFlightTracker Started(InFlightRegion region)
    {
        var tracker = new PackedInFlightTracker(region, 0, RingSize);
        Assert.Null(tracker.Recover(Ring(), s_initial, out string? why));
        Assert.Null(why);
        return tracker;
    }

    private static PackedRecovery Recover(InFlightRegion region, byte[] ring, out string? why)
    {
        PackedRecovery? recovery = new PackedInFlightTracker(region, 0, RingSize).Recover(ring, s_initial, out why);
        Assert.NotNull(recovery);
        return recovery;
    }

    private static byte[] Ring() => new byte[RingSize * 16];

    private static void SetFlags(byte[] ring, int position, ushort flags) =>
        BinaryPrimitives.WriteUInt16LittleEndian(ring.AsSpan((position * 16) + 14), flags);

    /// <summary>A chain's ring descriptors as Linux writes them: every one with the buffer ID, NEXT on all but the last.</summary>
    private static byte[] Chain(ushort id, params ulong[] addresses)
    {
        byte[] chain = new byte[addresses.Length * 16];
        for (int i = 0; i < addresses.Length; i++)
        {
            Span<byte> d = chain.AsSpan(i * 16, 16);
            BinaryPrimitives.WriteUInt64LittleEndian(d, addresses[i]);
            BinaryPrimitives.WriteUInt32LittleEndian(d[8..], 512u + (uint)i);
            BinaryPrimitives.WriteUInt16LittleEndian(d[12..], id);
            BinaryPrimitives.WriteUInt16LittleEndian(d[14..], (ushort)(Avail | (i + 1 < addresses.Length ? 1 : 0)));
        }

        return chain;
    }
}
