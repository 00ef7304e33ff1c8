using System;

namespace Virtio.Net;

/// <summary>
/// Offloads a backend can honour, in both directions: frames carried with a virtio_net_hdr whose
/// partial checksum and segmentation fields it understands. The values match the kernel's TUN_F_* bits.
/// </summary>
[Flags]
public enum NetOffloads
{
    /// <summary>No offloads: frames are complete, headers are ignored.</summary>
    None = 0,

    /// <summary>Partial checksums (VIRTIO_NET_HDR_F_NEEDS_CSUM; TUN_F_CSUM).</summary>
    Checksum = 1,

    /// <summary>TCP segmentation over IPv4 (VIRTIO_NET_HDR_GSO_TCPV4; TUN_F_TSO4).</summary>
    Tso4 = 2,

    /// <summary>TCP segmentation over IPv6 (VIRTIO_NET_HDR_GSO_TCPV6; TUN_F_TSO6).</summary>
    Tso6 = 4,
}
