namespace Virtio.Benchmarks.Queues;

/// <summary>The descriptor chain a <see cref="SplitVirtqueueBenchmarks"/> case pops.</summary>
public enum ChainShape
{
    /// <summary>One device-writable 4 KiB buffer (a virtio-net receive buffer).</summary>
    Direct1,

    /// <summary>A 16-byte readable header, a 4 KiB writable buffer, a 1-byte writable status (a virtio-blk 4 KiB read).</summary>
    Direct3,

    /// <summary>A 16-byte readable header, 15 writable 4 KiB buffers, a 1-byte writable status: 17 direct descriptors.</summary>
    Direct17,

    /// <summary>One descriptor naming a 64-entry indirect table: header, 62 writable 4 KiB buffers, status.</summary>
    Indirect64,
}
