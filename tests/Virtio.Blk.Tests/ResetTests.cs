using System;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Xunit;

namespace Virtio.Blk.Tests;

public sealed class ResetTests
{
    /// <summary>A copy of all guest memory, to prove later that nothing in it changed.</summary>
    internal static byte[] Snapshot(BlkRig rig)
    {
        int size = checked((int)rig.Memory.FindRegion(new GuestAddress(0))!.Size);
        Assert.True(rig.Memory.TryGetSpan(new GuestAddress(0), size, out Span<byte> all));
        return all.ToArray();
    }

    /// <summary>Whether guest memory still equals <paramref name="before"/>.</summary>
    internal static bool IsUnchanged(BlkRig rig, byte[] before) =>
        rig.Memory.TryGetSpan(new GuestAddress(0), before.Length, out Span<byte> now) && now.SequenceEqual(before);

    /// <summary>Asserts guest memory equals <paramref name="before"/>, naming the first changed byte.</summary>
    internal static void AssertUnchanged(BlkRig rig, byte[] before)
    {
        Assert.True(rig.Memory.TryGetSpan(new GuestAddress(0), before.Length, out Span<byte> now));
        int changed = now.CommonPrefixLength(before);
        Assert.True(changed == before.Length, $"guest byte 0x{changed:x} was written after the reset");
    }

    private static ushort UsedIdx(BlkRig rig) =>
        BitConverter.ToUInt16(rig.Guests[0].Span(new GuestAddress(rig.Guests[0].UsedRing.Value + SplitRingLayout.UsedIdxOffset), 2));

    [Fact]
    public void CompletionDuringReset_IsNotWrittenToGuest_AndResetWaitsForIt()
    {
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(faulty);
        faulty.Rule = _ => Fault.Hold;
        rig.Post(0, (uint)BlockRequestType.Out, 0, BlkRig.Pattern(512, 1));
        rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 512);
        faulty.WaitHeld(2);
        var oldGuest = rig.Guests[0];

        using var resetDone = new ManualResetEventSlim();
        var reset = new Thread(() =>
        {
            rig.Reset();
            resetDone.Set();
        });
        reset.Start();

        // The reset waits for the held requests; give it a moment to be seen waiting.
        Assert.False(resetDone.Wait(TimeSpan.FromMilliseconds(100), TestContext.Current.CancellationToken));
        faulty.Rule = _ => Fault.None;
        Assert.Equal(2, faulty.ReleaseHeld());
        Assert.True(resetDone.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        reset.Join();

        Assert.Equal(0, rig.Device.InFlight);
        Assert.Equal(0, UsedIdx(rig));
        Assert.False(oldGuest.TryGetUsed(out _, out _));

        // The device comes back with its full pool.
        rig.Probe();
        var pending = new Pending[rig.Guests[0].QueueSize / 3];
        for (int i = 0; i < pending.Length; i++)
        {
            pending[i] = rig.Post(0, (uint)BlockRequestType.In, (ulong)i, inLength: 512);
        }

        foreach (Pending request in pending)
        {
            Assert.Equal(BlockStatus.Ok, rig.Wait(request).BlockStatus);
        }
    }

    [Fact]
    public void CompletionAfterResetTimedOut_IsDropped_NewRingUntouched()
    {
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        var options = new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromMilliseconds(50) };
        using var rig = new BlkRig(faulty, options);
        faulty.Rule = _ => Fault.Hold;
        Pending stale = rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 512);
        faulty.WaitHeld(1);

        rig.Reset();
        Assert.Equal(1, rig.Device.InFlight);
        Assert.Contains(rig.Logger.Entries, e => e.Message.Contains("still in flight", StringComparison.Ordinal));

        rig.Probe();
        faulty.Rule = _ => Fault.None;
        Assert.Equal(1, faulty.ReleaseHeld());

        Assert.Equal(0, rig.Device.InFlight);
        Assert.Equal(0, UsedIdx(rig));
        Assert.False(rig.TryCollect(0));
        _ = stale;

        Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(512, 4)).BlockStatus);
        Assert.Equal(BlkRig.Pattern(512, 4), rig.Read(0, 512).Data);
    }

    [Fact]
    public void InfiniteResetTimeout_WaitsForAHeldRequest_LongerThanAnyTimeout_AndAbandonsNothing()
    {
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        var options = new BlockDeviceOptions { QueueSize = 64, ResetTimeout = Timeout.InfiniteTimeSpan };
        using var rig = new BlkRig(faulty, options);
        faulty.Rule = _ => Fault.Hold;
        rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 512);
        faulty.WaitHeld(1);

        using var resetDone = new ManualResetEventSlim();
        var reset = new Thread(() =>
        {
            rig.Reset();
            resetDone.Set();
        });
        reset.Start();

        // An infinite timeout must not be read as "already expired" (-1 ms).
        Assert.False(resetDone.Wait(TimeSpan.FromMilliseconds(300), TestContext.Current.CancellationToken));
        faulty.Rule = null;
        Assert.Equal(1, faulty.ReleaseHeld());
        Assert.True(resetDone.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        reset.Join();

        Assert.Equal(0, rig.Device.InFlight);
        Assert.Equal(0, UsedIdx(rig));
        Assert.DoesNotContain(rig.Logger.Entries, e => e.Message.Contains("still in flight", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(BlockRequestType.In)]
    [InlineData(BlockRequestType.Out)]
    public void DelayedRequestReleasedAfterResetGaveUp_WritesNoGuestByte_NorTheDisk(BlockRequestType type)
    {
        // The use-after-free class: the driver reset and reused its buffers; the backend's late
        // transfer must not land in them (a read) or take them as data (a write).
        var disk = new MemoryBlockBackend(1 << 20);
        disk.GetSpan(0, 4096).Fill(0x5A);
        var faulty = new FaultInjectingBlockBackend(disk);
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromMilliseconds(50) });
        faulty.Rule = _ => Fault.Hold;
        if (type == BlockRequestType.In)
        {
            rig.Post(0, (uint)type, 0, inLength: 4096);
        }
        else
        {
            rig.Post(0, (uint)type, 0, BlkRig.Pattern(4096, 9));
        }

        faulty.WaitHeld(1);
        rig.Reset();
        rig.Probe();
        byte[] before = Snapshot(rig);

        faulty.Rule = null;
        Assert.Equal(1, faulty.ReleaseHeld());
        Assert.Equal(0, rig.Device.InFlight);
        AssertUnchanged(rig, before);
        Assert.True(disk.GetSpan(0, 4096).IndexOfAnyExcept((byte)0x5A) < 0, "the abandoned write reached the disk");
        Assert.Equal(BlockStatus.Ok, rig.Read(0, 512).BlockStatus);
    }

    [Fact]
    public void ResetWithQueuedCompletionsOnIoThread_DropsThem_AndEveryRequestIsAccountedFor()
    {
        using var ioThread = new Virtio.Core.Threading.IoThread("blk-reset");
        ioThread.Start();
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, IoThreads = [ioThread] });
        faulty.Rule = _ => Fault.Async;

        for (int round = 0; round < 50; round++)
        {
            for (int i = 0; i < 8; i++)
            {
                rig.Post(0, (uint)BlockRequestType.In, (ulong)i, inLength: 512);
            }

            rig.Reset();
            Assert.Equal(0, rig.Device.InFlight);
            rig.Probe();
        }

        Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
    }
}
