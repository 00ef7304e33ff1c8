using System;
using System.Collections.Generic;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// The in-flight seam under random interleavings (FsCheck, fixed seed: see <see cref="RingPropertyAttribute"/>):
/// a driver adds chains, the device pops, completes out of order and publishes, and now and then
/// dies and is replaced by a new queue that resubmits what the tracker still reports in flight.
/// </summary>
public sealed class InFlightTrackerProperties
{
    private const ushort Size = 8;

    /// <summary>
    /// Every head taken is, at every step, either back with the driver exactly once or still
    /// reported in flight; after a final drain nothing is in flight and every chain came back once.
    /// </summary>
    [RingProperty]
    public Property EveryTakenHeadIsPublishedOnceOrStillInFlight(byte[] script)
    {
        using var driver = new GuestDriver(Size, blockSize: 256);
        var tracker = new RecordingInFlightTracker();
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        queue.InFlightTracker = tracker;
        var outstanding = new HashSet<ushort>(); // added by the driver, not yet back
        var taken = new HashSet<ushort>();       // of those, taken by some device
        var held = new List<ushort>();           // popped by the current device, not used
        ushort published = queue.NextUsed;

        string? Check()
        {
            foreach (ushort head in taken)
            {
                if (!tracker.IsInFlight(head))
                {
                    return $"head {head} taken, not back with the driver, and not in flight";
                }
            }

            return tracker.InFlightCount == taken.Count ? null : $"{tracker.InFlightCount} in flight for {taken.Count} taken";
        }

        string? Collect()
        {
            while (driver.TryGetUsed(out ushort head, out _))
            {
                if (!outstanding.Remove(head) || !taken.Remove(head))
                {
                    return $"head {head} came back twice or was never taken";
                }
            }

            return null;
        }

        bool Pop()
        {
            if (!queue.TryPopChain(out DescriptorChain chain))
            {
                return false;
            }

            held.Add(chain.HeadIndex);
            taken.Add(chain.HeadIndex);
            return true;
        }

        foreach (byte step in script)
        {
            switch (step % 6)
            {
                case 0:
                case 1:
                    int added = driver.TryAddChain([BufferSpec.Readable(16), BufferSpec.Write(64)]);
                    if (added >= 0)
                    {
                        outstanding.Add((ushort)added);
                        driver.Kick();
                    }

                    break;
                case 2:
                    Pop();
                    break;
                case 3:
                    if (held.Count > 0)
                    {
                        int pick = (step / 6) % held.Count;
                        if (!queue.AddUsed(held[pick], 0))
                        {
                            return false.Label($"AddUsed({held[pick]}) refused");
                        }

                        held.RemoveAt(pick);
                    }

                    break;
                case 4:
                    queue.PublishUsed();
                    published = queue.NextUsed;
                    if (Collect() is string lost)
                    {
                        return false.Label(lost);
                    }

                    break;
                default:
                    // The device dies: what it held and what it used without publishing is gone with it.
                    held.Clear();
                    tracker.Restarted(published);
                    ushort[] resubmit = tracker.InFlightOldestFirst();
                    queue = new SplitVirtqueue(driver.Memory, 0, Size);
                    var state = new SplitVirtqueueState(Size, driver.DescriptorTable, driver.AvailRing, driver.UsedRing, (ushort)(published + resubmit.Length), published, true, false, false);
                    if (!queue.TryRestoreState(state, out QueueError restoreError))
                    {
                        return false.Label($"restore failed: {restoreError}");
                    }

                    queue.InFlightTracker = tracker;
                    if (!queue.TryResubmit(resubmit, out QueueError error))
                    {
                        return false.Label($"resubmission of [{string.Join(',', resubmit)}] refused: {error}");
                    }

                    break;
            }

            if (queue.Error != QueueError.None)
            {
                return false.Label($"queue broke: {queue.Error}");
            }

            if (Check() is string broken)
            {
                return false.Label(broken);
            }
        }

        // Drain: everything the driver still has out comes back exactly once.
        for (int round = 0; round < 4 * Size && outstanding.Count > 0; round++)
        {
            while (Pop())
            {
            }

            foreach (ushort head in held)
            {
                queue.AddUsed(head, 0);
            }

            held.Clear();
            queue.PublishUsed();
            if (Collect() is string lost)
            {
                return false.Label(lost);
            }
        }

        return (outstanding.Count == 0 && tracker.InFlightCount == 0 && queue.Error == QueueError.None)
            .Label($"after the drain: {outstanding.Count} outstanding, {tracker.InFlightCount} in flight, error {queue.Error}");
    }

    /// <summary>
    /// Resubmitted heads are hostile input: any list is either accepted and delivered as given, or
    /// breaks the queue (raised once) and delivers nothing. Nothing throws.
    /// </summary>
    [RingProperty]
    public Property HostileResubmissionBreaksTheQueueOrIsDeliveredAsGiven(ushort[] heads, byte popsFirst, bool small)
    {
        using var driver = new GuestDriver(Size, blockSize: 256);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var raised = new List<QueueError>();
        queue.Broken += (_, e) => raised.Add(e);
        var inFlight = new HashSet<ushort>();
        for (int i = 0; i < popsFirst % 4; i++)
        {
            driver.AddChain(BufferSpec.Write(16));
            driver.Kick();
            if (queue.TryPopChain(out DescriptorChain chain))
            {
                inFlight.Add(chain.HeadIndex);
            }
        }

        ushort[] given = small ? Array.ConvertAll(heads, h => (ushort)(h % (2 * Size))) : heads;
        var distinct = new HashSet<ushort>(given);
        bool valid = given.Length + inFlight.Count <= Size && distinct.Count == given.Length
            && Array.TrueForAll(given, h => h < Size && !inFlight.Contains(h));
        bool accepted = queue.TryResubmit(given, out QueueError error);
        if (accepted != valid)
        {
            return false.Label($"accepted {accepted}, expected {valid} ({error})");
        }

        if (!accepted)
        {
            return (raised.Count == 1 && raised[0] == error && queue.Error == error && !queue.TryPopChain(out _) && !queue.HasAvailable())
                .Label($"refused with {error}, raised [{string.Join(',', raised)}], queue error {queue.Error}");
        }

        foreach (ushort head in given)
        {
            if (!queue.TryPopChain(out DescriptorChain chain) || chain.HeadIndex != head)
            {
                return false.Label($"expected head {head} next");
            }
        }

        return (queue.ResubmitPending == 0 && raised.Count == 0).Label("left over or broke");
    }
}
