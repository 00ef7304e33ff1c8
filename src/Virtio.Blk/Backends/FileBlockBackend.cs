using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tmds.Linux;
using Virtio.Blk.Interop;
using Virtio.Core.Interop;
using Virtio.Core.Queues;

namespace Virtio.Blk.Backends;

/// <summary>
/// A raw disk image or a block device: preadv/pwritev straight between the file and the guest
/// buffers (zero copy), fdatasync for FLUSH, fallocate(PUNCH_HOLE) for discard and
/// fallocate(ZERO_RANGE) for write-zeroes (writing zeroes where unsupported). Blocking calls run on
/// worker threads started on demand: a request submitted while every worker is busy starts another,
/// up to the limit, so a guest's queue depth (fio iodepth=32: 32 requests) reaches the file at once.
/// A starter thread, started with the backend, starts them, never the submitting thread:
/// <c>Thread.Start</c> waits until the new thread runs, which on a loaded host took up to 150 ms, and
/// the device submits while it holds back the completions of the same wake-up (docs/kvm.md, "The test
/// guest"). The thread pool would not do: its first work items start its own threads the same way.
/// </summary>
/// <remarks>
/// <see cref="Submit"/> only queues (any thread); workers complete requests on their own threads.
/// A request the device abandoned (<see cref="BlockIo.IsAbandoned"/>, a reset that gave up waiting)
/// and not yet started fails with IOERR without touching guest memory.
/// With O_DIRECT, guest buffers and offsets must be aligned to the device's logical block size, or
/// the kernel fails the request (reported as IOERR).
/// </remarks>
public sealed class FileBlockBackend : IBlockBackend, IDisposable
{
    private readonly DiskImage _image;
    private readonly ILogger _logger;
    private readonly Thread[] _workers;
    private readonly Queue<BlockIo> _pending = new();
    private readonly object _gate = new();
    private readonly object _starterGate = new();
    private readonly Thread _starter;
    private int _started;
    private int _starting;
    private int _toStart;
    private int _idle;
    private bool _stopping;

    /// <summary>Opens <paramref name="path"/> and starts the thread that starts workers on demand. Any thread.</summary>
    /// <param name="path">A regular file or a block device; its size is the capacity (rounded down to 512).</param>
    /// <param name="readOnly">Open read-only; the device then offers VIRTIO_BLK_F_RO.</param>
    /// <param name="direct">Open with O_DIRECT (bypass the host page cache).</param>
    /// <param name="workers">
    /// The most worker threads, so the most requests in the kernel at once; started on demand. Default
    /// 256, the default queue size (<see cref="BlockDeviceOptions.QueueSize"/>): set it to the queue depth
    /// the device allows (queues × in-flight per queue) to keep the whole depth in flight.
    /// </param>
    /// <param name="logger">Where failed system calls are logged (Debug).</param>
    /// <remarks>Locks the image (<see cref="FileBackendOptions.LockImage"/>); <see cref="BlockBackends.OpenFile"/> opens without the lock when asked.</remarks>
    /// <exception cref="ImageLockedException">Another open holds a conflicting lock on the image.</exception>
    /// <exception cref="IOException">open, lseek or fcntl failed; the message holds the errno.</exception>
    public FileBlockBackend(string path, bool readOnly = false, bool direct = false, int workers = 256, ILogger? logger = null)
        : this(path, readOnly, direct, workers, logger, lockImage: true)
    {
    }

