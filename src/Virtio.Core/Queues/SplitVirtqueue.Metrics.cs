using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Threading;
using Virtio.Core.Devices;

namespace Virtio.Core.Queues;

// The queue's Virtio.Core measurements: tagged with its device's name (when a device owns it) and its index.
public sealed partial class SplitVirtqueue
{
    private VirtioDevice? _metricsOwner;
    private object? _boxedIndex;

    // avail->idx as the processing thread last read it (split rings): the gauge never reads guest memory.
    private ushort _seenAvailIdx;

    /// <summary>
    /// Chains the driver had made available that the device had not popped when the device last read
    /// avail->idx (its queue depth waiting for the device); 0 on a packed ring, which has no such index,
    /// and on a queue that is not live. Any thread; the two indices are read apart, so a value is bounded
    /// by the queue size rather than exact to the chain.
    /// </summary>
    internal int AvailableNotPopped
    {
        get
        {
            if (_packed || !_ready)
            {
                return 0;
            }

            int waiting = (ushort)(Volatile.Read(ref _seenAvailIdx) - _nextAvail);
            return waiting <= _size ? waiting : 0;
        }
    }

    /// <summary>The device whose <see cref="VirtioDevice.MetricsName"/> tags this queue's measurements; set once by the device that creates it.</summary>
    internal VirtioDevice? MetricsOwner
    {
        get => _metricsOwner;
        set => _metricsOwner = value;
    }

    /// <summary>The <c>virtio.queue</c> tag (the index boxed once, so recording allocates nothing).</summary>
    internal KeyValuePair<string, object?> MetricsQueueTag => new(CoreMetrics.QueueTagName, _boxedIndex ??= (int)Index);

    /// <summary>Adds one to <paramref name="counter"/> with the device and queue tags (the queue tag alone without a device). Any thread.</summary>
    /// <param name="counter">A Virtio.Core counter of queue events.</param>
    internal void CountEvent(Counter<long> counter)
    {
        if (_metricsOwner is { } owner)
        {
            counter.Add(1, owner.MetricsDeviceTag, MetricsQueueTag);
        }
        else
        {
            counter.Add(1, MetricsQueueTag);
        }
    }
}
