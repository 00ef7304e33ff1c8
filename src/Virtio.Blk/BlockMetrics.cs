using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Threading;
using Virtio.Blk.Backends;

namespace Virtio.Blk;

/// <summary>
/// The "Virtio.Blk" meter (System.Diagnostics.Metrics) and its instruments, listed in docs/metrics.md.
/// Measurements carry the device's name (<see cref="DeviceTagName"/>) and, where they belong to one
/// queue, its index (<see cref="QueueTagName"/>); the tags are built once per device and queue, so
/// recording one allocates nothing.
/// </summary>
internal static class BlockMetrics
{
    /// <summary>The tag naming the device (<see cref="BlockDevice.Name"/>).</summary>
    public const string DeviceTagName = "virtio.device";

    /// <summary>The tag holding the request queue's index.</summary>
    public const string QueueTagName = "virtio.queue";

    /// <summary>The tag holding a request's operation (read, write, flush, discard, write_zeroes).</summary>
    public const string OperationTagName = "virtio.blk.operation";

    public static readonly Meter Meter = new("Virtio.Blk");

    public static readonly Counter<long> Completed = Meter.CreateCounter<long>("virtio.blk.requests.completed", "{request}", "Requests returned to the driver with a status byte.");

    public static readonly Counter<long> Failed = Meter.CreateCounter<long>("virtio.blk.requests.failed", "{request}", "Requests completed with IOERR or UNSUPP.");

    public static readonly Counter<long> Malformed = Meter.CreateCounter<long>("virtio.blk.requests.malformed", "{request}", "Chains with no writable status byte, returned with length 0.");

    public static readonly Counter<long> Dropped = Meter.CreateCounter<long>("virtio.blk.requests.dropped", "{request}", "Backend completions that arrived during or after a reset and were not written to the guest.");

    public static readonly Counter<long> DuplicateCompletions = Meter.CreateCounter<long>("virtio.blk.backend.duplicate_completions", "{completion}", "BlockIo.Complete calls for a request not in flight (ignored).");

    public static readonly Counter<long> BytesRead = Meter.CreateCounter<long>("virtio.blk.bytes.read", "By", "Bytes read into guest buffers by successful IN requests.");

    public static readonly Counter<long> BytesWritten = Meter.CreateCounter<long>("virtio.blk.bytes.written", "By", "Bytes written by successful OUT requests (in writethrough too, where each write completes after its flush).");

    public static readonly Counter<long> BudgetExhausted = Meter.CreateCounter<long>("virtio.blk.queue.budget_exhausted", "{event}", "Passes over a queue that stopped at their budget (one ring's worth of chains) with chains left, and were requeued.");

    public static readonly Counter<long> Starved = Meter.CreateCounter<long>("virtio.blk.queue.starved", "{event}", "Times a queue stopped popping because all its request slots were in flight.");

    // Bucket advice for exporters (OpenTelemetry's defaults are for milliseconds): 5 us to 1 s.
    public static readonly Histogram<double> Duration = Meter.CreateHistogram<double>(
        "virtio.blk.request.duration",
        "s",
        "Time from a request's submission to the backend until its completion was taken for the used ring (with its flush, in writethrough), by operation.",
        tags: null,
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1] });

    // The live devices, for the gauges' callbacks; weak, so a device that is no longer used is collected.
    private static readonly ConditionalWeakTable<BlockDevice, object?> s_devices = new();

    private static readonly KeyValuePair<string, object?>[] s_operations =
    [
        new(OperationTagName, "read"),
        new(OperationTagName, "write"),
        new(OperationTagName, "flush"),
        new(OperationTagName, "discard"),
        new(OperationTagName, "write_zeroes"),
    ];

    public static readonly ObservableUpDownCounter<int> InFlight = Meter.CreateObservableUpDownCounter("virtio.blk.queue.in_flight", static () => Observe(static q => q.InFlightSlots), "{request}", "Requests of the queue submitted to the backend and not yet returned to the driver (at the backend, or completed and waiting for the used ring).");

    public static readonly ObservableUpDownCounter<int> CompletionsPending = Meter.CreateObservableUpDownCounter("virtio.blk.queue.completions_pending", static () => Observe(static q => q.CompletionsPending), "{request}", "Requests of the queue the backend completed that wait for the queue's thread to return them to the driver.");

    private static int s_unnamed = -1;

    /// <summary>The name of a device created without one: blk0, blk1, ... in creation order.</summary>
    public static string NextUnnamed() => "blk" + Interlocked.Increment(ref s_unnamed).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Lists <paramref name="device"/> for the gauges while it is alive. Once per device.</summary>
    public static void Register(BlockDevice device) => s_devices.AddOrUpdate(device, null);

    public static KeyValuePair<string, object?> Operation(BlockOperation operation) => s_operations[(int)operation];

    private static IEnumerable<Measurement<int>> Observe(System.Func<BlockQueue, int> value)
    {
        foreach (KeyValuePair<BlockDevice, object?> device in s_devices)
        {
            foreach (BlockQueue queue in device.Key.MetricQueues)
            {
                yield return new Measurement<int>(value(queue), queue.DeviceTag, queue.QueueTag);
            }
        }
    }
}
