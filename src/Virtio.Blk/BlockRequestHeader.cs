using System.Runtime.InteropServices;

namespace Virtio.Blk;

/// <summary>struct virtio_blk_req's header (virtio 1.2 §5.2.6): 16 device-readable bytes, little-endian like the hosts this runs on.</summary>
[StructLayout(LayoutKind.Sequential, Size = Size)]
internal struct BlockRequestHeader
{
    /// <summary>The header's size in bytes.</summary>
    public const int Size = 16;

    /// <summary><c>type</c>: a <see cref="BlockRequestType"/>.</summary>
    public uint Type;

    /// <summary><c>reserved</c>.</summary>
    public uint Reserved;

    /// <summary><c>sector</c>: the first 512-byte sector of a read or write.</summary>
    public ulong Sector;
}
