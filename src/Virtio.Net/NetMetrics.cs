using System.Collections.Generic;
using System.Diagnostics.Metrics;

namespace Virtio.Net;

/// <summary>The "Virtio.Net" meter: frames, bytes and drops (by reason) of every device.</summary>
internal static class NetMetrics
{
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

    public static KeyValuePair<string, object?> Reason(NetDropReason reason) => s_reasons[(int)reason];
}
