using System;
using System.Runtime.InteropServices;
using Virtio.Core.Interop;
using Virtio.Core.Queues;

namespace Virtio.Blk.Backends;

/// <summary>
/// One request slot of <see cref="IoUringBlockBackend"/>: the request, its iovec array (native, grown
/// to the largest request seen and kept) and how far it has got, since a transfer the kernel cut
/// short, a request with more segments than one readv takes, and the ranges of a discard continue
/// with another submission. At most one submission per slot is in the ring at a time.
/// </summary>
internal sealed class IoUringRequest : IDisposable
{
    public IoUringRequest(int index)
    {
        Index = index;
    }

    /// <summary>The slot's index: the user_data of its submissions.</summary>
    public int Index { get; }

    /// <summary>The request in this slot, or null when the slot is free.</summary>
    public BlockIo? Io { get; set; }

    /// <summary>The iovec array of the current submission.</summary>
    public unsafe IoVec* Vectors { get; private set; }

    /// <summary>Entries <see cref="Vectors"/> has room for.</summary>
    public int VectorCapacity { get; private set; }

    /// <summary>The segments of the current submission, peeked from the data (as long as <see cref="Vectors"/>).</summary>
    public IoSegment[] Batch { get; private set; } = [];

    /// <summary>Transfers: bytes already done, where the next submission starts.</summary>
    public long Done { get; set; }

    /// <summary>Transfers: the disk offset of the next byte; write-zeroes fallback: the next byte to zero.</summary>
    public ulong Position { get; set; }

    /// <summary>Discard and write-zeroes: the range being worked on.</summary>
    public int RangeIndex { get; set; }

    /// <summary>Write-zeroes: fallocate is not supported, the zeroes are written.</summary>
    public bool WritingZeroes { get; set; }

    /// <summary>Makes room for <paramref name="count"/> iovecs and batch segments; allocates only while the slot grows.</summary>
    public unsafe void EnsureVectors(int count)
    {
        if (count <= VectorCapacity)
        {
            return;
        }

        int capacity = Math.Max(count, Math.Max(8, VectorCapacity * 2));
        // SAFETY: the old array is no submission's any more (one submission per slot, and this
        // runs before the next one is built); the new one has room for `capacity` entries.
        NativeMemory.Free(Vectors);
        Vectors = (IoVec*)NativeMemory.Alloc((nuint)capacity, (nuint)sizeof(IoVec));
        Batch = new IoSegment[capacity];
        VectorCapacity = capacity;
    }

    public unsafe void Dispose()
    {
        // SAFETY: called once the reaper has stopped, so no submission uses the array.
        NativeMemory.Free(Vectors);
        Vectors = null;
        VectorCapacity = 0;
    }
}
