using System.Collections.Generic;
using System.Globalization;
using System.Threading;
using System.Diagnostics.Metrics;

namespace Virtio.Net;

/// <summary>
/// The "Virtio.Net" meter: frames, bytes and drops (by reason) of every device, listed in
/// docs/metrics.md. Measurements carry the device's name (<see cref="DeviceTagName"/>) and, for
/// frames and bytes, the virtqueue's index (<see cref="QueueTagName"/>).
/// </summary>
internal static class NetMetrics
{
    /// <summary>The tag naming the device (<see cref="NetDevice.Name"/>).</summary>
    public const string DeviceTagName = "virtio.device";

    /// <summary>The tag holding the virtqueue's index (receive queues even, transmit queues odd).</summary>
    public const string QueueTagName = "virtio.queue";

    public static readonly Meter Meter = new("Virtio.Net");

    public static readonly Counter<long> Frames = Meter.CreateCounter<long>("virtio.net.frames", unit: "{frame}", description: "Frames moved between guests and backends, by direction.");

    public static readonly Counter<long> Bytes = Meter.CreateCounter<long>("virtio.net.bytes", unit: "By", description: "Frame bytes moved between guests and backends, by direction.");

    public static readonly Counter<long> Drops = Meter.CreateCounter<long>("virtio.net.drops", unit: "{frame}", description: "Frames dropped, by reason.");

    public static readonly Counter<long> RxChainsRefused = Meter.CreateCounter<long>("virtio.net.rx.chains_refused", unit: "{chain}", description: "Receive chains given back unused because they had more buffers than NetDeviceOptions.MaxRxChainBuffers.");

    // Tags are cached so recording a measurement boxes and allocates nothing.
    public static readonly KeyValuePair<string, object?> Tx = new("direction", "tx");
    public static readonly KeyValuePair<string, object?> Rx = new("direction", "rx");

    private static readonly KeyValuePair<string, object?>[] s_reasons =
    [
        new("reason", "malformed_header"),
        new("reason", "bad_length"),
        new("reason", "link_down"),
        new("reason", "backend_busy"),
        new("reason", "filtered"),
        new("reason", "rx_buffer_too_small"),
        new("reason", "offload_not_negotiated"),
    ];

    private static int s_unnamed = -1;

    public static KeyValuePair<string, object?> Reason(NetDropReason reason) => s_reasons[(int)reason];

    /// <summary>The name of a device created without one: net0, net1, ... in creation order.</summary>
    public static string NextUnnamed() => "net" + Interlocked.Increment(ref s_unnamed).ToString(CultureInfo.InvariantCulture);

    /// <summary>A queue's tag: its index, boxed once (by the queue's constructor) so recording boxes nothing.</summary>
    public static KeyValuePair<string, object?> QueueTag(ushort index) => new(QueueTagName, (int)index);
}
