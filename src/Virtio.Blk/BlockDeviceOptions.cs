using System;
using System.Collections.Generic;
using Virtio.Core.Threading;

namespace Virtio.Blk;

/// <summary>
/// How a <see cref="BlockDevice"/> presents itself to the driver. Read once, by the device's
/// constructor; later changes have no effect.
/// </summary>
public sealed class BlockDeviceOptions
{
    /// <summary>
    /// The device's name in its measurements (the <c>virtio.device</c> tag of every Virtio.Blk
    /// instrument, docs/metrics.md), e.g. the disk's file name. Default null: blk0, blk1, ... in
    /// creation order.
    /// </summary>
    public string? Name { get; init; }

    /// <summary>Request queues (VIRTIO_BLK_F_MQ when above 1). Default 1.</summary>
    public int QueueCount { get; init; } = 1;

    /// <summary>The largest queue size (QueueNumMax), a power of two. Default 256; SEG_MAX is <see cref="MaxSegments"/>, at most this minus 2.</summary>
    public ushort QueueSize { get; init; } = 256;

    /// <summary>
    /// The most data buffers one request may have: <c>seg_max</c> (VIRTIO_BLK_F_SEG_MAX), capped at
    /// <see cref="QueueSize"/> - 2. A chain of more buffers than this plus 2 (header and status) fails
    /// with IOERR and one log line, and no pooled per-request array grows past that many entries, so a
    /// peer's long chains cannot make the device retain large arrays. Default 254; at least 1.
    /// </summary>
    public int MaxSegments { get; init; } = 254;

    /// <summary>
    /// Requests each queue keeps in flight at most; when all are in flight the queue stops popping
    /// and resumes on a completion. 0 (the default) means <see cref="QueueSize"/>.
    /// </summary>
    public int MaxInFlightPerQueue { get; init; }

    /// <summary>Presents the disk read-only (VIRTIO_BLK_F_RO) even when the backend is writable.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>The cache mode after reset: writeback (true, the default) or writethrough (every write is followed by a flush).</summary>
    public bool Writeback { get; init; } = true;

    /// <summary>The logical block size reported in <c>blk_size</c> (VIRTIO_BLK_F_BLK_SIZE). Default 512.</summary>
    public uint BlockSize { get; init; } = 512;

    /// <summary>The largest single buffer the driver should use (<c>size_max</c>, VIRTIO_BLK_F_SIZE_MAX); 0 offers no limit. Default 0.</summary>
    public uint SizeMax { get; init; }

    /// <summary>Topology (VIRTIO_BLK_F_TOPOLOGY): log2 of logical blocks per physical block. Default 0.</summary>
    public byte PhysicalBlockExponent { get; init; }

    /// <summary>Topology: offset of the first aligned logical block. Default 0.</summary>
    public byte AlignmentOffset { get; init; }

    /// <summary>Topology: suggested minimum I/O size in logical blocks. Default 1.</summary>
    public ushort MinIoSize { get; init; } = 1;

    /// <summary>Topology: optimal sustained I/O size in logical blocks; 0 for none. Default 0.</summary>
    public uint OptimalIoSize { get; init; }

    /// <summary>The serial returned by VIRTIO_BLK_T_GET_ID: up to 20 ASCII bytes, zero padded. Default empty.</summary>
    public string Serial { get; init; } = string.Empty;

    /// <summary>Whether to offer VIRTIO_BLK_F_DISCARD when the backend supports it. Default true.</summary>
    public bool EnableDiscard { get; init; } = true;

    /// <summary>Whether to offer VIRTIO_BLK_F_WRITE_ZEROES when the backend supports it. Default true.</summary>
    public bool EnableWriteZeroes { get; init; } = true;

    /// <summary><c>max_discard_sectors</c>: the largest discard segment, in 512-byte sectors. Default 4,194,304 (2 GiB).</summary>
    public uint MaxDiscardSectors { get; init; } = 1u << 22;

    /// <summary><c>max_discard_seg</c>: the most segments in one discard request. Default 32.</summary>
    public uint MaxDiscardSegments { get; init; } = 32;

    /// <summary><c>discard_sector_alignment</c>, in 512-byte sectors. Default 1.</summary>
    public uint DiscardSectorAlignment { get; init; } = 1;

    /// <summary><c>max_write_zeroes_sectors</c>: the largest write-zeroes segment, in 512-byte sectors. Default 4,194,304.</summary>
    public uint MaxWriteZeroesSectors { get; init; } = 1u << 22;

    /// <summary><c>max_write_zeroes_seg</c>: the most segments in one write-zeroes request. Default 32.</summary>
    public uint MaxWriteZeroesSegments { get; init; } = 32;

    /// <summary>
    /// Whether to offer VIRTIO_F_RING_PACKED (virtio 1.2 §2.8): a driver that takes it gets packed
    /// virtqueues instead of split ones. Default false.
    /// </summary>
    public bool OfferPackedRing { get; init; }

    /// <summary>
    /// Where backend completions of queue i are pushed to the used ring: IoThreads[i % Count], the same
    /// threads a <see cref="Virtio.Core.Notifications.HostNotifierController"/> serves the queues on.
    /// Null (the default) completes on the backend's thread, under the queue's lock.
    /// </summary>
    public IReadOnlyList<IoThread>? IoThreads { get; init; }

    /// <summary>
    /// How long a reset waits for in-flight requests before giving up on them (their late completions are
    /// dropped, and backends skip transfers they have not started). Default 30 s.
    /// <see cref="System.Threading.Timeout.InfiniteTimeSpan"/> waits for every request: then no backend
    /// transfer can touch guest memory after the reset returns, at the price of a reset that hangs with a
    /// hung backend.
    /// </summary>
    public TimeSpan ResetTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
