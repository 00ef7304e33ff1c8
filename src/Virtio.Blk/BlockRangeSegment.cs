using System.Runtime.InteropServices;

namespace Virtio.Blk;

/// <summary>struct virtio_blk_discard_write_zeroes (virtio 1.2 §5.2.6): one 16-byte range of a discard or write-zeroes request.</summary>
[StructLayout(LayoutKind.Sequential, Size = Size)]
internal struct BlockRangeSegment
{
    /// <summary>The segment's size in bytes.</summary>
    public const int Size = 16;

    /// <summary>VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP: the range may be deallocated.</summary>
    public const uint FlagUnmap = 1;

    /// <summary><c>sector</c>: the first sector.</summary>
    public ulong Sector;

    /// <summary><c>num_sectors</c>.</summary>
    public uint Sectors;

    /// <summary><c>flags</c>.</summary>
    public uint Flags;
}
