namespace Virtio.Blk.Backends;

/// <summary>What a disk image makes of one fallocate result for a discard or write-zeroes range (<see cref="DiskImage.OnRangeResult"/>).</summary>
internal enum RangeOutcome : byte
{
    /// <summary>The range is done (or, for a discard, need not be: it is a hint).</summary>
    Done,

    /// <summary>fallocate cannot zero here: write the zeroes instead (<see cref="DiskImage.ZeroChunk"/>).</summary>
    WriteZeroes,

    /// <summary>The range failed: the request fails with IOERR.</summary>
    Failed,
}
