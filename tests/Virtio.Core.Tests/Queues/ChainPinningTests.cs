using System.Collections.Generic;
using Microsoft.Extensions.Logging;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// <see cref="SplitVirtqueue.Pinning"/> hears of every chain taken and, once, of its release,
/// whatever became of it; a chain returned to a broken queue leaves <see cref="SplitVirtqueue.InFlightCount"/>;
/// a completion from before a restore is dropped instead of completing a head of the restored ring.
/// </summary>
public sealed class ChainPinningTests
{
    [Fact]
    public void EveryTakenChain_IsReleasedOnce_WhenTheDeviceReturnsIt()
    {
        using var driver = new GuestDriver(16);
        var pins = new RecordingPins();
        SplitVirtqueue queue = PopOneChain(driver, pins, out ushort head);
        Assert.Equal([head], pins.Held);
        Assert.True(queue.AddUsed(head, 8));
        Assert.Empty(pins.Held);
        Assert.Equal(1, pins.Released);
    }

    [Fact]
    public void ChainReturnedToABrokenQueue_LeavesInFlight_AndIsReleased()
    {
        // The review's input: requests in flight, then a head index >= queue size breaks the ring.
        using var driver = new GuestDriver(16);
        var pins = new RecordingPins();
        SplitVirtqueue queue = PopOneChain(driver, pins, out ushort head);
        driver.PutOnAvailRing(16);
        driver.Kick();
        Assert.False(queue.TryPopChain(out _));
        Assert.Equal(QueueError.InvalidHeadIndex, queue.Error);
        Assert.Equal(1, queue.InFlightCount); // still at the device's backend

        Assert.False(queue.AddUsed(head, 8));
        Assert.Equal(0, queue.InFlightCount);
        Assert.Empty(pins.Held);
        Assert.False(driver.TryGetUsed(out _, out _));
    }

    [Fact]
    public void ChainWhoseWalkFails_IsTakenBackByTheQueue()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var pins = new RecordingPins();
        queue.Pinning = pins;
        ushort head = driver.AddChain(BufferSpec.Write(8));
        driver.WriteDescriptor(head, 0, 8, (ushort)DescriptorFlags.Next, 16); // next past the table
        driver.Kick();

        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        while (chain.TryMoveNext(out _, out _))
        {
        }

        Assert.NotEqual(QueueError.None, queue.Error);
        Assert.Equal(0, queue.InFlightCount);
        Assert.Empty(pins.Held);
    }

    [Fact]
    public void CompletionFromBeforeARestore_DoesNotCompleteAHeadOfTheRestoredRing()
    {
        var logger = new CapturingLogger();
        using var driver = new GuestDriver(16);
        var pins = new RecordingPins();
        SplitVirtqueue queue = PopOneChain(driver, pins, out ushort stale, logger);

        // The ring restarts (a drain gave up) where it stopped, the request still at the backend.
        queue.Deactivate();
        Assert.True(queue.TryRestoreState(queue.SaveState() with { Ready = true }, out _));
        Assert.Equal(0, queue.InFlightCount);
        Assert.Equal(1, queue.StaleCount);
        Assert.True(queue.IsStale(stale));
        ushort fresh = driver.AddChain(BufferSpec.Write(8));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        Assert.Equal(fresh, chain.HeadIndex);

        Assert.False(queue.AddUsed(stale, 8));
        Assert.False(queue.AddUsed(stale, 8)); // once dropped, it is just not in flight
        Assert.False(queue.PublishUsed());
        Assert.False(driver.TryGetUsed(out _, out _));
        Assert.Equal(0, queue.StaleCount);
        Assert.Equal([fresh], pins.Held);
        Assert.Single(logger.Entries, e => e.EventId.Id == 1003);

        Assert.True(queue.AddUsed(fresh, 8));
        queue.PublishUsed();
        Assert.True(driver.TryGetUsed(out ushort used, out _));
        Assert.Equal(fresh, used);
    }

    [Fact]
    public void StaleHeadMadeAvailableAgain_BreaksTheQueue()
    {
        // The driver never got the head back: offering it again is a head already in flight.
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = PopOneChain(driver, new RecordingPins(), out ushort stale);
        Assert.True(queue.TryRestoreState(queue.SaveState(), out _));

        driver.PutOnAvailRing(stale);
        driver.Kick();
        Assert.False(queue.TryPopChain(out _));
        Assert.Equal(QueueError.HeadAlreadyInFlight, queue.Error);
        Assert.True(queue.IsStale(stale));
    }

    /// <summary>A queue over <paramref name="driver"/> with <paramref name="pins"/>, one one-buffer chain popped.</summary>
    private static SplitVirtqueue PopOneChain(GuestDriver driver, RecordingPins pins, out ushort head, ILogger? logger = null)
    {
        SplitVirtqueue queue = driver.CreateDeviceQueue(logger);
        queue.Pinning = pins;
        head = driver.AddChain(BufferSpec.Write(8));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        Assert.Equal(head, chain.HeadIndex);
        return queue;
    }

    private sealed class RecordingPins : IChainPinning
    {
        public List<ushort> Held { get; } = [];

        public int Released { get; private set; }

        public void ChainTaken(ushort head) => Held.Add(head);

        public void ChainReleased(ushort head)
        {
            Assert.True(Held.Remove(head), $"head {head} released but not held");
            Released++;
        }
    }
}
