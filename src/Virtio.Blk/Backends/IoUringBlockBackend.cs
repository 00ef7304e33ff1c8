using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tmds.Linux;
using Virtio.Blk.Interop;
using Virtio.Core.Interop;
using Virtio.Core.Queues;

namespace Virtio.Blk.Backends;

/// <summary>
/// A raw disk image or a block device served through io_uring: the submitting thread (the queue's
/// I/O thread) puts readv/writev straight on the guest buffers (zero copy), fsync(DATASYNC) for
/// FLUSH and fallocate for discard / write-zeroes into the kernel's submission ring, and one reaper
/// thread completes them from the completion ring. No thread hand-off per request, and every
/// request up to <see cref="QueueDepth"/> is in the kernel at once. Same semantics as
/// <see cref="FileBlockBackend"/>, which works where io_uring is not allowed.
/// </summary>
/// <remarks>
/// <see cref="Submit"/> may be called from any thread; requests complete on the reaper thread (or
/// on the submitting thread when they fail before reaching the kernel). A transfer the kernel cuts
/// short continues where it stopped; end of file inside the capacity, and any error, is
/// VIRTIO_BLK_S_IOERR for that request. Requests beyond <see cref="QueueDepth"/> wait in order for
/// a free slot. A request the device abandoned (<see cref="BlockIo.IsAbandoned"/>) and not yet in
/// the kernel fails without touching guest memory. io_uring can be disabled by the host
/// (<c>kernel.io_uring_disabled</c>, seccomp): <see cref="IsSupported"/> tells.
/// </remarks>
public sealed class IoUringBlockBackend : IBlockBackend, IDisposable
{
    private const ulong WakeUserData = ulong.MaxValue;

    private readonly DiskImage _image;
    private readonly int _fd;
    private readonly IoUringRing _ring;
    private readonly ILogger _logger;
    private readonly IoUringRequest[] _requests;
    private readonly int[] _free;
    private readonly Queue<BlockIo> _waiting;
    private readonly Lock _gate = new();
    private readonly Thread _reaper;
    private int _freeCount;
    private bool _stopping;
    private bool _disposed;

    /// <summary>Opens <paramref name="path"/>, sets up the ring and starts the reaper thread. Any thread.</summary>
    /// <param name="path">A regular file or a block device; its size is the capacity (rounded down to 512).</param>
    /// <param name="readOnly">Open read-only; the device then offers VIRTIO_BLK_F_RO.</param>
    /// <param name="direct">Open with O_DIRECT (bypass the host page cache).</param>
    /// <param name="queueDepth">The most requests in the kernel at once (rounded up to a power of two by the kernel): the device's queues × in-flight per queue keeps them all there.</param>
    /// <param name="logger">Where failed requests are logged (Debug).</param>
    /// <exception cref="IOException">open, lseek, io_uring_setup or mmap failed; the message holds the errno.</exception>
    public IoUringBlockBackend(string path, bool readOnly = false, bool direct = false, int queueDepth = 256, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(queueDepth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(queueDepth, 4096);
        _logger = logger ?? NullLogger.Instance;
        _image = DiskImage.Open(path, readOnly, direct, _logger);
        _fd = (int)_image.Handle.DangerousGetHandle(); // the image stays open until Dispose
        try
        {
            _ring = new IoUringRing((uint)queueDepth);
        }
        catch
        {
            _image.Dispose();
            throw;
        }

        // One submission per slot at most, so the submission ring never fills.
        QueueDepth = (int)_ring.Entries;
        _requests = new IoUringRequest[QueueDepth];
        _free = new int[QueueDepth];
        for (int i = 0; i < QueueDepth; i++)
        {
            _requests[i] = new IoUringRequest(i);
            _free[i] = QueueDepth - 1 - i;
        }

        _freeCount = QueueDepth;
        _waiting = new Queue<BlockIo>(QueueDepth);
        _reaper = new Thread(static self => ((IoUringBlockBackend)self!).Reap())
        {
            IsBackground = true,
            Name = "blk-io_uring",
        };
        _reaper.Start(this);
    }

    /// <summary>The most requests in the kernel at once.</summary>
    public int QueueDepth { get; }

    /// <inheritdoc />
    public ulong Capacity => _image.Capacity;

    /// <inheritdoc />
    public bool IsReadOnly => _image.IsReadOnly;

    /// <inheritdoc />
    public BlockBackendCapabilities Capabilities => DiskImage.Capabilities;

    /// <summary>Whether this process may use io_uring (a ring of one entry can be set up). Any thread.</summary>
    /// <param name="reason">Why not, when it returns false.</param>
    /// <returns>True when io_uring works here.</returns>
    public static bool IsSupported(out string? reason)
    {
        if (!IoUringRing.Probe(out int errno))
        {
            reason = $"io_uring_setup failed with errno {errno} (disabled by kernel.io_uring_disabled or a seccomp filter, or an old kernel)";
            return false;
        }

        reason = null;
        return true;
    }

    /// <summary>Puts <paramref name="io"/> into the kernel's submission ring, or in line for a free slot. Any thread; never blocks on I/O.</summary>
    /// <param name="io">The request, validated by the device.</param>
    public void Submit(BlockIo io)
    {
        ArgumentNullException.ThrowIfNull(io);
        BlockStatus failed;
        lock (_gate)
        {
            if (_stopping)
            {
                failed = BlockStatus.IoError;
            }
            else if (_freeCount == 0)
            {
                _waiting.Enqueue(io);
                return;
            }
            else
            {
                IoUringRequest request = _requests[_free[--_freeCount]];
                request.Io = io;
                BlockStatus? now = Start(request);
                if (now is null)
                {
                    return;
                }

                failed = now.Value;
                request.Io = null;
                _free[_freeCount++] = request.Index;
            }
        }

        io.Complete(failed);
    }

    /// <summary>Waits for the requests in flight and in line (they complete), stops the reaper, then closes the ring and the file. Any thread, once the device is stopped.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _stopping = true;

            // Wake the reaper: if nothing is in flight it sleeps until this no-op completes.
            Push(IoUringInterop.OpNop, 0, 0, 0, 0, WakeUserData);
        }

