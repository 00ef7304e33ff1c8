using Virtio.Core.Devices;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// The queue's in-flight seam: <see cref="SplitVirtqueue.InFlightTracker"/> hears of every head taken,
/// used and published, in that order; <see cref="SplitVirtqueue.TryResubmit"/> delivers heads before
/// the available ring and validates them like the ring's own.
/// </summary>
public sealed class InFlightTrackerTests
{
    private const ushort Size = 8;

    [Fact]
    public void Tracker_HearsTakenUsedAndPublished_InBatchOrder()
    {
        using var driver = new GuestDriver(Size);
        SplitVirtqueue queue = TrackedQueue(driver, out RecordingInFlightTracker tracker);
        ushort a = driver.AddChain(BufferSpec.Write(16));
        ushort b = driver.AddChain(BufferSpec.Write(16));
        driver.Kick();

        Assert.True(queue.TryPopChain(out DescriptorChain first));
        Assert.True(queue.TryPopChain(out DescriptorChain second));
        Assert.True(queue.AddUsed(second.HeadIndex, 0));
        Assert.True(queue.AddUsed(first.HeadIndex, 0));
        queue.PublishUsed();

        Assert.Equal([$"taken {a}", $"taken {b}", $"used {b}", $"used {a}", "published 2"], tracker.Calls);
        Assert.Equal(0, tracker.InFlightCount);
    }

    [Fact]
    public void Tracker_HearsNothing_WhenPopFindsNothingOrPublishHasNothingNew()
    {
        using var driver = new GuestDriver(Size);
        SplitVirtqueue queue = TrackedQueue(driver, out RecordingInFlightTracker tracker);

        Assert.False(queue.TryPopChain(out _));
        Assert.False(queue.PublishUsed());
        Assert.False(queue.AddUsed(3, 0));
        Assert.Empty(tracker.Calls);
    }

    [Fact]
    public void Resubmit_DeliversHeadsFirst_InOrder_WithoutMovingNextAvail()
    {
        using var driver = new GuestDriver(Size);
        ushort[] lost = [driver.AddChain(BufferSpec.Write(16)), driver.AddChain(BufferSpec.Write(16)), driver.AddChain(BufferSpec.Write(16))];
        driver.Kick();
        ushort fresh = driver.AddChain(BufferSpec.Write(16));
        driver.Kick();

        // A new device after one that took the first three and died: it starts past them.
        var queue = new SplitVirtqueue(driver.Memory, 0, Size);
        var state = new SplitVirtqueueState(Size, driver.DescriptorTable, driver.AvailRing, driver.UsedRing, 3, 0, true, false, false);
        Assert.True(queue.TryRestoreState(state, out _));
        var tracker = new RecordingInFlightTracker();
        queue.InFlightTracker = tracker;
        Assert.True(queue.TryResubmit([lost[2], lost[0], lost[1]], out QueueError error));
        Assert.Equal(QueueError.None, error);
        Assert.Equal(3, queue.ResubmitPending);
        Assert.True(queue.HasAvailable());

        ushort[] popped = new ushort[4];
        for (int i = 0; i < 4; i++)
        {
            Assert.True(queue.TryPopChain(out DescriptorChain chain));
            popped[i] = chain.HeadIndex;
        }

        Assert.Equal([lost[2], lost[0], lost[1], fresh], popped);
        Assert.Equal((ushort)4, queue.NextAvail);
        Assert.Equal(0, queue.ResubmitPending);
        Assert.False(queue.TryPopChain(out _));
        Assert.Equal(4, tracker.InFlightCount);
    }

    [Theory]
    [InlineData(new ushort[] { 1, Size }, QueueError.InvalidHeadIndex)]
    [InlineData(new ushort[] { 0xFFFF }, QueueError.InvalidHeadIndex)]
    [InlineData(new ushort[] { 2, 5, 2 }, QueueError.HeadAlreadyInFlight)]
    [InlineData(new ushort[] { 0, 1, 2, 3, 4, 5, 6, 7, 0 }, QueueError.InvalidResubmission)]
    public void Resubmit_HostileHeads_BreakTheQueueOnce_AndDeliverNothing(ushort[] heads, QueueError expected)
    {
        using var driver = new GuestDriver(Size);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var raised = new System.Collections.Generic.List<QueueError>();
        queue.Broken += (_, e) => raised.Add(e);
        driver.AddChain(BufferSpec.Write(16));
        driver.Kick();

        Assert.False(queue.TryResubmit(heads, out QueueError error));
        Assert.Equal(expected, error);
        Assert.Equal(expected, queue.Error);
        Assert.Equal([expected], raised);
        Assert.False(queue.TryPopChain(out _));
        Assert.Equal(0, queue.InFlightCount);
    }

    [Fact]
    public void Resubmit_HeadAlreadyInFlight_BreaksTheQueue()
    {
        using var driver = new GuestDriver(Size);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.AddChain(BufferSpec.Write(16));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));

        Assert.False(queue.TryResubmit([chain.HeadIndex], out QueueError error));
        Assert.Equal(QueueError.HeadAlreadyInFlight, error);
    }

    [Fact]
    public void Resubmit_OnAQueueNotLive_IsRefusedWithoutBreakingIt()
    {
        using var driver = new GuestDriver(Size);
        var queue = new SplitVirtqueue(driver.Memory, 0, Size);

        Assert.False(queue.TryResubmit([1], out QueueError error));
        Assert.Equal(QueueError.None, error);
        Assert.Equal(QueueError.None, queue.Error);
    }

    [Fact]
    public void Reset_DropsResubmittedHeads_AndKeepsTheTracker()
    {
        using var driver = new GuestDriver(Size);
        SplitVirtqueue queue = TrackedQueue(driver, out RecordingInFlightTracker tracker);
        Assert.True(queue.TryResubmit([1, 2], out _));

        queue.Reset();

        Assert.Equal(0, queue.ResubmitPending);
        Assert.Same(tracker, queue.InFlightTracker);
    }

    [Fact]
    public void Resubmit_HostileHead_SetsDeviceNeedsReset()
    {
        using var driver = new GuestDriver(Size);
        var device = new RecordingDevice(driver.Memory);
        var line = new InterruptRecorder();
        var mmio = new MmioDriver(new VirtioMmioTransport(device, line));
        mmio.Initialize(VirtioFeatures.Version1, driver);

        Assert.False(device.Queues[0].TryResubmit([Size], out QueueError error));

        Assert.Equal(QueueError.InvalidHeadIndex, error);
        Assert.True((mmio.Status & DeviceStatus.DeviceNeedsReset) != 0, "DEVICE_NEEDS_RESET must be set");
        Assert.Equal(1, line.ConfigurationChange);
    }

    private static SplitVirtqueue TrackedQueue(GuestDriver driver, out RecordingInFlightTracker tracker)
    {
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        tracker = new RecordingInFlightTracker();
        queue.InFlightTracker = tracker;
        return queue;
    }
}
