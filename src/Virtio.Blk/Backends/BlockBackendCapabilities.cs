using System;

namespace Virtio.Blk.Backends;

/// <summary>Optional operations a backend supports; the device offers the matching feature bits only for these.</summary>
[Flags]
public enum BlockBackendCapabilities
{
    /// <summary>Reads, writes and flushes only.</summary>
    None = 0,

    /// <summary><see cref="BlockOperation.Discard"/> is supported (VIRTIO_BLK_F_DISCARD).</summary>
    Discard = 1,

    /// <summary><see cref="BlockOperation.WriteZeroes"/> is supported (VIRTIO_BLK_F_WRITE_ZEROES).</summary>
    WriteZeroes = 2,

    /// <summary>Write-zeroes with unmap may deallocate (sets <c>write_zeroes_may_unmap</c>).</summary>
    WriteZeroesMayUnmap = 4,
}
