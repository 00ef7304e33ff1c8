namespace Virtio.Net;

/// <summary>
/// The classes of control-queue commands the device handles (virtio 1.2 §5.1.6.5, the <c>class</c>
/// byte of struct virtio_net_ctrl). Other classes (VLAN, ANNOUNCE, GUEST_OFFLOADS, ...) are answered
/// VIRTIO_NET_ERR.
/// </summary>
internal enum NetControlClass : byte
{
    /// <summary>VIRTIO_NET_CTRL_RX: receive filtering modes (§5.1.6.5.1).</summary>
    Rx = 0,

    /// <summary>VIRTIO_NET_CTRL_MAC: MAC filter tables and the device's address (§5.1.6.5.2).</summary>
    Mac = 1,

    /// <summary>VIRTIO_NET_CTRL_MQ: how many queue pairs the driver uses (§5.1.6.5.5).</summary>
    Mq = 4,
}
