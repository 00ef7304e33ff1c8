using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.Text;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Blk;

/// <summary>
/// A virtio-blk device (virtio 1.2 §5.2, device ID 2) over an <see cref="IBlockBackend"/>: moves requests
/// between the queues and the backend. It gathers each chain, has a request parser turn it
/// into a request or a typed error, hands the guest buffers to the backend without copying, and pushes completions to
/// the used ring in batches (one interrupt per batch, through <see cref="DeferredCalls"/>).
/// </summary>
/// <remarks>
/// <para>Threads: the transport calls the <see cref="VirtioDevice"/> members (one thread at a time);
/// queue processing runs on whichever thread notifies the queue (an I/O thread, or a vCPU thread
/// on the synchronous path); backend completions arrive on any thread and are pushed on the queue's
/// I/O thread (<see cref="BlockDeviceOptions.IoThreads"/>) or, without one, on the completing thread.
/// A per-queue lock serializes all of it.</para>
/// <para>Guest memory must be unmanaged (mapped, not a movable managed array): the backend receives
/// host addresses of guest buffers (<see cref="BlockSegment"/>).</para>
/// <para>A reset waits for in-flight requests (up to <see cref="BlockDeviceOptions.ResetTimeout"/>, or the
/// bound given to <see cref="VirtioDevice.Reset(TimeSpan, CancellationToken)"/>) and drops their
/// completions: nothing is written to the used ring or a status byte once a reset began.
/// <see cref="VirtioDevice.Dispose()"/> resets the same way; the backend stays the caller's, to dispose
/// after the device.</para>
/// </remarks>
public sealed class BlockDevice : VirtioDevice
{
    /// <summary>The virtio device ID of a block device.</summary>
    public const ushort BlockDeviceId = 2;

    /// <summary>The size of the configuration structure this device exposes (through <c>write_zeroes_may_unmap</c> and padding).</summary>
    public const int ConfigSize = 60;

    /// <summary>The sector size of every request, whatever the logical block size (virtio 1.2 §5.2.6).</summary>
    public const int SectorSize = 512;

    private const int IdBytes = 20;

    private static readonly Action<object?> s_publish = static state =>
    {
        var queue = (BlockQueue)state!;
        lock (queue.Gate)
        {
            queue.Device.PublishAndNotify(queue);
        }
    };

    private static readonly Action<object?> s_kick = static state =>
    {
        var queue = (BlockQueue)state!;
        queue.Device.NotifyQueue(queue.Queue.Index);
    };

    private readonly IBlockBackend _backend;
    private readonly BlockDeviceOptions _options;
    private readonly BlockQueue[] _queues;
    private readonly bool _readOnly;
    private readonly BlockRequestParser _parser;
    private readonly byte[] _serial = new byte[IdBytes];
    private readonly int _maxChainSegments;
    private readonly object _drainGate = new();
    private int _generation;
    private int _inFlight;
    private volatile bool _resetWaiting;
    private int _writeback;

    /// <summary>Creates the device; the transport attaches it afterwards. Any thread, once.</summary>
    /// <param name="memory">Guest memory (unmanaged: see remarks).</param>
    /// <param name="backend">The storage; owned by the caller, who keeps it alive while the device runs.</param>
    /// <param name="options">Presentation and limits; defaults when null.</param>
    /// <param name="logger">Where request errors and resets are logged.</param>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public BlockDevice(IGuestMemory memory, IBlockBackend backend, BlockDeviceOptions? options = null, ILogger? logger = null)
        : base(BlockDeviceId, OfferedFeatures(backend, options ??= new BlockDeviceOptions()), memory, QueueSizes(options), logger)
    {
        _backend = backend;
        _options = options;
        Name = options.Name ?? BlockMetrics.NextUnnamed();
        MetricsName = Name;
        _readOnly = options.ReadOnly || backend.IsReadOnly;
        _writeback = options.Writeback ? 1 : 0;
        _parser = new BlockRequestParser(backend.Capacity / SectorSize, _readOnly, options, (backend.Capabilities & BlockBackendCapabilities.WriteZeroesMayUnmap) != 0);
        Encoding.ASCII.GetBytes(options.Serial.AsSpan(0, Math.Min(options.Serial.Length, IdBytes)), _serial);

        _maxChainSegments = (int)SegMax(options) + 2;
        int slots = options.MaxInFlightPerQueue > 0 ? Math.Min(options.MaxInFlightPerQueue, options.QueueSize) : options.QueueSize;
        _queues = new BlockQueue[options.QueueCount];
        for (int i = 0; i < _queues.Length; i++)
        {
            IoThread? ioThread = options.IoThreads is { Count: > 0 } threads ? threads[i % threads.Count] : null;
            _queues[i] = new BlockQueue(this, Queues[i], ioThread, slots);
        }

        BlockMetrics.Register(this);
    }

