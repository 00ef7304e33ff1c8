using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Tmds.Linux;
using Virtio.Blk.Interop;
using Virtio.Core.Interop;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Blk.Backends;

/// <summary>
/// One io_uring of <see cref="IoUringBlockBackend"/> and the request slots in it: submissions are
/// built here, completions finish or continue their requests here. With an I/O thread the ring is
/// that thread's: entries pushed there inside a <see cref="DeferredCalls"/> section (the device's
/// drain pass) go to the kernel with one io_uring_enter when the section ends, and the ring's
/// eventfd (IORING_REGISTER_EVENTFD) is watched in the thread's epoll set, so completions are taken
/// on it too. Without one, a reaper thread of its own takes them.
/// </summary>
/// <remarks>
/// <see cref="Submit"/> may be called from any thread (the gate serializes the producer side); off
/// the ring's I/O thread, or outside a section, it enters at once. Completions are taken by one
/// thread at a time (the reap gate: the I/O thread, or <see cref="Dispose"/> once it stopped watching).
/// </remarks>
internal sealed class IoUringEngine : IDisposable
{
    private const ulong WakeUserData = ulong.MaxValue;

    private static readonly Action<object?> s_flush = static self => ((IoUringEngine)self!).Flush();
    private static readonly Action<object?> s_onCompletionEvent = static self => ((IoUringEngine)self!).OnCompletionEvent();

    private readonly DiskImage _image;
    private readonly int _fd;
    private readonly IoUringRing _ring;
    private readonly ILogger _logger;
    private readonly IoUringRequest[] _requests;
    private readonly int[] _free;
    private readonly Queue<BlockIo> _waiting;
    private readonly Lock _gate = new();
    private readonly Lock _reapGate = new();
    private readonly IoThread? _ioThread;
    private readonly EventFd? _completionEvent;
    private readonly IDisposable? _completionWatch;
    private readonly IDisposable? _completionPoller;
    private readonly Thread? _reaper;
    private int _freeCount;
    private bool _stopping;
    private bool _disposed;
    private bool _ringClosed; // set under _reapGate and _gate: nothing touches the ring any more

