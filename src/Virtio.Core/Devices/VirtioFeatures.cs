namespace Virtio.Core.Devices;

/// <summary>Device-independent feature bits (virtio 1.2 §6), as masks.</summary>
public static class VirtioFeatures
{
    /// <summary>VIRTIO_F_INDIRECT_DESC (28): descriptors may point at indirect tables.</summary>
    public const ulong IndirectDescriptors = 1UL << 28;

    /// <summary>VIRTIO_F_EVENT_IDX (29): used_event and avail_event suppress notifications.</summary>
    public const ulong EventIdx = 1UL << 29;

    /// <summary>VIRTIO_F_VERSION_1 (32): the device follows virtio 1.x. Always offered; required from the driver.</summary>
    public const ulong Version1 = 1UL << 32;

    /// <summary>VIRTIO_F_ACCESS_PLATFORM (33): the device reaches memory through a platform IOMMU.</summary>
    public const ulong AccessPlatform = 1UL << 33;

    /// <summary>VIRTIO_F_RING_PACKED (34): packed virtqueues.</summary>
    public const ulong RingPacked = 1UL << 34;

    /// <summary>VIRTIO_F_IN_ORDER (35): buffers are used in the order they were made available.</summary>
    public const ulong InOrder = 1UL << 35;

    /// <summary>VIRTIO_F_RING_RESET (40): single virtqueues can be reset.</summary>
    public const ulong RingReset = 1UL << 40;

    /// <summary>The features every device of this library offers: VERSION_1, INDIRECT_DESC and EVENT_IDX.</summary>
    public const ulong CoreDefaults = Version1 | IndirectDescriptors | EventIdx;
}
