using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace Virtio.Blk.Backends;

/// <summary>
/// A RAM disk in unmanaged, zero-initialized memory. Requests complete synchronously on the
/// submitting thread; discard and write-zeroes zero their ranges.
/// </summary>
/// <remarks>Any thread may submit; concurrent requests to overlapping ranges give no ordering guarantee, as on real disks.</remarks>
public sealed class MemoryBlockBackend : IBlockBackend, IDisposable
{
    private unsafe byte* _data;
    private int _disposed;

    /// <summary>Allocates the disk. Any thread.</summary>
    /// <param name="capacity">Bytes; a multiple of 512.</param>
    /// <param name="readOnly">Whether the disk refuses writes.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is 0 or not a multiple of 512.</exception>
    public unsafe MemoryBlockBackend(ulong capacity, bool readOnly = false)
    {
        if (capacity == 0 || capacity % BlockDevice.SectorSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, "The capacity is a non-zero multiple of 512 bytes.");
        }

        Capacity = capacity;
        IsReadOnly = readOnly;
        _data = (byte*)NativeMemory.AllocZeroed((nuint)capacity);
    }

    /// <inheritdoc />
    public ulong Capacity { get; }

    /// <inheritdoc />
    public bool IsReadOnly { get; }

    /// <inheritdoc />
    public BlockBackendCapabilities Capabilities =>
        BlockBackendCapabilities.Discard | BlockBackendCapabilities.WriteZeroes | BlockBackendCapabilities.WriteZeroesMayUnmap;

    /// <summary>The disk's bytes in [<paramref name="offset"/>, +<paramref name="length"/>), for tests and embedders to inspect or fill.</summary>
    /// <param name="offset">The first byte.</param>
    /// <param name="length">How many bytes.</param>
    /// <returns>A span over the disk.</returns>
    public Span<byte> GetSpan(ulong offset, int length)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (length < 0 || offset > Capacity || (ulong)length > Capacity - offset)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), "The range is outside the disk.");
        }

        return Disk(offset, length);
    }

    /// <summary>Copies between the disk and the guest buffers and completes <paramref name="io"/> on the calling thread.</summary>
    /// <param name="io">The request, validated by the device.</param>
    public void Submit(BlockIo io)
    {
        ArgumentNullException.ThrowIfNull(io);
        if (Volatile.Read(ref _disposed) != 0 || io.IsAbandoned)
        {
            io.Complete(BlockStatus.IoError);
            return;
        }

        switch (io.Operation)
        {
            case BlockOperation.Read:
            case BlockOperation.Write:
                if (io.Offset > Capacity || (ulong)io.Length > Capacity - io.Offset || (IsReadOnly && io.Operation == BlockOperation.Write))
                {
                    io.Complete(BlockStatus.IoError);
                    return;
                }

                ulong position = io.Offset;
                foreach (BlockSegment segment in io.Segments)
                {
                    // [position, position + segment.Length) lies inside the disk: the total was checked above.
                    Span<byte> disk = Disk(position, segment.Length);
                    if (io.Operation == BlockOperation.Read)
                    {
                        disk.CopyTo(segment.AsSpan());
                    }
                    else
                    {
                        segment.AsSpan().CopyTo(disk);
                    }

                    position += (ulong)segment.Length;
                }

                break;

            case BlockOperation.Discard:
            case BlockOperation.WriteZeroes:
                if (IsReadOnly)
                {
                    io.Complete(BlockStatus.IoError);
                    return;
                }

                foreach (BlockRange range in io.Ranges)
                {
                    if (range.Offset > Capacity || range.Length > Capacity - range.Offset)
                    {
                        io.Complete(BlockStatus.IoError);
                        return;
                    }

                    Clear(range);
                }

                break;
        }

        io.Complete(BlockStatus.Ok);
    }

    /// <summary>Frees the memory. Call once no request is in flight; later submissions fail with IOERR.</summary>
    public unsafe void Dispose()
    {
        // SAFETY: the exchange lets one caller free the allocation, once; no request is in flight.
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            NativeMemory.Free(_data);
            _data = null;
        }
    }

    /// <summary>The disk's bytes in [<paramref name="offset"/>, +<paramref name="length"/>); the caller checked the range against <see cref="Capacity"/>.</summary>
    private unsafe Span<byte> Disk(ulong offset, int length)
    {
        // SAFETY: the caller checked [offset, offset + length) against Capacity, the allocation's
        // size, and the allocation lives until Dispose.
        return new Span<byte>(_data + offset, length);
    }

    /// <summary>Zeroes <paramref name="range"/>; the caller checked it against <see cref="Capacity"/>.</summary>
    private unsafe void Clear(BlockRange range)
    {
        // SAFETY: the caller checked the range against Capacity, the allocation's size, and the
        // allocation lives until Dispose.
        NativeMemory.Clear(_data + range.Offset, (nuint)range.Length);
    }
}