    /// <summary>
    /// The device's name in its measurements (the <c>virtio.device</c> tag, docs/metrics.md):
    /// <see cref="BlockDeviceOptions.Name"/>, or blk0, blk1, ... in creation order when that is null.
    /// </summary>
    public string Name { get; }

    /// <summary>The disk size in 512-byte sectors (<c>capacity</c>); it changes with <see cref="UpdateCapacity"/>. Any thread.</summary>
    public ulong CapacitySectors => _parser.CapacitySectors;

    /// <summary>Whether the disk is presented read-only.</summary>
    public bool IsReadOnly => _readOnly;

    /// <summary>
    /// Whether writes are acknowledged before they are durable: FLUSH negotiated and, with
    /// CONFIG_WCE, the driver's <c>writeback</c> field set. Otherwise each write is followed by a flush.
    /// Any thread may read it.
    /// </summary>
    public bool IsWritebackActive =>
        IsNegotiated(BlockFeatures.Flush) && (!IsNegotiated(BlockFeatures.ConfigWce) || Volatile.Read(ref _writeback) != 0);

    /// <summary>Requests submitted to the backend and not yet returned to their pool. Any thread.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    internal int Generation => Volatile.Read(ref _generation);

    /// <summary>The queues, for the gauges of <see cref="BlockMetrics"/>.</summary>
    internal IReadOnlyList<BlockQueue> MetricQueues => _queues;

