using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// A guest with two vCPUs can write QueueReady = 0 and QueueNum while the device thread is inside a
/// pop or a completion (the review's finding 6). The size the queue indexes by must stay within its
/// per-head arrays whatever is written, and be read once per call.
/// </summary>
public sealed class QueueSizeRaceTests
{
    private const ushort MaxSize = 16;

    [Fact]
    public void Size_AboveMaxSize_IsStoredAsZero_AndActivationRefusesIt()
    {
        using var driver = new GuestDriver(MaxSize);
        var queue = new SplitVirtqueue(driver.Memory, 0, MaxSize);
        driver.Configure(queue);

        queue.Size = 4096;

        Assert.Equal(0, queue.Size);
        Assert.False(queue.TryActivate(out QueueError error));
        Assert.Equal(QueueError.InvalidQueueSize, error);
    }

    [Fact]
    public void RestoredState_WithASizeAboveMaxSize_IsRefused()
    {
        using var driver = new GuestDriver(MaxSize);
        var queue = new SplitVirtqueue(driver.Memory, 0, MaxSize);

        bool restored = queue.TryRestoreState(
            new SplitVirtqueueState(4096, driver.DescriptorTable, driver.AvailRing, driver.UsedRing, 0, 0, true, false, false), out QueueError error);

        Assert.False(restored);
        Assert.Equal(QueueError.InvalidQueueSize, error);
        Assert.Equal(0, queue.Size);
    }

    [Fact]
    public void Pop_WhileTheDriverStopsTheQueueAndWritesAHugeSize_BreaksTheQueue_DoesNotThrow()
    {
        // The guest puts head 200 on the ring of a 16-entry queue. Just after the device has read
        // the ring entry (the queue was live when the pop started), the other vCPU writes
        // QueueReady = 0 and QueueNum = 4096. The pop must judge head 200 by one size, not index
        // a 16-entry array with it.
        using var driver = new GuestDriver(MaxSize);
        var memory = new InterleavingGuestMemory(driver.Memory);
        var queue = new SplitVirtqueue(memory, 0, MaxSize);
        driver.Configure(queue);
        Assert.True(queue.TryActivate(out _));
        driver.PutOnAvailRing(200);
        driver.Kick();
        memory.Trigger = new GuestAddress(driver.AvailRing.Value + (uint)new SplitRingLayout(MaxSize).AvailEntryOffset(0));
        memory.OnAccess = () =>
        {
            queue.Deactivate();
            queue.Size = 4096;
        };

        bool popped = queue.TryPopChain(out _);

        Assert.Null(memory.OnAccess); // the interleaving ran
        Assert.False(popped);
        Assert.Equal(QueueError.InvalidHeadIndex, queue.Error);
    }

    [Fact]
    public void Completion_AfterTheDriverShrankAStoppedQueue_LeavesInFlight_AndIsDropped()
    {
        // A chain popped at head 12; the driver stops the queue and writes QueueNum = 4. The late
        // completion of head 12 must still leave the in-flight count (a stop waits for it), reach no
        // used ring, and throw nothing.
        using var driver = new GuestDriver(MaxSize);
        var queue = new SplitVirtqueue(driver.Memory, 0, MaxSize);
        driver.Configure(queue);
        Assert.True(queue.TryActivate(out _));
        for (int i = 0; i < 13; i++)
        {
            driver.AddChain(BufferSpec.Write(8));
        }

        driver.Kick();
        ushort last = 0;
        for (int i = 0; i < 13; i++)
        {
            Assert.True(queue.TryPopChain(out DescriptorChain chain));
            last = chain.HeadIndex;
        }

        for (ushort head = 0; head < 13; head++)
        {
            if (head != last)
            {
                Assert.True(queue.AddUsed(head, 0));
            }
        }

        Assert.True(last >= 4);
        queue.Deactivate();
        queue.Size = 4;
        Assert.True(queue.TryActivate(out _));

        Assert.False(queue.AddUsed(last, 8));

        Assert.Equal(0, queue.InFlightCount);
        Assert.Equal(QueueError.None, queue.Error);
    }

    [Fact]
    public void AddUsed_OfAnyHead_AfterAnyWrittenSize_NeverThrows()
    {
        using var driver = new GuestDriver(MaxSize);
        var queue = new SplitVirtqueue(driver.Memory, 0, MaxSize);
        driver.Configure(queue);
        Assert.True(queue.TryActivate(out _));
        queue.Deactivate();
        foreach (ushort size in new ushort[] { 0, 3, MaxSize, MaxSize + 1, 4096, ushort.MaxValue })
        {
            queue.Size = size;
            foreach (ushort head in new ushort[] { 0, MaxSize - 1, MaxSize, 200, 4095, ushort.MaxValue })
            {
                Assert.False(queue.AddUsed(head, 1));
            }
        }

        Assert.Equal(0, queue.InFlightCount);
    }
}
