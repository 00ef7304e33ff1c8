namespace Virtio.Net;

/// <summary>What became of the frame a receive queue holds when it tried to deliver it.</summary>
internal enum NetRxResult
{
    /// <summary>Written into guest chains, which went on the used ring.</summary>
    Delivered,

    /// <summary>Dropped and counted (too large for a chain without VIRTIO_NET_F_MRG_RXBUF).</summary>
    Dropped,

    /// <summary>Kept: the guest has not posted enough buffers.</summary>
    NoBuffers,

    /// <summary>A chain broke the queue (DEVICE_NEEDS_RESET).</summary>
    Broken,
}
