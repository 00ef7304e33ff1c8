namespace Virtio.Net;

/// <summary>Why a <see cref="NetDevice"/> dropped a frame.</summary>
public enum NetDropReason
{
    /// <summary>A transmit chain whose virtio-net header is missing, short or asks for features not negotiated.</summary>
    MalformedHeader,

    /// <summary>A transmit frame larger than the device's limit, or shorter than an Ethernet header.</summary>
    BadLength,

    /// <summary>The link was down.</summary>
    LinkDown,

    /// <summary>The backend could not take a transmitted frame.</summary>
    BackendBusy,

    /// <summary>A received frame the guest's receive filter (promiscuous mode, MAC table) rejects.</summary>
    Filtered,

    /// <summary>A received frame larger than the guest's receive buffer (without VIRTIO_NET_F_MRG_RXBUF).</summary>
    RxBufferTooSmall,

    /// <summary>A received segmentation-offload frame the guest did not negotiate.</summary>
    OffloadNotNegotiated,
}
