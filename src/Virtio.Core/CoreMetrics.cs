using System.Diagnostics.Metrics;

namespace Virtio.Core;

/// <summary>The "Virtio.Core" meter, the package's only one, and its instruments (System.Diagnostics.Metrics), listed in docs/metrics.md.</summary>
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
}
