namespace Virtio.Blk;

/// <summary>virtio-blk feature bits (virtio 1.2 §5.2.3), as masks.</summary>
public static class BlockFeatures
{
    /// <summary>VIRTIO_BLK_F_SIZE_MAX (1): <c>size_max</c> is the largest single buffer.</summary>
    public const ulong SizeMax = 1UL << 1;

    /// <summary>VIRTIO_BLK_F_SEG_MAX (2): <c>seg_max</c> is the largest number of data buffers in a request.</summary>
    public const ulong SegMax = 1UL << 2;

    /// <summary>VIRTIO_BLK_F_GEOMETRY (4): legacy disk geometry is in <c>geometry</c>.</summary>
    public const ulong Geometry = 1UL << 4;

    /// <summary>VIRTIO_BLK_F_RO (5): the disk is read-only.</summary>
    public const ulong ReadOnly = 1UL << 5;

    /// <summary>VIRTIO_BLK_F_BLK_SIZE (6): <c>blk_size</c> is the logical block size.</summary>
    public const ulong BlockSize = 1UL << 6;

    /// <summary>VIRTIO_BLK_F_FLUSH (9): the device has a cache and understands VIRTIO_BLK_T_FLUSH.</summary>
    public const ulong Flush = 1UL << 9;

    /// <summary>VIRTIO_BLK_F_TOPOLOGY (10): <c>topology</c> describes the optimal I/O alignment.</summary>
    public const ulong Topology = 1UL << 10;

    /// <summary>VIRTIO_BLK_F_CONFIG_WCE (11): the driver can switch the cache between writeback and writethrough.</summary>
    public const ulong ConfigWce = 1UL << 11;

    /// <summary>VIRTIO_BLK_F_MQ (12): <c>num_queues</c> request queues.</summary>
    public const ulong MultiQueue = 1UL << 12;

    /// <summary>VIRTIO_BLK_F_DISCARD (13): VIRTIO_BLK_T_DISCARD is supported.</summary>
    public const ulong Discard = 1UL << 13;

    /// <summary>VIRTIO_BLK_F_WRITE_ZEROES (14): VIRTIO_BLK_T_WRITE_ZEROES is supported.</summary>
    public const ulong WriteZeroes = 1UL << 14;
}
