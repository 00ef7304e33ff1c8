using System;

namespace Virtio.Blk.Backends;

/// <summary>
/// One guest buffer of a request, as a host address and length: an I/O vector the backend reads
/// from or writes into directly (zero copy). The memory is guest memory, mapped for as long as the
/// device runs; it is valid until the <see cref="BlockIo"/> it came from is completed.
/// </summary>
/// <param name="Address">The buffer's host virtual address.</param>
/// <param name="Length">The buffer's length in bytes.</param>
public readonly record struct BlockSegment(nint Address, int Length)
{
    /// <summary>The buffer as a span. Any thread may call it while the request is in flight.</summary>
    /// <returns>A span over the guest buffer.</returns>
    public unsafe Span<byte> AsSpan() =>
        // SAFETY: the device built this segment from a DescriptorBuffer that guest memory bounds-checked;
        // the mapping stays valid while the device runs and the request is in flight.
        new((void*)Address, Length);
}
