namespace Virtio.Net;

/// <summary>The virtio-net feature bits (virtio 1.2 §5.1.3), as masks.</summary>
public static class NetFeatures
{
    /// <summary>VIRTIO_NET_F_CSUM (0): the device handles packets with a partial checksum.</summary>
    public const ulong Csum = 1UL << 0;

    /// <summary>VIRTIO_NET_F_GUEST_CSUM (1): the driver handles packets with a partial checksum.</summary>
    public const ulong GuestCsum = 1UL << 1;

    /// <summary>VIRTIO_NET_F_CTRL_GUEST_OFFLOADS (2): offloads can be reconfigured through the control queue.</summary>
    public const ulong CtrlGuestOffloads = 1UL << 2;

    /// <summary>VIRTIO_NET_F_MTU (3): the device reports its maximum MTU in the configuration.</summary>
    public const ulong Mtu = 1UL << 3;

    /// <summary>VIRTIO_NET_F_MAC (5): the device has given a MAC address.</summary>
    public const ulong Mac = 1UL << 5;

    /// <summary>VIRTIO_NET_F_GUEST_TSO4 (7): the driver can receive TSOv4.</summary>
    public const ulong GuestTso4 = 1UL << 7;

    /// <summary>VIRTIO_NET_F_GUEST_TSO6 (8): the driver can receive TSOv6.</summary>
    public const ulong GuestTso6 = 1UL << 8;

    /// <summary>VIRTIO_NET_F_GUEST_ECN (9): the driver can receive TSO with ECN.</summary>
    public const ulong GuestEcn = 1UL << 9;

    /// <summary>VIRTIO_NET_F_GUEST_UFO (10): the driver can receive UFO.</summary>
    public const ulong GuestUfo = 1UL << 10;

    /// <summary>VIRTIO_NET_F_HOST_TSO4 (11): the device can receive TSOv4 from the driver.</summary>
    public const ulong HostTso4 = 1UL << 11;

    /// <summary>VIRTIO_NET_F_HOST_TSO6 (12): the device can receive TSOv6 from the driver.</summary>
    public const ulong HostTso6 = 1UL << 12;

    /// <summary>VIRTIO_NET_F_HOST_ECN (13): the device can receive TSO with ECN.</summary>
    public const ulong HostEcn = 1UL << 13;

    /// <summary>VIRTIO_NET_F_HOST_UFO (14): the device can receive UFO.</summary>
    public const ulong HostUfo = 1UL << 14;

    /// <summary>VIRTIO_NET_F_MRG_RXBUF (15): the driver can merge receive buffers (num_buffers).</summary>
    public const ulong MrgRxBuf = 1UL << 15;

    /// <summary>VIRTIO_NET_F_STATUS (16): the configuration status field is available.</summary>
    public const ulong Status = 1UL << 16;

    /// <summary>VIRTIO_NET_F_CTRL_VQ (17): a control virtqueue is available.</summary>
    public const ulong CtrlVq = 1UL << 17;

    /// <summary>VIRTIO_NET_F_CTRL_RX (18): the control queue supports RX mode (promiscuous, all-multicast) and the MAC table.</summary>
    public const ulong CtrlRx = 1UL << 18;

    /// <summary>VIRTIO_NET_F_CTRL_VLAN (19): the control queue supports VLAN filtering.</summary>
    public const ulong CtrlVlan = 1UL << 19;

    /// <summary>VIRTIO_NET_F_MQ (22): several receive/transmit queue pairs, set with VIRTIO_NET_CTRL_MQ.</summary>
    public const ulong Mq = 1UL << 22;

    /// <summary>VIRTIO_NET_F_CTRL_MAC_ADDR (23): the MAC address can be set through the control queue.</summary>
    public const ulong CtrlMacAddr = 1UL << 23;
}