    /// <summary>Sets up the ring over <paramref name="image"/> and starts taking completions. Any thread.</summary>
    /// <param name="image">The open image; it outlives the engine.</param>
    /// <param name="queueDepth">The most requests in the kernel at once (the kernel rounds it up to a power of two).</param>
    /// <param name="ioThread">The started I/O thread that submits and reaps, or null for a reaper thread.</param>
    /// <param name="logger">Where failed system calls are logged.</param>
    /// <exception cref="System.IO.IOException">io_uring_setup, mmap, eventfd, io_uring_register or epoll_ctl failed.</exception>
    public IoUringEngine(DiskImage image, int queueDepth, IoThread? ioThread, ILogger logger)
    {
        _image = image;
        _fd = (int)image.Handle.DangerousGetHandle(); // the image stays open until the backend is disposed
        _logger = logger;
        // Twice the slots: one submission per slot at most, and room beside them for the no-op that
        // wakes a waiting reaper or drain (Dispose pushes one while the slots' entries may all still
        // be unsubmitted, waiting for their section's flush), so the submission ring never fills.
        uint slots = System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, queueDepth));
        _ring = new IoUringRing(2 * slots);
        try
        {
            if (ioThread is not null)
            {
                _completionEvent = EventFd.Create();
                _ring.RegisterCompletionEventFd(_completionEvent);
                _completionWatch = ioThread.Register(_completionEvent, s_onCompletionEvent, this);
                _completionPoller = ioThread.RegisterPoller(PollCompletions);
                _ioThread = ioThread;
            }
        }
        catch
        {
            _completionEvent?.Dispose();
            _ring.Dispose();
            throw;
        }

        QueueDepth = (int)Math.Min(slots, _ring.Entries / 2);
        _requests = new IoUringRequest[QueueDepth];
        _free = new int[QueueDepth];
        for (int i = 0; i < QueueDepth; i++)
        {
            _requests[i] = new IoUringRequest(i);
            _free[i] = QueueDepth - 1 - i;
        }

        _freeCount = QueueDepth;
        _waiting = new Queue<BlockIo>(QueueDepth);
        if (ioThread is null)
        {
            _reaper = new Thread(static self => ((IoUringEngine)self!).Reap())
            {
                IsBackground = true,
                Name = "blk-io_uring",
            };
            _reaper.Start(this);
        }
    }

    /// <summary>The most requests in the kernel at once.</summary>
    public int QueueDepth { get; }

    /// <summary>Whether the caller runs on this ring's I/O thread.</summary>
    public bool IsOnItsThread => _ioThread is not null && _ioThread.IsCurrentThread;

    /// <summary>Whether completions are taken by a reaper thread (no I/O thread was given).</summary>
    public bool HasReaperThread => _reaper is not null;

    /// <summary>io_uring_enter calls that submitted (not the reaper's waits). Any thread; for tests.</summary>
    public long SubmitCalls
    {
        get
        {
            lock (_gate)
            {
                return _ring.SubmitCalls;
            }
        }
    }

    /// <summary>Puts <paramref name="io"/> into the submission ring, or in line for a free slot. Any thread; never blocks on I/O.</summary>
    public void Submit(BlockIo io)
    {
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

    /// <summary>Waits for the requests in flight and in line (they complete), stops taking completions, then closes the ring. Any thread but the ring's I/O thread.</summary>
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
            if (_reaper is not null)
            {
                // Wake the reaper: if nothing is in flight it sleeps until this no-op completes.
                Push(IoUringInterop.OpNop, 0, 0, 0, 0, WakeUserData);
            }
        }

        if (_reaper is not null)
        {
            _reaper.Join();
        }
        else
        {
            // The I/O thread stops watching the ring (a handler already running finishes, under the
            // reap gate); what is still in flight is taken here.
            _completionWatch!.Dispose();
            _completionPoller!.Dispose();
            while (!Drained())
            {
                lock (_gate)
                {
                    // A no-op guarantees the wait below returns even if the I/O thread took the last completion.
                    _ring.TryPush(IoUringInterop.OpNop, false, -1, 0, 0, 0, 0, WakeUserData);
                }

                WaitAndReap();
            }

            _completionEvent!.Dispose();
        }

        foreach (IoUringRequest request in _requests)
        {
            request.Dispose();
        }

        lock (_reapGate)
        {
            lock (_gate)
            {
                // A polling pass that took the poller before its disposal may still call it once, and
                // a section it opened may still flush: neither touches the ring from here on.
                _ringClosed = true;
            }
        }

        _ring.Dispose();
    }

    /// <summary>The end of a section on the ring's I/O thread: one io_uring_enter for everything pushed in it.</summary>
    private void Flush()
    {
        lock (_gate)
        {
            uint pending = _ringClosed ? 0 : _ring.Unsubmitted;
            if (pending > 0)
            {
                EnterNow(pending);
            }
        }
    }

    /// <summary>io_uring_enter for <paramref name="pending"/> entries (under the gate); a failure leaves them for the next enter.</summary>
    private void EnterNow(uint pending)
    {
        int submitted = _ring.Submit(pending);
        if (submitted < 0)
        {
            Log.IoUringEnterFailed(_logger, -submitted);
        }
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

    /// <summary>
    /// Pushes one submission entry (under the gate). On the ring's I/O thread inside a section the
    /// enter waits for the section's end (<see cref="Flush"/>, deferred once per section); anywhere
    /// else it enters now.
    /// </summary>
    /// <returns>Null (in the kernel, or on its way at the section's end), or <see cref="BlockStatus.IoError"/> when the ring has no room.</returns>
    private BlockStatus? Push(byte opcode, ulong offset, ulong address, uint length, uint opFlags, ulong userData)
    {
        if (!_ring.TryPush(opcode, opcode != IoUringInterop.OpNop, _fd, offset, address, length, opFlags, userData))
        {
            return BlockStatus.IoError; // cannot happen with one submission per slot
        }

        if (IsOnItsThread && DeferredCalls.IsInSection)
        {
            DeferredCalls.Defer(s_flush, this); // recorded once per section: one io_uring_enter per pass
            return null;
        }

        EnterNow(1);
        return null;
    }

    /// <summary>The ring's eventfd fired on its I/O thread: takes every completion inside one section, so the device pushes them and interrupts once, and resubmissions go in one enter.</summary>
    private void OnCompletionEvent()
    {
        _completionEvent!.TryConsume(out _);
        using DeferredCallSection section = DeferredCalls.Section(_logger);
        ReapAll();

        // Entries an earlier enter failed to submit go with this section's flush.
        DeferredCalls.Defer(s_flush, this);
    }

    /// <summary>
    /// The ring's poller, on its I/O thread while it polls: completions found in the ring are taken as
    /// <see cref="OnCompletionEvent"/> takes them, without waiting for the eventfd to wake the thread
    /// (which stays signalled and is consumed on the next turn).
    /// </summary>
    /// <returns>True when it took completions.</returns>
    private bool PollCompletions()
    {
        lock (_reapGate)
        {
            if (_ringClosed || !_ring.HasCompletions)
            {
                return false;
            }
        }

        using DeferredCallSection section = DeferredCalls.Section(_logger);
        ReapAll();
        DeferredCalls.Defer(s_flush, this);
        return true;
    }

    /// <summary>The reaper thread: waits for completions and finishes or continues their requests.</summary>
    private void Reap()
    {
        do
        {
            WaitAndReap();
        }
        while (!Drained());
    }

    /// <summary>Stopping, and nothing in flight or in line.</summary>
    private bool Drained()
    {
        lock (_gate)
        {
            return _stopping && _freeCount == _requests.Length && _waiting.Count == 0;
        }
    }

    /// <summary>Submits what is left in the submission ring, waits for a completion, and takes them all.</summary>
    private void WaitAndReap()
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

        ReapAll();
    }

    /// <summary>Finishes or continues the request of every completion in the ring. One thread at a time.</summary>
    private void ReapAll()
    {
        lock (_reapGate)
        {
            while (!_ringClosed && _ring.TryReap(out IoUringInterop.Cqe cqe))
            {
                if (cqe.UserData != WakeUserData && cqe.UserData < (ulong)_requests.Length)
                {
                    OnCompletion(_requests[cqe.UserData], cqe.Result);
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
