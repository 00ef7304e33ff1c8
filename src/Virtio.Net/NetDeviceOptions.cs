using System.Collections.Generic;
using System.Net.NetworkInformation;
using Virtio.Core.Threading;

namespace Virtio.Net;

/// <summary>How a <see cref="NetDevice"/> is built. Read once by its constructor.</summary>
public sealed class NetDeviceOptions
{
    /// <summary>
    /// The device's name in its measurements (the <c>virtio.device</c> tag of every Virtio.Net
    /// instrument, docs/metrics.md). Default null: net0, net1, ... in creation order.
    /// </summary>
    public string? Name { get; set; }

    /// <summary>The MAC address in the configuration; a random locally administered one when null.</summary>
    public PhysicalAddress? MacAddress { get; set; }

    /// <summary>The MTU to advise (VIRTIO_NET_F_MTU); not offered when null. Transmit frames larger than it plus 18 bytes are dropped.</summary>
    public ushort? Mtu { get; set; }

    /// <summary>Offer VIRTIO_NET_F_MRG_RXBUF (default true).</summary>
    public bool MergeableRxBuffers { get; set; } = true;

    /// <summary>Offer the control queue with CTRL_RX and CTRL_MAC_ADDR (default true); MQ needs it.</summary>
    public bool ControlQueue { get; set; } = true;

    /// <summary>The largest size of each virtqueue (default 256).</summary>
    public ushort QueueSize { get; set; } = 256;

    /// <summary>
    /// The most non-empty buffers a receive chain may have (default 64; at least 1). A longer chain
    /// is given back unused (length 0), counted (<c>virtio.net.rx.chains_refused</c>) and logged
    /// once per queue, so per-queue receive state is bounded by QueueSize × this many buffers
    /// whatever chains the guest posts. Linux posts at most 19 (MAX_SKB_FRAGS + 2, big packets).
    /// </summary>
    public int MaxRxChainBuffers { get; set; } = 64;

    /// <summary>Whether the link starts up (default true).</summary>
    public bool LinkUp { get; set; } = true;

    /// <summary>
    /// The I/O threads that watch the backends for received frames: pair i uses IoThreads[i % Count].
    /// Required. The device registers fds with them; the embedder starts and disposes them.
    /// </summary>
    public IReadOnlyList<IoThread> IoThreads { get; set; } = [];
}
