namespace Virtio.Net;

/// <summary>
/// The control-queue commands the device handles (virtio 1.2 §5.1.6.5): the <c>class</c> byte of
/// struct virtio_net_ctrl in the high byte, the <c>command</c> byte in the low one.
/// </summary>
internal enum NetControlCommand : ushort
{
    /// <summary>VIRTIO_NET_CTRL_RX_PROMISC: one byte, on or off (needs VIRTIO_NET_F_CTRL_RX).</summary>
    RxPromisc = ((int)NetControlClass.Rx << 8) | 0,

    /// <summary>VIRTIO_NET_CTRL_RX_ALLMULTI: one byte, on or off (needs VIRTIO_NET_F_CTRL_RX).</summary>
    RxAllMulti = ((int)NetControlClass.Rx << 8) | 1,

    /// <summary>VIRTIO_NET_CTRL_MAC_TABLE_SET: the unicast then the multicast table (needs VIRTIO_NET_F_CTRL_RX).</summary>
    MacTableSet = ((int)NetControlClass.Mac << 8) | 0,

    /// <summary>VIRTIO_NET_CTRL_MAC_ADDR_SET: six bytes, the new address (needs VIRTIO_NET_F_CTRL_MAC_ADDR).</summary>
    MacAddrSet = ((int)NetControlClass.Mac << 8) | 1,

    /// <summary>VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: le16 virtqueue_pairs (needs VIRTIO_NET_F_MQ).</summary>
    MqVqPairsSet = ((int)NetControlClass.Mq << 8) | 0,
}
