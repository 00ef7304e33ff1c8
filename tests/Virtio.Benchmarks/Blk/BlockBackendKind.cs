namespace Virtio.Benchmarks.Blk;

/// <summary>The backend behind the benchmarked block device.</summary>
public enum BlockBackendKind
{
    /// <summary>NullBlockBackend: completes at once, moves no data.</summary>
    Null,

    /// <summary>MemoryBlockBackend: a RAM disk, copies the data.</summary>
    Memory,
}
