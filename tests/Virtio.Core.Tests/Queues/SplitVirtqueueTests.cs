using System;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

public sealed class SplitVirtqueueTests
{
    [Fact]
    public void DirectChain_YieldsBuffersInOrder_AndCompletesThroughTheUsedRing()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        ushort head = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Readable(100), BufferSpec.Write(512), BufferSpec.Write(1));
        driver.Kick();

        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        Assert.Equal(head, chain.HeadIndex);
        var seen = new System.Collections.Generic.List<(int, bool, byte)>();
        while (chain.TryMoveNext(out DescriptorBuffer buffer, out QueueError error))
        {
            Assert.Equal(QueueError.None, error);
            seen.Add((buffer.Length, buffer.IsWriteOnly, buffer.Span[0]));
        }

        Assert.Equal([(16, false, (byte)0xA5), (100, false, (byte)0xA5), (512, true, (byte)0), (1, true, (byte)0)], seen);
        Assert.Equal(116UL, chain.ReadableLength);
        Assert.Equal(513UL, chain.WritableLength);
        Assert.Equal(QueueError.None, chain.Error);

        Assert.True(queue.AddUsed(head, 513));
        Assert.False(driver.TryGetUsed(out _, out _)); // not published yet
        Assert.True(queue.PublishUsed());
        Assert.True(driver.TryGetUsed(out ushort usedHead, out uint length));
        Assert.Equal(head, usedHead);
        Assert.Equal(513u, length);
        Assert.Equal(16, driver.NumFree);
    }

    [Fact]
    public void PublishedUsed_LagsNextUsed_FromAddUsedUntilPublish()
    {
        // A returned chain leaves InFlightCount at AddUsed but reaches the driver only at PublishUsed;
        // whoever stops a ring (vhost-user GET_VRING_BASE) must wait for both.
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        ushort head = driver.AddChain(BufferSpec.Write(8));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        Assert.Equal(head, chain.HeadIndex);

        Assert.True(queue.AddUsed(head, 8));
        Assert.Equal(0, queue.InFlightCount);
        Assert.Equal(0, queue.PublishedUsed);
        Assert.Equal(1, queue.NextUsed);
        Assert.False(driver.TryGetUsed(out _, out _));

        queue.PublishUsed();
        Assert.Equal(queue.NextUsed, queue.PublishedUsed);
        Assert.True(driver.TryGetUsed(out ushort used, out _));
        Assert.Equal(head, used);
    }

    [Fact]
    public void IndirectChain_IsWalkedThroughItsTable()
    {
        using var driver = new GuestDriver(16, indirect: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        ushort head = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Write(4096), BufferSpec.Write(1));
        Assert.Equal(15, driver.NumFree); // one descriptor in the ring's table
        driver.Kick();

        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        int count = 0;
        while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
        {
            count++;
            if (buffer.IsWriteOnly)
            {
                buffer.Span.Fill(0x77);
            }
        }

        Assert.Equal(3, count);
        Assert.Equal(4097UL, chain.WritableLength);
        var buffers = driver.ChainBuffers(head);
        Assert.Equal(0x77, driver.Span(buffers[1].Address, 1)[0]);
    }

    [Fact]
    public void Chain_Reset_WalksAgainFromTheHead()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.AddChain(BufferSpec.Readable(16), BufferSpec.Write(32));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        while (chain.TryMoveNext(out _, out _))
        {
        }

        chain.Reset();
        Assert.Equal(0, chain.Count);
        Assert.True(chain.TryMoveNext(out DescriptorBuffer first, out _));
        Assert.Equal(16, first.Length);
    }

    [Fact]
    public void UsedLength_IsCappedAtTheWritableBytesWalked()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.AddChain(BufferSpec.Readable(16), BufferSpec.Write(100));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        while (chain.TryMoveNext(out _, out _))
        {
        }

        queue.AddUsed(chain.HeadIndex, 1_000_000);
        queue.PublishUsed();
        Assert.True(driver.TryGetUsed(out _, out uint length));
        Assert.Equal(100u, length);
    }

    [Fact]
    public void AddUsed_OfAHeadNotInFlight_IsRefused()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        Assert.False(queue.AddUsed(3, 0));
        Assert.False(queue.AddUsed(999, 0));
        Assert.Equal(0, queue.NextUsed);
    }

    [Fact]
    public void PublishUsed_MovesUsedIdxOnceForABatch()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        for (int i = 0; i < 5; i++)
        {
            driver.AddChain(BufferSpec.Write(8));
        }

        driver.Kick();
        while (queue.TryPopChain(out DescriptorChain chain))
        {
            queue.AddUsed(chain.HeadIndex, 0);
        }

        Assert.Equal(0, ReadUsedIdx(driver));
        Assert.True(queue.PublishUsed());
        Assert.Equal(5, ReadUsedIdx(driver));
        Assert.False(queue.PublishUsed()); // nothing new: no second interrupt
    }

    [Fact]
    public void WithoutEventIdx_NoInterruptFlag_SuppressesTheInterrupt()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.DisableCallbacks();
        CompleteOne(driver, queue);
        Assert.False(queue.PublishUsed());

        driver.EnableCallbacks();
        CompleteOne(driver, queue);
        Assert.True(queue.PublishUsed());
    }

    [Fact]
    public void WithEventIdx_InterruptsOnlyWhenUsedEventIsCrossed()
    {
        using var driver = new GuestDriver(16, eventIdx: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.SetUsedEvent(2); // interrupt when the entry at used index 2 is published
        CompleteOne(driver, queue);
        Assert.False(queue.PublishUsed()); // used idx 0 -> 1
        CompleteOne(driver, queue);
        Assert.False(queue.PublishUsed()); // 1 -> 2
        CompleteOne(driver, queue);
        Assert.True(queue.PublishUsed());  // 2 -> 3 crosses used_event 2
        CompleteOne(driver, queue);
        Assert.False(queue.PublishUsed()); // 3 -> 4: used_event stays behind
    }

    [Theory]
    [InlineData(0, 1, 0, true)]
    [InlineData(1, 1, 0, false)]
    [InlineData(5, 10, 0, true)]
    [InlineData(10, 10, 0, false)]
    [InlineData(65535, 0, 65534, true)]   // across the 16-bit wrap
    [InlineData(65534, 1, 65535, false)]
    [InlineData(0, 3, 65533, true)]
    [InlineData(65533, 3, 65533, true)]
    [InlineData(3, 3, 65533, false)]
    public void NeedEvent_FollowsTheSpecRuleAcrossWrap(int eventIdx, int newIdx, int oldIdx, bool expected) =>
        Assert.Equal(expected, SplitVirtqueue.NeedEvent((ushort)eventIdx, (ushort)newIdx, (ushort)oldIdx));

    [Fact]
    public void DisableNotification_SetsNoNotify_AndEnableClearsIt()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        queue.DisableNotification();
        Assert.Equal(1, driver.ReadUsedFlags());
        driver.AddChain(BufferSpec.Readable(8));
        Assert.False(driver.Kick());

        Assert.True(queue.EnableNotification()); // the buffer added meanwhile is reported
        Assert.Equal(0, driver.ReadUsedFlags());
        driver.AddChain(BufferSpec.Readable(8));
        Assert.True(driver.Kick());
    }

    [Fact]
    public void WithEventIdx_EnableNotification_PublishesAvailEventAtTheNextIndex()
    {
        using var driver = new GuestDriver(16, eventIdx: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.AddChain(BufferSpec.Readable(8));
        driver.AddChain(BufferSpec.Readable(8));
        driver.Kick();
        Assert.True(queue.TryPopChain(out _));
        Assert.True(queue.TryPopChain(out _));
        Assert.False(queue.EnableNotification());
        Assert.Equal(2, driver.ReadAvailEvent());
        Assert.Equal(0, driver.ReadUsedFlags()); // flags are not used with EVENT_IDX
        driver.AddChain(BufferSpec.Readable(8));
        Assert.True(driver.Kick());
    }

    [Fact]
    public void TryActivate_RejectsBadSizesAndRings()
    {
        using var driver = new GuestDriver(16);
        var queue = new SplitVirtqueue(driver.Memory, 0, 16);
        driver.Configure(queue);
        Assert.True(queue.TryActivate(out _));

        foreach (ushort size in new ushort[] { 0, 3, 12, 32 })
        {
            queue.Reset();
            driver.Configure(queue);
            queue.Size = size;
            Assert.False(queue.TryActivate(out QueueError error));
            Assert.Equal(QueueError.InvalidQueueSize, error);
        }

        Action<SplitVirtqueue>[] breakRings =
        [
            q => q.DescriptorTable = new GuestAddress(q.DescriptorTable.Value + 8),  // not 16-aligned
            q => q.AvailRing = new GuestAddress(q.AvailRing.Value + 1),              // not 2-aligned
            q => q.UsedRing = new GuestAddress(q.UsedRing.Value + 2),                // not 4-aligned
            q => q.UsedRing = new GuestAddress((16 << 20) - 64),                     // runs past memory
            q => q.DescriptorTable = new GuestAddress(1UL << 50),                    // outside memory
        ];
        foreach (Action<SplitVirtqueue> breakRing in breakRings)
        {
            queue.Reset();
            driver.Configure(queue);
            breakRing(queue);
            Assert.False(queue.TryActivate(out QueueError error));
            Assert.Equal(QueueError.InvalidRingAddress, error);
            Assert.False(queue.IsReady);
        }
    }

    [Fact]
    public void MaximumQueueSize_32768_Works()
    {
        using var driver = new GuestDriver(SplitVirtqueue.MaxQueueSize, memorySize: 64 << 20);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        for (int i = 0; i < 40000; i++)
        {
            CompleteOne(driver, queue);
            queue.PublishUsed();
            Assert.True(driver.TryGetUsed(out _, out _));
        }

        Assert.Equal((ushort)40000, queue.NextUsed);
    }

    [Fact]
    public void SaveAndRestore_ContinueWhereTheQueueLeftOff()
    {
        using var driver = new GuestDriver(16, eventIdx: true, indirect: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        for (int i = 0; i < 3; i++)
        {
            CompleteOne(driver, queue);
        }

        queue.PublishUsed();
        SplitVirtqueueState state = queue.SaveState();
        Assert.Equal(3, state.NextAvail);
        Assert.True(state.Ready && state.EventIdx && state.IndirectDescriptors);

        var restored = new SplitVirtqueue(driver.Memory, 0, 16);
        Assert.True(restored.TryRestoreState(state, out _));
        Assert.Equal(state, restored.SaveState());
        CompleteOne(driver, restored);
        restored.PublishUsed();
        int used = 0;
        while (driver.TryGetUsed(out _, out _))
        {
            used++;
        }

        Assert.Equal(4, used);
    }

    [Fact]
    public void NotReadyQueue_DoesNothing()
    {
        using var driver = new GuestDriver(16);
        var queue = new SplitVirtqueue(driver.Memory, 0, 16);
        driver.AddChain(BufferSpec.Readable(8));
        driver.Kick();
        Assert.False(queue.TryPopChain(out _));
        Assert.False(queue.HasAvailable());
        Assert.False(queue.EnableNotification());
        Assert.False(queue.PublishUsed());
    }

    [Fact]
    public void DefaultChain_YieldsNothing()
    {
        DescriptorChain chain = default;
        Assert.False(chain.TryMoveNext(out _, out QueueError error));
        Assert.Equal(QueueError.None, error);
    }

    private static void CompleteOne(GuestDriver driver, SplitVirtqueue queue)
    {
        driver.AddChain(BufferSpec.Write(8));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        while (chain.TryMoveNext(out _, out _))
        {
        }

        Assert.True(queue.AddUsed(chain.HeadIndex, 8));
    }

    private static ushort ReadUsedIdx(GuestDriver driver) =>
        System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(driver.Span(new GuestAddress(driver.UsedRing.Value + SplitRingLayout.UsedIdxOffset), 2));
}
