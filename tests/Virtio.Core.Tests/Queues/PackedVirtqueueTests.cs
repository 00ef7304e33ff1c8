using System.Collections.Generic;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>The packed virtqueue (virtio 1.2 §2.8) against <see cref="PackedGuestDriver"/>, Linux's way of driving it.</summary>
public sealed class PackedVirtqueueTests
{
    [Fact]
    public void DirectChain_YieldsBuffersInOrder_AndIsUsedOnlyOncePublished()
    {
        using var driver = new PackedGuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        ushort id = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Readable(100), BufferSpec.Write(512), BufferSpec.Write(1));

        Assert.True(queue.HasAvailable());
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        Assert.Equal(id, chain.HeadIndex);
        var seen = new List<(int, bool, byte)>();
        while (chain.TryMoveNext(out DescriptorBuffer buffer, out QueueError error))
        {
            Assert.Equal(QueueError.None, error);
            seen.Add((buffer.Length, buffer.IsWriteOnly, buffer.Span[0]));
        }

        Assert.Equal([(16, false, (byte)0xA5), (100, false, (byte)0xA5), (512, true, (byte)0), (1, true, (byte)0)], seen);
        Assert.Equal(4, queue.NextAvail);
        Assert.False(queue.HasAvailable());

        Assert.True(queue.AddUsed(id, 1000));
        Assert.False(driver.TryGetUsed(out _, out _)); // flags not stored yet
        Assert.True(queue.PublishUsed());
        Assert.True(driver.TryGetUsed(out ushort used, out uint length));
        Assert.Equal(id, used);
        Assert.Equal(513u, length); // capped at the writable bytes walked
        Assert.Equal(4, queue.NextUsed);
        Assert.Equal(16, driver.NumFree);
    }

    [Fact]
    public void IndirectChain_TakesOneRingDescriptor_AndIsWalkedThroughItsTable()
    {
        using var driver = new PackedGuestDriver(8, indirect: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        ushort id = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Write(4096), BufferSpec.Write(1));
        Assert.Equal(7, driver.NumFree);

        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        Assert.True(chain.TryGather(new IoSegment[8], out int readable, out int count));
        Assert.Equal((1, 3), (readable, count));
        Assert.Equal(4097UL, chain.WritableLength);
        Assert.Equal(1, queue.NextAvail);
        Assert.True(queue.AddUsed(id, 4097));
        queue.PublishUsed();
        Assert.True(driver.TryGetUsed(out _, out uint length));
        Assert.Equal(4097u, length);
        Assert.Equal(1, queue.NextUsed);
    }

    [Fact]
    public void OutOfOrderCompletion_SkipsEachChainsDescriptors_AcrossBothWrapCounters()
    {
        // A size that is not a power of two (allowed for packed rings) and chains of 1 to 3
        // descriptors completed in reverse, for many laps: both wrap counters flip many times.
        using var driver = new PackedGuestDriver(7);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        int availFlips = 0, usedFlips = 0;
        bool availWrap = queue.AvailWrapCounter, usedWrap = queue.UsedWrapCounter;
        for (int round = 0; round < 50; round++)
        {
            var ids = new List<ushort>();
            for (int n = 1; n <= 3; n++)
            {
                var specs = new BufferSpec[n];
                for (int i = 0; i < n - 1; i++)
                {
                    specs[i] = BufferSpec.Readable(8);
                }

                specs[n - 1] = BufferSpec.Write(8 * n);
                ids.Add(driver.AddChain(specs));
            }

            var popped = new List<ushort>();
            while (queue.TryPopChain(out DescriptorChain chain))
            {
                Assert.True(chain.TryGather(new IoSegment[4], out _, out _));
                popped.Add(chain.HeadIndex);
            }

            Assert.Equal(ids, popped);
            for (int i = popped.Count - 1; i >= 0; i--)
            {
                Assert.True(queue.AddUsed(popped[i], 1000));
            }

            queue.PublishUsed();
            for (int i = popped.Count - 1; i >= 0; i--)
            {
                Assert.True(driver.TryGetUsed(out ushort used, out uint length));
                Assert.Equal(popped[i], used);
                Assert.Equal((uint)(8 * (i + 1)), length);
            }

            Assert.False(driver.TryGetUsed(out _, out _));
            Assert.Equal(driver.NextAvail, queue.NextAvail);
            Assert.Equal(driver.LastUsed, queue.NextUsed);
            Assert.Equal(driver.AvailWrapCounter, queue.AvailWrapCounter);
            Assert.Equal(driver.UsedWrapCounter, queue.UsedWrapCounter);
            availFlips += availWrap != queue.AvailWrapCounter ? 1 : 0;
            usedFlips += usedWrap != queue.UsedWrapCounter ? 1 : 0;
            (availWrap, usedWrap) = (queue.AvailWrapCounter, queue.UsedWrapCounter);
        }

        Assert.True(availFlips > 20 && usedFlips > 20, $"flips: avail {availFlips}, used {usedFlips}");
        Assert.Equal(7, driver.NumFree);
    }

    [Fact]
    public void DriverEventDisable_SuppressesTheInterrupt_AndEnableAsksForIt()
    {
        using var driver = new PackedGuestDriver(8);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.DisableCallbacks();
        Complete(driver, queue);
        Assert.False(queue.PublishUsed());

        driver.EnableCallbacks();
        ushort id = driver.AddChain(BufferSpec.Write(4));
        Assert.True(queue.TryPopChain(out _));
        Assert.True(queue.AddUsed(id, 4));
        Assert.True(queue.PublishUsed());
        Assert.False(queue.PublishUsed()); // nothing new
    }

    [Fact]
    public void DriverEventDescMode_InterruptsOnlyWhenItsPositionIsUsed_InItsLap()
    {
        using var driver = new PackedGuestDriver(4, eventIdx: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();

        // Ask for an interrupt when position 2 of the first lap is used (set again before each
        // completion: consuming a buffer moves off_wrap, as Linux does).
        Assert.False(Step(driver, queue, 2, true)); // position 0
        Assert.False(Step(driver, queue, 2, true)); // position 1
        Assert.True(Step(driver, queue, 2, true));  // position 2: crossed
        Assert.False(Step(driver, queue, 2, true)); // position 3: already past

        // Position 1 of the second lap (wrap counter 0): not crossed by position 0 of that lap.
        Assert.False(Step(driver, queue, 1, false));
        Assert.True(Step(driver, queue, 1, false));
        Assert.False(queue.UsedWrapCounter);
    }

    [Fact]
    public void DeviceEvent_DisableWritesDisable_EnableWritesDescModeWithTheNextAvailPosition_AndRechecks()
    {
        using var driver = new PackedGuestDriver(4, eventIdx: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        Assert.Equal((0x8000, 2), Event(driver));

        queue.DisableNotification();
        Assert.Equal(1, driver.ReadDeviceEvent().Flags);
        ushort id = driver.AddChain(BufferSpec.Readable(4), BufferSpec.Readable(4), BufferSpec.Readable(4));
        Assert.False(driver.Kick()); // the device said disable

        // Buffers arrived while notifications were off: enabling reports them (enable, full barrier, check again).
        Assert.True(queue.EnableNotification());
        Assert.Equal((0x8000, 2), Event(driver));
        Assert.True(queue.TryPopChain(out _));
        Assert.True(queue.AddUsed(id, 0));
        queue.PublishUsed();
        Assert.True(driver.TryGetUsed(out _, out _));
        Assert.False(queue.EnableNotification());
        Assert.Equal((3 | 0x8000, 2), Event(driver));

        // The next chain crosses the ring's end: position 3 of lap 1 asked for, so the driver kicks.
        driver.AddChain(BufferSpec.Readable(4), BufferSpec.Readable(4));
        Assert.True(driver.Kick());
    }

    [Fact]
    public void DeviceEvent_WithoutEventIdx_EnableWritesEnable()
    {
        using var driver = new PackedGuestDriver(4);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        queue.DisableNotification();
        Assert.Equal(1, driver.ReadDeviceEvent().Flags);
        Assert.False(queue.EnableNotification());
        Assert.Equal(0, driver.ReadDeviceEvent().Flags);
        driver.AddChain(BufferSpec.Readable(4));
        Assert.True(driver.Kick());
    }

    [Fact]
    public void SaveAndRestore_CarryTheWrapCounters()
    {
        using var driver = new PackedGuestDriver(4);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        for (int i = 0; i < 5; i++)
        {
            Complete(driver, queue);
            Assert.True(driver.TryGetUsed(out _, out _));
        }

        SplitVirtqueueState state = queue.SaveState();
        Assert.True(state.PackedRing);
        Assert.Equal((1, false, 1, false), (state.NextAvail, state.AvailWrapCounter, state.NextUsed, state.UsedWrapCounter));

        var restored = new SplitVirtqueue(driver.Memory, 0, 4);
        Assert.True(restored.TryRestoreState(state, out _));
        Assert.True(restored.PackedRing);
        ushort id = driver.AddChain(BufferSpec.Write(4));
        Assert.True(restored.TryPopChain(out DescriptorChain chain));
        Assert.Equal(id, chain.HeadIndex);
        Assert.True(restored.AddUsed(id, 4));
        restored.PublishUsed();
        Assert.True(driver.TryGetUsed(out ushort used, out _));
        Assert.Equal(id, used);
    }

    [Fact]
    public void Reset_ReturnsBothWrapCountersToOne_AndLeavesTheSplitRing()
    {
        using var driver = new PackedGuestDriver(4);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        for (int i = 0; i < 4; i++)
        {
            Complete(driver, queue);
        }

        Assert.False(queue.AvailWrapCounter);
        queue.Reset();
        Assert.True(queue.AvailWrapCounter);
        Assert.True(queue.UsedWrapCounter);
        Assert.False(queue.PackedRing);
    }

    [Fact]
    public void Activation_AcceptsAnySizeUpToTheMaximum_AndChecksTheEventStructures()
    {
        using var driver = new PackedGuestDriver(5);
        var queue = new SplitVirtqueue(driver.Memory, 0, 8) { PackedRing = true };
        driver.Configure(queue);
        Assert.True(queue.TryActivate(out _));

        var misaligned = new SplitVirtqueue(driver.Memory, 0, 8) { PackedRing = true };
        driver.Configure(misaligned);
        misaligned.Deactivate();
        misaligned.UsedRing = new Virtio.Core.Memory.GuestAddress(driver.DeviceEvent.Value + 2);
        Assert.False(misaligned.TryActivate(out QueueError error));
        Assert.Equal(QueueError.InvalidRingAddress, error);
    }

    [Fact]
    public void Resubmission_IsRefusedOnAPackedRing()
    {
        using var driver = new PackedGuestDriver(4);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        Assert.False(queue.TryResubmit([0], out QueueError error));
        Assert.Equal(QueueError.InvalidResubmission, error);
    }

    private static (int, int) Event(PackedGuestDriver driver)
    {
        (ushort offWrap, ushort flags) = driver.ReadDeviceEvent();
        return (offWrap, flags);
    }

    private static bool Complete(PackedGuestDriver driver, SplitVirtqueue queue)
    {
        ushort id = driver.AddChain(BufferSpec.Write(4));
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        Assert.True(chain.TryGather(new IoSegment[1], out _, out _));
        Assert.True(queue.AddUsed(id, 4));
        return queue.PublishUsed();
    }

    private static bool Step(PackedGuestDriver driver, SplitVirtqueue queue, ushort eventPosition, bool eventWrap)
    {
        driver.SetUsedEvent(eventPosition, eventWrap);
        bool notify = Complete(driver, queue);
        Assert.True(driver.TryGetUsed(out _, out _));
        return notify;
    }
}
