namespace Virtio.Blk;

/// <summary>
/// A parsed virtio-blk request (virtio 1.2 §5.2.6), what <see cref="BlockRequestParser"/> made of a
/// chain: its type and first sector, where its status byte goes, and its data length. The data
/// segments and the discard / write-zeroes ranges are in the <see cref="Backends.BlockIo"/> it was
/// parsed into. A plain value, on the queue's thread.
/// </summary>
/// <param name="Type">The request type.</param>
/// <param name="Sector">The header's sector (reads and writes).</param>
/// <param name="StatusAddress">The host address of the status byte, the chain's last device-writable byte; 0 when there is none.</param>
/// <param name="DataLength">Reads and GET_ID: device-writable bytes before the status; writes: device-readable bytes after the header.</param>
internal readonly record struct BlockRequest(BlockRequestType Type, ulong Sector, nint StatusAddress, long DataLength);
