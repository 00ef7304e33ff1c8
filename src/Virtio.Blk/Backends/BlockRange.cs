namespace Virtio.Blk.Backends;

/// <summary>One range of a discard or write-zeroes request, in bytes, already checked against the capacity.</summary>
/// <param name="Offset">The first byte.</param>
/// <param name="Length">The number of bytes (a multiple of 512).</param>
/// <param name="MayUnmap">For write-zeroes: the driver allows the range to be deallocated.</param>
public readonly record struct BlockRange(ulong Offset, ulong Length, bool MayUnmap);
