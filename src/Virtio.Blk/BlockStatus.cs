namespace Virtio.Blk;

/// <summary>The status byte a virtio-blk device writes as the last byte of a request (virtio 1.2 §5.2.6).</summary>
public enum BlockStatus : byte
{
    /// <summary>VIRTIO_BLK_S_OK: the request succeeded.</summary>
    Ok = 0,

    /// <summary>VIRTIO_BLK_S_IOERR: the request failed (bad sector range, backend error, read-only disk, ...).</summary>
    IoError = 1,

    /// <summary>VIRTIO_BLK_S_UNSUPP: the device does not support the request type or its flags.</summary>
    Unsupported = 2,
}
