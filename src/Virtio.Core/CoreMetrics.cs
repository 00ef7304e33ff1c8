using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Queues;

namespace Virtio.Core;

/// <summary>
/// The "Virtio.Core" meter, the package's only one, and its instruments (System.Diagnostics.Metrics),
/// listed in docs/metrics.md. Device and queue events carry <see cref="DeviceTagName"/> (the device's
/// <see cref="VirtioDevice.MetricsName"/>) and, for one queue, <see cref="QueueTagName"/>: the names
/// Virtio.Blk and Virtio.Net use, so one device has one name in every meter.
/// </summary>
internal static class CoreMetrics
{
    /// <summary>The tag naming the device.</summary>
    public const string DeviceTagName = "virtio.device";

    /// <summary>The tag holding the virtqueue's index (an <see cref="int"/>).</summary>
    public const string QueueTagName = "virtio.queue";

    public static readonly Meter Meter = new("Virtio.Core");

    // The live devices, for the gauge's callback; weak, so a device nobody references is collected
    // (and no longer reported).
    private static readonly ConditionalWeakTable<VirtioDevice, object?> s_devices = new();

    private static int s_unnamed = -1;

    /// <summary>Virtqueues stopped because the driver broke a ring rule.</summary>
    public static readonly Counter<long> QueueErrors = Meter.CreateCounter<long>("virtio.queue.errors", description: "Virtqueues stopped because the driver broke a ring rule.");

    /// <summary>Completions dropped because their chain was popped before a restore or returned to a stopped queue.</summary>
    public static readonly Counter<long> StaleCompletions = Meter.CreateCounter<long>("virtio.queue.completions.stale", description: "Completions dropped because their chain was popped before the queue was restored or stopped.");

    /// <summary>Devices that entered DEVICE_NEEDS_RESET.</summary>
    public static readonly Counter<long> NeedsReset = Meter.CreateCounter<long>("virtio.device.needs_reset", description: "Devices that entered DEVICE_NEEDS_RESET.");

    /// <summary>Register accesses a transport ignored (wrong width, read-only, queue live).</summary>
    public static readonly Counter<long> IgnoredRegisterAccesses = Meter.CreateCounter<long>("virtio.mmio.ignored_accesses", description: "virtio-mmio register accesses ignored as invalid.");

    /// <summary>Configuration-space and BAR accesses a virtio-pci function ignored (wrong width, read-only, queue enabled, ...).</summary>
    public static readonly Counter<long> PciIgnoredAccesses = Meter.CreateCounter<long>("virtio.pci.ignored_accesses", description: "virtio-pci configuration-space and BAR accesses ignored as invalid.");

    /// <summary>Returns from epoll_wait of all I/O threads.</summary>
    public static readonly Counter<long> IoThreadWakeups = Meter.CreateCounter<long>(
        "virtio.iothread.wakeups", unit: "{wakeup}", description: "Returns from epoll_wait of all I/O threads.");

    /// <summary>Handlers, scheduled work and pollers that threw.</summary>
    public static readonly Counter<long> IoThreadCallbackFailures = Meter.CreateCounter<long>(
        "virtio.iothread.callback_failures", unit: "{exception}", description: "Handlers, scheduled work and pollers that threw.");

    /// <summary>Time all I/O threads spent polling before they slept.</summary>
    public static readonly Counter<double> IoThreadPollingTime = Meter.CreateCounter<double>(
        "virtio.iothread.polling_time", unit: "s", description: "Time all I/O threads spent polling before they slept (one busy core each meanwhile).");

    /// <summary>Polling turns that found work.</summary>
    public static readonly Counter<long> IoThreadPollHits = Meter.CreateCounter<long>(
        "virtio.iothread.poll_hits", unit: "{turn}", description: "Polling turns of all I/O threads that found work, so the thread did not sleep.");

    /// <summary>
    /// Chains each queue's device popped from the available ring and has not yet returned to the used
    /// ring (<see cref="SplitVirtqueue.InFlightCount"/>), read when a listener collects. Chains the driver
    /// made available that the device has not popped are not measured: that needs avail->idx from guest
    /// memory, which the collecting thread must not read (the memory may be unmapped under it).
    /// </summary>
    public static readonly ObservableUpDownCounter<int> QueueInFlight = Meter.CreateObservableUpDownCounter(
        "virtio.queue.in_flight",
        static () => ObserveInFlight(),
        "{chain}",
        "Chains the device popped from the queue's available ring and has not yet returned to its used ring.");

    /// <summary>
    /// Chains each queue's driver made available that the device had not yet popped when it last read
    /// the available ring's index (split rings; the device's own reading, so the collecting thread never
    /// reads guest memory), read when a listener collects.
    /// </summary>
    public static readonly ObservableUpDownCounter<int> QueueAvailable = Meter.CreateObservableUpDownCounter(
        "virtio.queue.available",
        static () => ObserveAvailable(),
        "{chain}",
        "Chains the driver made available on the queue that the device had not popped when it last looked (split rings).");

    /// <summary>A name for a device no package named: device0, device1, ... in the order they are first needed.</summary>
    /// <returns>The name.</returns>
    public static string NextUnnamedDevice() => "device" + Interlocked.Increment(ref s_unnamed).ToString(CultureInfo.InvariantCulture);

    /// <summary>Lists <paramref name="device"/> for the gauge while it is alive. Once per device, from its constructor.</summary>
    /// <param name="device">The device.</param>
    public static void Register(VirtioDevice device) => s_devices.AddOrUpdate(device, null);

    private static IEnumerable<Measurement<int>> ObserveAvailable() => ObservePerQueue(static queue => queue.AvailableNotPopped);

    private static IEnumerable<Measurement<int>> ObserveInFlight() => ObservePerQueue(static queue => queue.InFlightCount);

    /// <summary>One measurement per queue of each live device, tagged with both.</summary>
    private static IEnumerable<Measurement<int>> ObservePerQueue(Func<SplitVirtqueue, int> read)
    {
        foreach (KeyValuePair<VirtioDevice, object?> device in s_devices)
        {
            KeyValuePair<string, object?> deviceTag = device.Key.MetricsDeviceTag;
            foreach (SplitVirtqueue queue in device.Key.Queues)
            {
                yield return new Measurement<int>(read(queue), deviceTag, queue.MetricsQueueTag);
            }
        }
    }
}