        _reaper.Join();
        foreach (IoUringRequest request in _requests)
        {
            request.Dispose();
        }

        _ring.Dispose();
        _image.Dispose();
    }

    /// <summary>Issues the first submission of the request in <paramref name="request"/> (under the gate).</summary>
    /// <returns>Null when it is in the kernel; otherwise the status to complete it with now.</returns>
    private BlockStatus? Start(IoUringRequest request)
    {
        BlockIo io = request.Io!;
        BlockStatus? refused = _image.Admit(io);
        if (refused is not null)
        {
            return refused;
        }

        switch (io.Operation)
        {
            case BlockOperation.Read:
            case BlockOperation.Write:
                request.Done = 0;
                request.Position = io.Offset;
                return SubmitTransfer(request);

            case BlockOperation.Flush:
                return SubmitFlush(request);

            default:
                request.RangeIndex = 0;
                request.WritingZeroes = false;
                return SubmitRange(request);
        }
    }

    /// <summary>fsync(DATASYNC): durable once it completes.</summary>
    private BlockStatus? SubmitFlush(IoUringRequest request) =>
        Push(IoUringInterop.OpFsync, 0, 0, 0, IoUringInterop.FsyncDataSync, (ulong)request.Index);

    /// <summary>readv/writev of the rest of a transfer, from where the last one stopped.</summary>
    private unsafe BlockStatus? SubmitTransfer(IoUringRequest request)
    {
        BlockIo io = request.Io!;
        ReadOnlySpan<IoSegment> data = io.DataSegments;
        request.EnsureVectors(Math.Min(data.Length, FileInterop.IovMax));

        // The position is bytes done: a cursor cannot live in the slot between completions (a ref
        // struct), so each submission skips to it again (rare: only after a short transfer or
        // more than IovMax segments).
        var cursor = new ChainReader(data);
        cursor.Skip(request.Done);
        int count = cursor.PeekSegments(request.Batch.AsSpan(0, Math.Min(request.VectorCapacity, FileInterop.IovMax)));

        // SAFETY: Vectors has room for VectorCapacity >= count entries; each points into a guest
        // buffer the device bounds-checked and that stays mapped until the request completes.
        IoVec* iov = request.Vectors;
        for (int i = 0; i < count; i++)
        {
            iov[i] = new IoVec(request.Batch[i].Address, (nuint)request.Batch[i].Length);
        }

        byte opcode = io.Operation == BlockOperation.Read ? IoUringInterop.OpReadV : IoUringInterop.OpWriteV;
        return Push(opcode, request.Position, (ulong)iov, (uint)count, 0, (ulong)request.Index);
    }

    /// <summary>fallocate (or, for write-zeroes without it, a write of zeroes) for the current range.</summary>
    private BlockStatus? SubmitRange(IoUringRequest request)
    {
        BlockIo io = request.Io!;
        BlockRange range = io.Ranges[request.RangeIndex];
        if (request.WritingZeroes)
        {
            (nint zeroes, int chunk) = DiskImage.ZeroChunk(request.Position, range.Offset + range.Length);
            return Push(IoUringInterop.OpWrite, request.Position, (ulong)zeroes, (uint)chunk, 0, (ulong)request.Index);
        }

        // IORING_OP_FALLOCATE: off = offset, addr = length, len = mode.
        return Push(IoUringInterop.OpFallocate, range.Offset, range.Length, (uint)DiskImage.FallocateMode(io.Operation, range), 0, (ulong)request.Index);
    }

    /// <summary>Pushes one submission entry and submits it (under the gate).</summary>
    /// <returns>Null (in the kernel), or <see cref="BlockStatus.IoError"/> when the ring has no room.</returns>
    private BlockStatus? Push(byte opcode, ulong offset, ulong address, uint length, uint opFlags, ulong userData)
    {
        if (!_ring.TryPush(opcode, opcode != IoUringInterop.OpNop, _fd, offset, address, length, opFlags, userData))
        {
            return BlockStatus.IoError; // cannot happen with one submission per slot
        }

        int submitted = _ring.Submit(1);
        if (submitted < 0)
        {
            // The entry stays in the ring; the reaper's next io_uring_enter submits it.
            Log.IoUringEnterFailed(_logger, -submitted);
        }

        return null;
    }

    /// <summary>The reaper thread: waits for completions and finishes or continues their requests.</summary>
    private void Reap()
    {
        while (true)
        {
            uint pending;
            lock (_gate)
            {
                pending = _ring.Unsubmitted;
            }

            int result = _ring.SubmitAndWait(pending);
            if (result < 0 && result != -LibC.EINTR && result != -LibC.EAGAIN)
            {
                Log.IoUringEnterFailed(_logger, -result);
                Thread.Sleep(1);
            }

            while (_ring.TryReap(out IoUringInterop.Cqe cqe))
            {
                if (cqe.UserData != WakeUserData && cqe.UserData < (ulong)_requests.Length)
                {
                    OnCompletion(_requests[cqe.UserData], cqe.Result);
                }
            }

            lock (_gate)
            {
                if (_stopping && _freeCount == _requests.Length && _waiting.Count == 0)
                {
                    return;
                }
            }
        }
    }

    private void OnCompletion(IoUringRequest request, int result)
    {
        BlockIo io = request.Io!;
        BlockStatus? status;
        lock (_gate)
        {
            status = Continue(request, result);
        }

        if (status is not null)
        {
            Finish(request, io, status.Value);
        }
    }

    /// <summary>What a completion means for its request (under the gate).</summary>
    /// <returns>Null when the next submission of the request is in the kernel; otherwise its final status.</returns>
    private BlockStatus? Continue(IoUringRequest request, int result)
    {
        BlockIo io = request.Io!;
        if (result == -LibC.EINTR || result == -LibC.EAGAIN)
        {
            return Resubmit(request);
        }

        switch (io.Operation)
        {
            case BlockOperation.Read:
            case BlockOperation.Write:
                if (result <= 0)
                {
                    return _image.Failed(io, request.Position, -result); // 0: end of file inside the capacity
                }

                // A short transfer continues where the kernel stopped.
                request.Done += result;
                request.Position += (ulong)result;
                return request.Done < io.Length ? Resubmit(request) : BlockStatus.Ok;

            case BlockOperation.Flush:
                return result < 0 ? _image.Failed(io, io.Offset, -result) : BlockStatus.Ok;

            default:
                BlockRange range = io.Ranges[request.RangeIndex];
                if (request.WritingZeroes)
                {
                    if (result <= 0)
                    {
                        return _image.Failed(io, request.Position, -result);
                    }

                    request.Position += (ulong)result;
                    if (request.Position < range.Offset + range.Length)
                    {
                        return Resubmit(request);
                    }
                }
                else
                {
                    switch (_image.OnRangeResult(io, range, result < 0 ? -result : 0))
                    {
                        case RangeOutcome.Failed:
                            return BlockStatus.IoError;

                        case RangeOutcome.WriteZeroes:
                            // Write the zeroes, for this range and the rest.
                            request.WritingZeroes = true;
                            request.Position = range.Offset;
                            return Resubmit(request);
                    }
                }

                request.RangeIndex++;
                if (request.RangeIndex < io.Ranges.Length)
                {
                    if (request.WritingZeroes)
                    {
                        request.Position = io.Ranges[request.RangeIndex].Offset;
                    }

                    return Resubmit(request);
                }

                return BlockStatus.Ok;
        }
    }

    /// <summary>The next submission of a request already under way (under the gate).</summary>
    /// <returns>Null when it is in the kernel; otherwise the status to complete with.</returns>
    private BlockStatus? Resubmit(IoUringRequest request)
    {
        BlockIo io = request.Io!;
        if (io.IsAbandoned)
        {
            return BlockStatus.IoError; // the reset stopped waiting: the guest may have reused the buffers
        }

        return io.Operation switch
        {
            BlockOperation.Read or BlockOperation.Write => SubmitTransfer(request),
            BlockOperation.Flush => SubmitFlush(request),
            _ => SubmitRange(request),
        };
    }

    /// <summary>Frees the slot, starts the next request in line, and completes <paramref name="io"/>.</summary>
    private void Finish(IoUringRequest request, BlockIo io, BlockStatus status)
    {
        BlockIo? next = null;
        BlockStatus nextFailed = BlockStatus.Ok;
        lock (_gate)
        {
            request.Io = null;
            if (_waiting.TryDequeue(out BlockIo? waiting))
            {
                request.Io = waiting;
                BlockStatus? now = Start(request);
                if (now is not null)
                {
                    nextFailed = now.Value;
                    request.Io = null;
                    next = waiting;
                    _free[_freeCount++] = request.Index;
                }
            }
            else
            {
                _free[_freeCount++] = request.Index;
            }
        }

        io.Complete(status);
        next?.Complete(nextFailed);
    }
}