    /// <summary>The constructor with the image lock chosen (<see cref="FileBackendOptions.LockImage"/>).</summary>
    internal FileBlockBackend(string path, bool readOnly, bool direct, int workers, ILogger? logger, bool lockImage)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        _logger = logger ?? NullLogger.Instance;
        _image = DiskImage.Open(path, readOnly, direct, lockImage, _logger);
        _workers = new Thread[workers];
        _starter = new Thread(static self => ((FileBlockBackend)self!).RunStarter())
        {
            IsBackground = true,
            Name = "blk-file-starter",
        };
        _starter.Start(this);
    }

    /// <summary>Worker threads started so far (at most the constructor's limit). Any thread.</summary>
    internal int WorkerCount => Volatile.Read(ref _started);

    /// <summary>Test seam: runs on the thread that starts a worker, just before it creates the thread.</summary>
    internal Action? BeforeWorkerStart { get; set; }

    /// <summary>Test seam: runs on a worker just before it issues a request's system calls.</summary>
    internal Action<BlockIo>? BeforeExecute { get; set; }

    /// <inheritdoc />
    public ulong Capacity => _image.Capacity;

    /// <summary>
    /// Reads the image's size again (it was grown or truncated under the backend) and returns it in
    /// bytes, rounded down to 512; <see cref="Capacity"/> says it from then on. Tell the device with
    /// <see cref="BlockDevice.UpdateCapacity"/>. Any thread.
    /// </summary>
    /// <returns>The new capacity in bytes.</returns>
    /// <exception cref="System.IO.IOException">The size could not be read (the message holds the errno).</exception>
    public ulong RefreshCapacity() => _image.RefreshCapacity();

    /// <inheritdoc />
    public bool IsReadOnly => _image.IsReadOnly;

    /// <inheritdoc />
    public BlockBackendCapabilities Capabilities => DiskImage.Capabilities;

    /// <summary>Queues <paramref name="io"/> for a worker. Any thread; never blocks on I/O.</summary>
    /// <param name="io">The request, validated by the device.</param>
    public void Submit(BlockIo io)
    {
        ArgumentNullException.ThrowIfNull(io);
        lock (_gate)
        {
            if (!_stopping)
            {
                _pending.Enqueue(io);
                if (_idle + _starting < _pending.Count && _started < _workers.Length)
                {
                    // Every worker is busy (or already promised to a request): one more keeps this
                    // request off the queue. The starter thread starts it, so this call never waits.
                    _started++;
                    _starting++;
                    lock (_starterGate)
                    {
                        _toStart++;
                        Monitor.Pulse(_starterGate);
                    }
                }

                Monitor.Pulse(_gate);
                return;
            }
        }

        io.Complete(BlockStatus.IoError);
    }

    /// <summary>Stops the workers after the queued requests (which complete), then closes the file. Any thread, once the device is stopped.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
            Monitor.PulseAll(_gate);
        }

        lock (_starterGate)
        {
            Monitor.PulseAll(_starterGate);
        }

        _starter.Join(); // after it starts the workers still owed: they drain what is queued, then stop

        for (int i = 0; i < Volatile.Read(ref _started); i++)
        {
            _workers[i].Join();
        }

        _image.Dispose();
    }

    private void Work()
    {
        IoVec[] vectors = GC.AllocateArray<IoVec>(FileInterop.IovMax, pinned: true);
        var batch = new IoSegment[FileInterop.IovMax];
        lock (_gate)
        {
            _starting--;
        }

        while (true)
        {
            BlockIo io;
            lock (_gate)
            {
                while (_pending.Count == 0)
                {
                    if (_stopping)
                    {
                        return;
                    }

                    _idle++;
                    Monitor.Wait(_gate);
                    _idle--;
                }

                io = _pending.Dequeue();
            }

            BlockStatus status;
            try
            {
                BeforeExecute?.Invoke(io);
                status = _image.Admit(io) ?? Execute(io, vectors, batch);
            }
            catch (Exception)
            {
                status = BlockStatus.IoError;
            }

            io.Complete(status);
        }
    }

    /// <summary>The starter thread: starts, in order, each worker <see cref="Submit"/> reserved; returns once stopping and none is owed.</summary>
    private void RunStarter()
    {
        int next = 0;
        while (true)
        {
            lock (_starterGate)
            {
                while (_toStart == 0)
                {
                    if (Volatile.Read(ref _stopping))
                    {
                        return;
                    }

                    Monitor.Wait(_starterGate);
                }

                _toStart--;
            }

            StartWorker(next++);
        }
    }

    /// <summary>Starts worker <paramref name="index"/> (the starter thread); allocates only while the pool grows.</summary>
    private void StartWorker(int index)
    {
        BeforeWorkerStart?.Invoke();
        var worker = new Thread(static self => ((FileBlockBackend)self!).Work())
        {
            IsBackground = true,
            Name = $"blk-file-{index}",
        };
        _workers[index] = worker; // Dispose reads it after joining the starter
        worker.Start(this);
    }

    /// <summary>Runs an admitted request's system calls (a worker).</summary>
    private BlockStatus Execute(BlockIo io, IoVec[] vectors, IoSegment[] batch)
    {
        bool added = false;
        _image.Handle.DangerousAddRef(ref added);
        try
        {
            int fd = (int)_image.Handle.DangerousGetHandle();
            switch (io.Operation)
            {
                case BlockOperation.Read:
                case BlockOperation.Write:
                    return Transfer(fd, io, vectors, batch);

                case BlockOperation.Flush:
                    return LibC.fdatasync(fd) < 0 ? _image.Failed(io, io.Offset, LibC.errno) : BlockStatus.Ok;

                default:
                    foreach (BlockRange range in io.Ranges)
                    {
                        BlockStatus status = Range(fd, io, range);
                        if (status != BlockStatus.Ok)
                        {
                            return status;
                        }
                    }

                    return BlockStatus.Ok;
            }
        }
        finally
        {
            if (added)
            {
                _image.Handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// preadv/pwritev of the data segments, at most <see cref="FileInterop.IovMax"/> at a time; a short
    /// transfer continues where the kernel stopped. A <see cref="ChainReader"/> keeps the position
    /// (for a read the kernel fills the segments, for a write it reads them: the cursor only peeks and skips).
    /// </summary>
    private unsafe BlockStatus Transfer(int fd, BlockIo io, IoVec[] vectors, IoSegment[] batch)
    {
        var cursor = new ChainReader(io.DataSegments);
        long offset = (long)io.Offset;
        bool read = io.Operation == BlockOperation.Read;

        // SAFETY: `vectors` is pinned; each entry points into a guest buffer the device bounds-checked
        // and that stays mapped until the request completes; the kernel writes only inside them.
        fixed (IoVec* iov = vectors)
        {
            while (cursor.Remaining > 0)
            {
                int count = cursor.PeekSegments(batch);
                for (int i = 0; i < count; i++)
                {
                    iov[i] = new IoVec(batch[i].Address, (nuint)batch[i].Length);
                }

                nint done = read ? FileInterop.PReadV(fd, iov, count, offset) : FileInterop.PWriteV(fd, iov, count, offset);
                if (done < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == LibC.EINTR)
                    {
                        continue;
                    }

                    return _image.Failed(io, io.Offset, errno);
                }

                if (done == 0)
                {
                    return _image.Failed(io, io.Offset, 0); // end of file inside the capacity: a short transfer
                }

                offset += done;
                cursor.Skip(done);
            }
        }

        return BlockStatus.Ok;
    }

    /// <summary>One discard or write-zeroes range: fallocate, and the zeroes written where it cannot zero.</summary>
    private BlockStatus Range(int fd, BlockIo io, BlockRange range)
    {
        int errno = FileInterop.FAllocate(fd, DiskImage.FallocateMode(io.Operation, range), (long)range.Offset, (long)range.Length) == 0
            ? 0
            : Marshal.GetLastPInvokeError();
        switch (_image.OnRangeResult(io, range, errno))
        {
            case RangeOutcome.Done:
                return BlockStatus.Ok;

            case RangeOutcome.Failed:
                return BlockStatus.IoError;
        }

        ulong position = range.Offset;
        ulong end = range.Offset + range.Length;
        while (position < end)
        {
            (nint zeroes, int chunk) = DiskImage.ZeroChunk(position, end);
            nint done = FileInterop.PWrite(fd, zeroes, (nuint)chunk, (long)position);
            if (done < 0)
            {
                int error = Marshal.GetLastPInvokeError();
                if (error == LibC.EINTR)
                {
                    continue;
                }

                return _image.Failed(io, position, error);
            }

            if (done == 0)
            {
                return _image.Failed(io, position, 0);
            }

            position += (ulong)done;
        }

        return BlockStatus.Ok;
    }
}
