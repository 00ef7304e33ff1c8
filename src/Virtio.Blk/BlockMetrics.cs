using System.Diagnostics.Metrics;

namespace Virtio.Blk;

/// <summary>The Virtio.Blk meter and its instruments (System.Diagnostics.Metrics).</summary>
internal static class BlockMetrics
{
    public static readonly Meter Meter = new("Virtio.Blk");

    public static readonly Counter<long> Completed = Meter.CreateCounter<long>("virtio.blk.requests.completed", "{request}", "Requests returned to the driver with a status byte.");

    public static readonly Counter<long> Failed = Meter.CreateCounter<long>("virtio.blk.requests.failed", "{request}", "Requests completed with IOERR or UNSUPP.");

    public static readonly Counter<long> Malformed = Meter.CreateCounter<long>("virtio.blk.requests.malformed", "{request}", "Chains with no writable status byte, returned with length 0.");

    public static readonly Counter<long> Dropped = Meter.CreateCounter<long>("virtio.blk.requests.dropped", "{request}", "Backend completions that arrived during or after a reset and were not written to the guest.");

    public static readonly Counter<long> DuplicateCompletions = Meter.CreateCounter<long>("virtio.blk.backend.duplicate_completions", "{completion}", "BlockIo.Complete calls for a request not in flight (ignored).");

    public static readonly Counter<long> BytesRead = Meter.CreateCounter<long>("virtio.blk.bytes.read", "By", "Bytes read into guest buffers by successful IN requests.");

    public static readonly Counter<long> BytesWritten = Meter.CreateCounter<long>("virtio.blk.bytes.written", "By", "Bytes written by successful OUT requests.");

    public static readonly Counter<long> BudgetExhausted = Meter.CreateCounter<long>("virtio.blk.queue.budget_exhausted", "{event}", "Passes over a queue that stopped at their budget (one ring's worth of chains) with chains left, and were requeued.");

    public static readonly Counter<long> Starved = Meter.CreateCounter<long>("virtio.blk.queue.starved", "{event}", "Times a queue stopped popping because all its request slots were in flight.");
}