    /// <inheritdoc />
    public override void ReadConfig(int offset, Span<byte> data)
    {
        Span<byte> config = stackalloc byte[ConfigSize];
        config.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(config, _parser.CapacitySectors);
        BinaryPrimitives.WriteUInt32LittleEndian(config[8..], _options.SizeMax);
        BinaryPrimitives.WriteUInt32LittleEndian(config[12..], SegMax(_options));

        // geometry (16..19) stays zero: VIRTIO_BLK_F_GEOMETRY is not offered.
        BinaryPrimitives.WriteUInt32LittleEndian(config[20..], _options.BlockSize);
        config[24] = _options.PhysicalBlockExponent;
        config[25] = _options.AlignmentOffset;
        BinaryPrimitives.WriteUInt16LittleEndian(config[26..], _options.MinIoSize);
        BinaryPrimitives.WriteUInt32LittleEndian(config[28..], _options.OptimalIoSize);
        config[32] = (byte)Volatile.Read(ref _writeback);
        BinaryPrimitives.WriteUInt16LittleEndian(config[34..], (ushort)_queues.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(config[36..], _options.MaxDiscardSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(config[40..], _options.MaxDiscardSegments);
        BinaryPrimitives.WriteUInt32LittleEndian(config[44..], _options.DiscardSectorAlignment);
        BinaryPrimitives.WriteUInt32LittleEndian(config[48..], _options.MaxWriteZeroesSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(config[52..], _options.MaxWriteZeroesSegments);
        config[56] = (byte)((_backend.Capabilities & BlockBackendCapabilities.WriteZeroesMayUnmap) != 0 ? 1 : 0);
        CopyConfig(config, offset, data);
    }

    /// <summary>
    /// Reads <see cref="IBlockBackend.Capacity"/> again (the disk was resized: for a file backend, call
    /// its <c>RefreshCapacity</c> first) and, when it changed, makes it the <c>capacity</c> field and
    /// the bound every request is checked against, then moves the configuration generation and sends
    /// the driver a configuration-change interrupt (virtio 1.2 §5.2.4: the driver re-reads the capacity).
    /// A request is checked against the old capacity or the new one, never a mix. A smaller capacity is
    /// taken too: requests past the new end fail with VIRTIO_BLK_S_IOERR (one already checked against
    /// the old end goes on to the backend). Any thread.
    /// </summary>
    /// <returns>The capacity in 512-byte sectors from now on.</returns>
    public ulong UpdateCapacity()
    {
        ulong sectors = _backend.Capacity / SectorSize;
        ulong old = _parser.CapacitySectors;
        if (sectors == old)
        {
            return sectors;
        }

        _parser.CapacitySectors = sectors;
        Log.CapacityChanged(Logger, Name, old, sectors);
        NotifyConfigChanged();
        return sectors;
    }

    /// <summary>
    /// Only <c>writeback</c> (offset 32, one byte) is writable, and only with VIRTIO_BLK_F_CONFIG_WCE
    /// negotiated (virtio 1.2 §5.2.5); every other write is ignored. Called by the transport.
    /// </summary>
    /// <param name="offset">Offset into the configuration.</param>
    /// <param name="data">The bytes written.</param>
    public override void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
        if (offset == 32 && data.Length == 1 && IsNegotiated(BlockFeatures.ConfigWce))
        {
            int value = data[0] != 0 ? 1 : 0;
            Volatile.Write(ref _writeback, value);
            Log.WritebackChanged(Logger, value != 0);
        }
    }

    /// <inheritdoc />
    protected override bool AcceptFeatures(ulong features)
    {
        // virtio 1.2 §5.2.5.1: with CONFIG_WCE but without FLUSH the cache starts in writethrough.
        if ((features & BlockFeatures.ConfigWce) != 0 && (features & BlockFeatures.Flush) == 0)
        {
            Volatile.Write(ref _writeback, 0);
        }

        return true;
    }

    /// <inheritdoc />
    protected override void ProcessQueue(SplitVirtqueue queue)
    {
        BlockQueue blockQueue = _queues[queue.Index];
        lock (blockQueue.Gate)
        {
            using DeferredCallSection section = DeferredCalls.Section(Logger);
            Drain(blockQueue);
        }
    }

    /// <summary>
    /// Stops completions from reaching the guest, waits for in-flight requests (bounded by
    /// <paramref name="timeout"/>, or <see cref="BlockDeviceOptions.ResetTimeout"/> when null, and by
    /// <paramref name="cancellationToken"/>) and returns their slots; requests that outlive the wait
    /// are abandoned and their late completions dropped by generation. Runs on the resetting thread.
    /// </summary>
    /// <param name="timeout">The caller's bound on the wait, or null for <see cref="BlockDeviceOptions.ResetTimeout"/>.</param>
    /// <param name="cancellationToken">Ends the wait early.</param>
    /// <returns>True when no request was left in flight.</returns>
    protected override bool OnReset(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        TimeSpan wait = timeout ?? _options.ResetTimeout;
        foreach (BlockQueue queue in _queues)
        {
            queue.SetStopping(true);
        }

        // Completions queued before the switch go back to their pool without touching the guest.
        foreach (BlockQueue queue in _queues)
        {
            lock (queue.Gate)
            {
                while (queue.TryTakeCompleted(out BlockIo io))
                {
                    Release(queue, io, dropped: true);
                }
            }
        }

        // A cancellation pulses the gate, so the wait below sees it at once.
        using CancellationTokenRegistration cancelled = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static gate => { lock (gate!) { Monitor.PulseAll(gate); } }, _drainGate)
            : default;
        lock (_drainGate)
        {
            _resetWaiting = true;

            // Store-load pair with Release (decrement, then read _resetWaiting): without this fence the
            // read of _inFlight below could pass the store above, and a last completion could see no
            // waiter while this thread still saw it in flight, and nobody would pulse.
            Interlocked.MemoryBarrier();
            bool forever = wait == Timeout.InfiniteTimeSpan;
            long deadline = forever ? long.MaxValue : Environment.TickCount64 + (long)wait.TotalMilliseconds;
            while (Volatile.Read(ref _inFlight) > 0 && !cancellationToken.IsCancellationRequested)
            {
                if (forever)
                {
                    // Every completion that drops _inFlight pulses _drainGate, and so does a cancellation.
                    Monitor.Wait(_drainGate);
                    continue;
                }

                long remaining = deadline - Environment.TickCount64;
                if (remaining <= 0 || !Monitor.Wait(_drainGate, TimeSpan.FromMilliseconds(remaining)))
                {
                    break;
                }
            }

            _resetWaiting = false;
        }

        int left = Volatile.Read(ref _inFlight);
        if (left > 0)
        {
            // The guest may reuse these buffers as soon as the reset returns: tell the backend not
            // to start the transfers it has not started (the in-tree backends check IsAbandoned).
            foreach (BlockQueue queue in _queues)
            {
                queue.AbandonInFlight();
            }

            Log.ResetTimedOut(Logger, left, wait);
        }

        Interlocked.Increment(ref _generation);
        Volatile.Write(ref _writeback, _options.Writeback ? 1 : 0);
        foreach (BlockQueue queue in _queues)
        {
            lock (queue.Gate)
            {
                queue.Starved = false;
            }

            queue.SetStopping(false);
        }

        return left == 0;
    }

    /// <summary>Pushes queued completions and resumes a starved queue. Under the queue's gate.</summary>
    internal void PushCompletions(BlockQueue queue)
    {
        // This runs on whichever thread completed a request (a backend worker, the I/O thread, the
        // thread pool): an exception here would end that thread or the process, so it breaks the
        // queue instead, as one out of ProcessQueue does.
        try
        {
            using DeferredCallSection section = DeferredCalls.Section(Logger);
            TakeCompletions(queue);
            if (queue.Starved && queue.FreeSlots > 0 && IsLive && queue.Queue.IsReady)
            {
                Drain(queue);
            }
        }
        catch (Exception exception)
        {
            FailQueue(queue.Queue, exception);
        }
    }

    internal void PublishAndNotify(BlockQueue queue) => PublishUsedAndNotify(queue.Queue);

    /// <summary>Hands <paramref name="io"/> to the backend; a throw fails the request. Any thread.</summary>
    internal void SubmitToBackend(BlockQueue queue, BlockIo io)
    {
        try
        {
            _backend.Submit(io);
        }
        catch (Exception exception)
        {
            Log.BackendThrew(Logger, queue.Queue.Index, exception);
            io.Complete(BlockStatus.IoError);
        }
    }

    /// <summary>Returns a slot to its pool; the reset waits for the in-flight count to drop. Under the queue's gate.</summary>
    internal void Release(BlockQueue queue, BlockIo io, bool dropped)
    {
        if (dropped)
        {
            BlockMetrics.Dropped.Add(1, queue.DeviceTag, queue.QueueTag);
        }

        queue.ReturnFree(io);
        if (Interlocked.Decrement(ref _inFlight) == 0 && _resetWaiting)
        {
            lock (_drainGate)
            {
                Monitor.PulseAll(_drainGate);
            }
        }
    }

    private void Drain(BlockQueue queue)
    {
        SplitVirtqueue ring = queue.Queue;

        // Bounded: a guest refilling the ring with requests that fail at once (no backend wait) could
        // otherwise keep this thread, and every other queue it serves, here for ever.
        int budget = ring.Size;
        do
        {
            ring.DisableNotification();
            while (true)
            {
                TakeCompletions(queue);
                if (queue.FreeSlots == 0)
                {
                    // Every slot is in flight: stop popping, leave notifications off; the next
                    // completion resumes (PushCompletions).
                    if (!queue.Starved)
                    {
                        queue.Starved = true;
                        BlockMetrics.Starved.Add(1, queue.DeviceTag, queue.QueueTag);
                    }

                    DeferredCalls.Defer(s_publish, queue);
                    return;
                }

                if (budget == 0)
                {
                    // The rest waits for a later pass: kicks back on; when chains are already there no
                    // kick may come for them, so the pass is requeued behind the thread's other work.
                    queue.Starved = false;
                    DeferredCalls.Defer(s_publish, queue);
                    if (ring.EnableNotification())
                    {
                        BlockMetrics.BudgetExhausted.Add(1, queue.DeviceTag, queue.QueueTag);
                        Requeue(queue);
                    }

                    return;
                }

                if (!ring.TryPopChain(out DescriptorChain chain))
                {
                    break;
                }

                budget--;
                HandleChain(queue, ref chain);
            }

            TakeCompletions(queue);
            DeferredCalls.Defer(s_publish, queue);
        }
        while (ring.EnableNotification());

        queue.Starved = false;
    }

    /// <summary>
    /// Runs another pass over <paramref name="queue"/> later: on its I/O thread, after the work already
    /// there (FIFO), or without one (or once it stopped) on the thread pool. Not per request: only when a
    /// pass used up its budget with chains left.
    /// </summary>
    private static void Requeue(BlockQueue queue)
    {
        if (queue.IoThread is { } ioThread)
        {
            try
            {
                ioThread.Schedule(s_kick, queue);
                return;
            }
            catch (InvalidOperationException)
            {
                // The I/O thread has stopped: the pool runs the pass rather than lose it.
            }
        }

        ThreadPool.UnsafeQueueUserWorkItem(queue, preferLocal: false);
    }

    private void TakeCompletions(BlockQueue queue)
    {
        while (queue.TryTakeCompleted(out BlockIo io))
        {
            if (io.Generation != Generation || queue.Stopping)
            {
                Release(queue, io, dropped: true);
                continue;
            }

            BlockStatus status = io.Status;
            uint written = status == BlockStatus.Ok ? io.WrittenOnSuccess : 0;
            RecordCompletion(queue, io, status);

            Finish(queue, io.Head, io.StatusAddress, status, written);
            Release(queue, io, dropped: false);
        }
    }

    /// <summary>
    /// The bytes and the duration of a request the backend completed, by what the guest asked for
    /// (<see cref="BlockIo.RequestOperation"/>: a writethrough write completes as its flush).
    /// </summary>
    private static void RecordCompletion(BlockQueue queue, BlockIo io, BlockStatus status)
    {
        if (status == BlockStatus.Ok)
        {
            if (io.RequestOperation == BlockOperation.Read)
            {
                BlockMetrics.BytesRead.Add(io.RequestLength, queue.DeviceTag, queue.QueueTag);
            }
            else if (io.RequestOperation == BlockOperation.Write)
            {
                BlockMetrics.BytesWritten.Add(io.RequestLength, queue.DeviceTag, queue.QueueTag);
            }
        }

        if (io.SubmittedAt != 0)
        {
            BlockMetrics.Duration.Record(Stopwatch.GetElapsedTime(io.SubmittedAt).TotalSeconds, queue.DeviceTag, queue.QueueTag, BlockMetrics.Operation(io.RequestOperation));
        }
    }

    private static void Finish(BlockQueue queue, ushort head, nint statusAddress, BlockStatus status, uint written)
    {
        WriteStatus(statusAddress, status);
        queue.Queue.AddUsed(head, written + 1);
        BlockMetrics.Completed.Add(1, queue.DeviceTag, queue.QueueTag);
        if (status != BlockStatus.Ok)
        {
            BlockMetrics.Failed.Add(1, queue.DeviceTag, queue.QueueTag);
        }

        DeferredCalls.Defer(s_publish, queue);
    }

    private static unsafe void WriteStatus(nint address, BlockStatus status)
    {
        // SAFETY: `address` is the last byte of a device-writable descriptor buffer that guest memory
        // bounds-checked when the chain was walked; the mapping outlives the running device.
        *(byte*)address = (byte)status;
    }

    private void HandleChain(BlockQueue queue, ref DescriptorChain chain)
    {
        BlockIo io = queue.PeekFree();
        io.ClearSegments();
        int readable;
        int count;
        while (true)
        {
            if (!chain.TryGather(io.ChainBuffer, out readable, out count))
            {
                return; // the queue is broken and the device in DEVICE_NEEDS_RESET; nothing to complete
            }

            if (count <= io.ChainBuffer.Length)
            {
                break;
            }

            if (count > _maxChainSegments)
            {
                // Past seg_max + 2: refused before anything grows for it.
                RefuseTooLong(queue, ref chain, count);
                return;
            }

            // A chain longer than any before: grow the slot (once per new longest chain) and walk it again.
            io.EnsureChainCapacity(count, _maxChainSegments);
            chain.Reset();
        }

        ushort head = chain.HeadIndex;
        BlockRequestError error = _parser.Parse(io.ChainBuffer[..count], readable, DriverFeatures, io, out BlockRequest request);
        if (error == BlockRequestError.NoStatusByte)
        {
            // No writable byte: the chain cannot carry a status. Return it untouched, with used length 0 (docs/blk.md).
            Log.MalformedRequest(Logger, queue.Queue.Index, head, error);
            BlockMetrics.Malformed.Add(1, queue.DeviceTag, queue.QueueTag);
            queue.Queue.AddUsed(head, 0);
            DeferredCalls.Defer(s_publish, queue);
            return;
        }

        if (error != BlockRequestError.None)
        {
            BlockStatus status = error.ToStatus();
            Log.RequestRejected(Logger, queue.Queue.Index, head, error, status);
            Finish(queue, head, request.StatusAddress, status, 0);
            return;
        }

        switch (request.Type)
        {
            case BlockRequestType.In:
                Submit(queue, io, head, request.StatusAddress, BlockOperation.Read, request.Sector * SectorSize, (uint)request.DataLength);
                return;

            case BlockRequestType.Out:
                io.FlushAfterWrite = !IsWritebackActive;
                Submit(queue, io, head, request.StatusAddress, BlockOperation.Write, request.Sector * SectorSize, 0);
                return;

            case BlockRequestType.Flush:
                Submit(queue, io, head, request.StatusAddress, BlockOperation.Flush, 0, 0);
                return;

            case BlockRequestType.GetId:
                Finish(queue, head, request.StatusAddress, BlockStatus.Ok, WriteSerial(io));
                return;

            default: // Discard and WriteZeroes: the parser refuses every other type
                BlockOperation operation = request.Type == BlockRequestType.Discard ? BlockOperation.Discard : BlockOperation.WriteZeroes;
                Submit(queue, io, head, request.StatusAddress, operation, 0, 0);
                return;
        }
    }

    /// <summary>
    /// A chain of more buffers than the device advertises (seg_max + 2): IOERR in its status byte, the
    /// last byte of its last buffer (walked again to find it: nothing is stored for the chain), or,
    /// when that buffer is not writable, back with used length 0 as a malformed chain.
    /// </summary>
    private void RefuseTooLong(BlockQueue queue, ref DescriptorChain chain, int count)
    {
        ushort head = chain.HeadIndex;
        chain.Reset();
        nint status = 0;
        while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
        {
            if (buffer.Length > 0)
            {
                IoSegment segment = buffer.Segment;
                status = buffer.IsWriteOnly ? segment.Address + segment.Length - 1 : 0;
            }
        }

        if (queue.Queue.Error != QueueError.None)
        {
            return; // the second walk broke the queue (the guest rewrote the chain): DEVICE_NEEDS_RESET
        }

        Log.ChainTooLong(Logger, queue.Queue.Index, head, count, _maxChainSegments);
        if (status == 0)
        {
            BlockMetrics.Malformed.Add(1, queue.DeviceTag, queue.QueueTag);
            queue.Queue.AddUsed(head, 0);
            DeferredCalls.Defer(s_publish, queue);
            return;
        }

        Finish(queue, head, status, BlockRequestError.ChainTooLong.ToStatus(), 0);
    }

    /// <summary>GET_ID: the serial into the data buffers, at most 20 bytes; how many were written.</summary>
    private uint WriteSerial(BlockIo io)
    {
        var writer = new ChainWriter(io.DataSegments);
        return (uint)writer.Write(_serial, IdBytes);
    }

    private void Submit(BlockQueue queue, BlockIo io, ushort head, nint statusAddress, BlockOperation operation, ulong offset, uint writtenOnSuccess)
    {
        queue.TakeFree();
        io.Head = head;
        io.StatusAddress = statusAddress;
        io.Generation = Generation;
        io.Operation = operation;
        io.Offset = offset;
        io.WrittenOnSuccess = writtenOnSuccess;
        io.RequestOperation = operation;
        io.RequestLength = io.Length;
        io.SubmittedAt = BlockMetrics.Duration.Enabled ? Stopwatch.GetTimestamp() : 0;
        Interlocked.Increment(ref _inFlight);
        io.MarkSubmitted();
        SubmitToBackend(queue, io);
    }

    private static uint SegMax(BlockDeviceOptions options) => (uint)Math.Clamp(options.MaxSegments, 1, Math.Max(1, options.QueueSize - 2));

    private static ulong OfferedFeatures(IBlockBackend backend, BlockDeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.QueueCount, 1, nameof(options));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(options.QueueCount, ushort.MaxValue, nameof(options));
        if (options.QueueSize == 0 || (options.QueueSize & (options.QueueSize - 1)) != 0 || options.QueueSize > SplitVirtqueue.MaxQueueSize)
        {
            throw new ArgumentException("QueueSize must be a power of two up to 32768.", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxSegments, 1, nameof(options));
        if (options.BlockSize < SectorSize || (options.BlockSize & (options.BlockSize - 1)) != 0)
        {
            throw new ArgumentException("BlockSize must be a power of two of at least 512.", nameof(options));
        }

        ulong features = VirtioFeatures.CoreDefaults | BlockFeatures.SegMax | BlockFeatures.BlockSize
            | BlockFeatures.Flush | BlockFeatures.ConfigWce | BlockFeatures.Topology;
        if (options.OfferPackedRing)
        {
            features |= VirtioFeatures.RingPacked;
        }

        if (options.SizeMax != 0)
        {
            features |= BlockFeatures.SizeMax;
        }

        bool readOnly = options.ReadOnly || backend.IsReadOnly;
        if (readOnly)
        {
            features |= BlockFeatures.ReadOnly;
        }

        if (options.QueueCount > 1)
        {
            features |= BlockFeatures.MultiQueue;
        }

        if (!readOnly && options.EnableDiscard && (backend.Capabilities & BlockBackendCapabilities.Discard) != 0)
        {
            features |= BlockFeatures.Discard;
        }

        if (!readOnly && options.EnableWriteZeroes && (backend.Capabilities & BlockBackendCapabilities.WriteZeroes) != 0)
        {
            features |= BlockFeatures.WriteZeroes;
        }

        return features;
    }

    private static ushort[] QueueSizes(BlockDeviceOptions options)
    {
        var sizes = new ushort[Math.Max(1, options.QueueCount)];
        Array.Fill(sizes, options.QueueSize);
        return sizes;
    }
}
