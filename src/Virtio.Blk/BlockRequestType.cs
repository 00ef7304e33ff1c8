namespace Virtio.Blk;

/// <summary>The <c>type</c> field of a virtio-blk request header (virtio 1.2 §5.2.6).</summary>
public enum BlockRequestType : uint
{
    /// <summary>VIRTIO_BLK_T_IN: read sectors into the device-writable buffers.</summary>
    In = 0,

    /// <summary>VIRTIO_BLK_T_OUT: write sectors from the device-readable buffers.</summary>
    Out = 1,

    /// <summary>VIRTIO_BLK_T_FLUSH: make every completed write durable.</summary>
    Flush = 4,

    /// <summary>VIRTIO_BLK_T_GET_ID: read the device's serial (up to 20 bytes).</summary>
    GetId = 8,

    /// <summary>VIRTIO_BLK_T_DISCARD: the listed ranges are no longer needed.</summary>
    Discard = 11,

    /// <summary>VIRTIO_BLK_T_WRITE_ZEROES: the listed ranges read back as zeroes.</summary>
    WriteZeroes = 13,
}
