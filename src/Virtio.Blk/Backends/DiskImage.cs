using System;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Blk.Interop;

namespace Virtio.Blk.Backends;

/// <summary>
/// A raw disk image or block device opened for a file engine (<see cref="FileBlockBackend"/>,
/// <see cref="IoUringBlockBackend"/>): the file, its capacity, the read-only and O_DIRECT flags, and
/// the block rules both engines apply the same way: which requests may reach the file at all, the
/// fallocate mode of a discard or write-zeroes range, what an unsupported fallocate means for each,
/// and the pinned zeroes written where fallocate cannot zero. The engines only move bytes.
/// </summary>
/// <remarks>Immutable after <see cref="Open"/> but for <see cref="Capacity"/> (<see cref="RefreshCapacity"/>); any thread. The engine disposes it after its last request.</remarks>
internal sealed class DiskImage : IDisposable
{
    /// <summary>The largest write of zeroes one call makes when fallocate cannot zero.</summary>
    public const int ZeroBufferSize = 64 << 10;

    private static readonly byte[] s_zeroes = GC.AllocateArray<byte>(ZeroBufferSize, pinned: true);

    private readonly ILogger _logger;
    private readonly string _path;
    private ulong _capacity;

    private DiskImage(SafeFileHandle handle, string path, ulong capacity, bool readOnly, bool direct, ILogger logger)
    {
        Handle = handle;
        _path = path;
        _capacity = capacity;
        IsReadOnly = readOnly;
        IsDirect = direct;
        _logger = logger;
    }

    /// <summary>The open file.</summary>
    public SafeFileHandle Handle { get; }

    /// <summary>The size in bytes, rounded down to 512, when opened or last refreshed.</summary>
    public ulong Capacity => Volatile.Read(ref _capacity);

    /// <summary>Reads the file's size again (it was resized under us) and returns it. Any thread.</summary>
    /// <exception cref="System.IO.IOException">lseek failed.</exception>
    public ulong RefreshCapacity()
    {
        ulong capacity = FileInterop.QueryCapacity(Handle, _path);
        Volatile.Write(ref _capacity, capacity);
        return capacity;
    }

    /// <summary>Opened read-only: writes, discards and write-zeroes fail.</summary>
    public bool IsReadOnly { get; }

    /// <summary>Opened with O_DIRECT.</summary>
    public bool IsDirect { get; }

    /// <summary>What both engines support on a file or block device.</summary>
    public static BlockBackendCapabilities Capabilities =>
        BlockBackendCapabilities.Discard | BlockBackendCapabilities.WriteZeroes | BlockBackendCapabilities.WriteZeroesMayUnmap;

    /// <summary>Opens <paramref name="path"/> and, with <paramref name="lockImage"/>, takes its lock (<see cref="ImageLock"/>). Any thread.</summary>
    /// <exception cref="ImageLockedException">Another open holds a conflicting lock on the image.</exception>
    /// <exception cref="System.IO.IOException">open, lseek or fcntl failed; the message holds the errno.</exception>
    public static DiskImage Open(string path, bool readOnly, bool direct, bool lockImage, ILogger logger)
    {
        SafeFileHandle handle = FileInterop.OpenImage(path, readOnly, direct, out ulong capacity);
        try
        {
            if (lockImage)
            {
                ImageLock.Acquire(handle, path, readOnly, logger);
            }
            else
            {
                Log.ImageUnlocked(logger, path);
            }
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        return new DiskImage(handle, path, capacity, readOnly, direct, logger);
    }

    /// <summary>
    /// The rules before any I/O: an abandoned request, a write, discard or write-zeroes on a
    /// read-only image fail; an unknown operation is unsupported; a read or write without data is done.
    /// </summary>
    /// <returns>Null when the engine should start the request; otherwise the status to complete it with now.</returns>
    public BlockStatus? Admit(BlockIo io)
    {
        if (io.IsAbandoned)
        {
            return BlockStatus.IoError; // the reset stopped waiting: the guest may have reused the buffers
        }

        switch (io.Operation)
        {
            case BlockOperation.Read:
                return io.Segments.IsEmpty ? BlockStatus.Ok : null;

            case BlockOperation.Write:
                return IsReadOnly ? BlockStatus.IoError : io.Segments.IsEmpty ? BlockStatus.Ok : null;

            case BlockOperation.Flush:
                return null;

            case BlockOperation.Discard:
            case BlockOperation.WriteZeroes:
                return IsReadOnly ? BlockStatus.IoError : io.Ranges.IsEmpty ? BlockStatus.Ok : null;

            default:
                return BlockStatus.Unsupported;
        }
    }

    /// <summary>The fallocate mode for <paramref name="range"/>: punch a hole for a discard or an unmapping write-zeroes, zero the range otherwise.</summary>
    public static int FallocateMode(BlockOperation operation, BlockRange range) =>
        (operation == BlockOperation.Discard || range.MayUnmap ? FileInterop.FALLOC_FL_PUNCH_HOLE : FileInterop.FALLOC_FL_ZERO_RANGE)
        | FileInterop.FALLOC_FL_KEEP_SIZE;

    /// <summary>What fallocate's result for a range of <paramref name="io"/> means.</summary>
    /// <param name="io">The discard or write-zeroes request.</param>
    /// <param name="range">The range fallocate was called for.</param>
    /// <param name="errno">0 on success, else the errno.</param>
    public RangeOutcome OnRangeResult(BlockIo io, BlockRange range, int errno)
    {
        if (errno == 0)
        {
            return RangeOutcome.Done;
        }

        if (errno == LibC.EOPNOTSUPP)
        {
            // Discard is a hint (virtio 1.2 §5.2.6): a file system that cannot punch holes keeps the
            // data. Write-zeroes without fallocate support (a block device without WRITE_ZEROES, some
            // file systems) writes the zeroes.
            return io.Operation == BlockOperation.Discard ? RangeOutcome.Done : RangeOutcome.WriteZeroes;
        }

        Failed(io, range.Offset, errno);
        return RangeOutcome.Failed;
    }

    /// <summary>The next write of zeroes from <paramref name="position"/> up to <paramref name="end"/>: pinned zeroes, at most <see cref="ZeroBufferSize"/> of them.</summary>
    /// <returns>The pinned buffer's address and the bytes to write from it.</returns>
    public static (nint Address, int Length) ZeroChunk(ulong position, ulong end)
    {
        int length = (int)Math.Min(end - position, ZeroBufferSize);

        // s_zeroes is pinned for the process's lifetime: its address does not move.
        nint address = Marshal.UnsafeAddrOfPinnedArrayElement(s_zeroes, 0);
        return (address, length);
    }

    /// <summary>Logs a failed system call of <paramref name="io"/> (Debug) and returns IOERR.</summary>
    public BlockStatus Failed(BlockIo io, ulong offset, int errno)
    {
        Log.FileIoFailed(_logger, io.Operation, offset, errno);
        return BlockStatus.IoError;
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => Handle.Dispose();
}
