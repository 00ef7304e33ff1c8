using System.Diagnostics.Metrics;

namespace Virtio.Core;

/// <summary>The Virtio.Core meter and its instruments (System.Diagnostics.Metrics).</summary>
internal static class CoreMetrics
{
    public static readonly Meter Meter = new("Virtio.Core");

    /// <summary>Virtqueues stopped because the driver broke a ring rule.</summary>
    public static readonly Counter<long> QueueErrors = Meter.CreateCounter<long>("virtio.queue.errors", description: "Virtqueues stopped because the driver broke a ring rule.");

    /// <summary>Completions dropped because their chain was popped before a restore or returned to a stopped queue.</summary>
    public static readonly Counter<long> StaleCompletions = Meter.CreateCounter<long>("virtio.queue.completions.stale", description: "Completions dropped because their chain was popped before the queue was restored or stopped.");

    /// <summary>Devices that entered DEVICE_NEEDS_RESET.</summary>
    public static readonly Counter<long> NeedsReset = Meter.CreateCounter<long>("virtio.device.needs_reset", description: "Devices that entered DEVICE_NEEDS_RESET.");

    /// <summary>Register accesses a transport ignored (wrong width, read-only, queue live).</summary>
    public static readonly Counter<long> IgnoredRegisterAccesses = Meter.CreateCounter<long>("virtio.mmio.ignored_accesses", description: "virtio-mmio register accesses ignored as invalid.");
}
