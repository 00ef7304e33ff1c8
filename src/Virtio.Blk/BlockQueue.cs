using System;
using System.Collections.Generic;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Blk;

/// <summary>
/// The device-side state of one request queue: its pool of <see cref="BlockIo"/> slots (bounded
/// in-flight), the ring of backend completions waiting to be pushed to the used ring, and the lock
/// that serializes every access to the <see cref="SplitVirtqueue"/>.
/// </summary>
/// <remarks>
/// <see cref="Gate"/> is held while the queue is processed (notify path) and while completions are
/// pushed (I/O thread, or the backend's thread without one). <see cref="OnCompleted"/> runs on any
/// thread and takes only the short completion lock before handing over.
/// </remarks>
internal sealed class BlockQueue : IBlockIoOwner, IThreadPoolWorkItem
{
    private static readonly Action<object?> s_drainCompletions = static state => ((BlockQueue)state!).RunScheduledCompletions();

    private readonly Lock _completionLock = new();
    private readonly BlockIo[] _slots;
    private readonly BlockIo[] _free;
    private readonly BlockIo[] _completed;
    private int _freeCount;
    private int _completedHead;
    private int _completedCount;
    private int _drainScheduled;
    private bool _stopping;

    public BlockQueue(BlockDevice device, SplitVirtqueue queue, IoThread? ioThread, int slots)
    {
        Device = device;
        Queue = queue;
        IoThread = ioThread;
        _slots = new BlockIo[slots];
        _free = new BlockIo[slots];
        _completed = new BlockIo[slots];
        for (int i = 0; i < slots; i++)
        {
            _slots[i] = new BlockIo(this);
            _free[i] = _slots[i];
        }

        _freeCount = slots;
        DeviceTag = new(BlockMetrics.DeviceTagName, device.Name);
        QueueTag = new(BlockMetrics.QueueTagName, (int)queue.Index); // boxed once, here
    }

    /// <summary>The device's tag on this queue's measurements.</summary>
    public KeyValuePair<string, object?> DeviceTag { get; }

    /// <summary>This queue's tag on its measurements: its index, boxed once so recording boxes nothing.</summary>
    public KeyValuePair<string, object?> QueueTag { get; }

    /// <summary>Slots taken from the pool and not yet returned (any thread; a snapshot).</summary>
    public int InFlightSlots => _slots.Length - Volatile.Read(ref _freeCount);

    /// <summary>Backend completions waiting to be pushed to the used ring (any thread; a snapshot).</summary>
    public int CompletionsPending => Volatile.Read(ref _completedCount);

    public BlockDevice Device { get; }

    public SplitVirtqueue Queue { get; }

    public IoThread? IoThread { get; }

    /// <summary>Serializes queue processing and completion pushing for this queue.</summary>
    public object Gate { get; } = new();

    /// <summary>Set when the queue stopped popping because every slot was in flight (under <see cref="Gate"/>).</summary>
    public bool Starved { get; set; }

    /// <summary>Slots not in flight (under <see cref="Gate"/>).</summary>
    public int FreeSlots => _freeCount;

    /// <summary>Whether new completions are dropped instead of queued (a reset is running).</summary>
    public bool Stopping => Volatile.Read(ref _stopping);

    /// <summary>The next free slot, left in the pool (under <see cref="Gate"/>).</summary>
    public BlockIo PeekFree() => _free[_freeCount - 1];

    /// <summary>Takes the slot <see cref="PeekFree"/> returned (under <see cref="Gate"/>).</summary>
    public void TakeFree() => _free[--_freeCount] = null!;

    /// <summary>Returns a slot to the pool (under <see cref="Gate"/>).</summary>
    public void ReturnFree(BlockIo io)
    {
        io.MarkIdle();
        _free[_freeCount++] = io;
    }

    /// <inheritdoc />
    public void OnCompleted(BlockIo io)
    {
        if (io.FlushAfterWrite && io.Status == BlockStatus.Ok && io.Operation == BlockOperation.Write && !io.IsAbandoned)
        {
            // Writethrough: the write completes for the guest only once it is durable.
            io.FlushAfterWrite = false;
            io.Operation = BlockOperation.Flush;
            io.SetData(0, 0);
            io.MarkSubmitted();
            Device.SubmitToBackend(this, io);
            return;
        }

        bool drop;
        lock (_completionLock)
        {
            drop = _stopping || io.Generation != Device.Generation;
            if (!drop)
            {
                _completed[(_completedHead + _completedCount) % _completed.Length] = io;
                _completedCount++;
            }
        }

        if (drop)
        {
            lock (Gate)
            {
                Device.Release(this, io, dropped: true);
            }

            return;
        }

        if (Monitor.IsEntered(Gate))
        {
            // Completed inline while this thread processes the queue: the processing loop takes it.
            return;
        }

        if (IoThread is not null && IoThread.IsCurrentThread && DeferredCalls.IsInSection)
        {
            // A backend completing on the I/O thread inside its own section (an event-fd handler
            // draining a completion ring): push now; the section still batches the interrupt.
            lock (Gate)
            {
                Device.PushCompletions(this);
            }

            return;
        }

        if (IoThread is not null && Interlocked.Exchange(ref _drainScheduled, 1) == 0)
        {
            try
            {
                IoThread.Schedule(s_drainCompletions, this);
                return;
            }
            catch (InvalidOperationException)
            {
                // The I/O thread has stopped: complete here rather than lose the completion.
                Volatile.Write(ref _drainScheduled, 0);
            }
        }
        else if (IoThread is not null)
        {
            return; // a push is already scheduled and will see this completion
        }

        lock (Gate)
        {
            Device.PushCompletions(this);
        }
    }

    /// <summary>Takes the oldest queued completion (called under <see cref="Gate"/>).</summary>
    public bool TryTakeCompleted(out BlockIo io)
    {
        lock (_completionLock)
        {
            if (_completedCount == 0)
            {
                io = null!;
                return false;
            }

            io = _completed[_completedHead];
            _completed[_completedHead] = null!;
            _completedHead = (_completedHead + 1) % _completed.Length;
            _completedCount--;
            return true;
        }
    }

    /// <summary>Starts or ends a reset: while stopping, completions go straight back to the pool.</summary>
    public void SetStopping(bool stopping)
    {
        lock (_completionLock)
        {
            _stopping = stopping;
        }
    }

    /// <summary>
    /// Marks every request still at the backend abandoned (a reset stopped waiting for them), so a
    /// backend that has not started one yet completes it without touching guest memory. Any thread.
    /// </summary>
    /// <returns>How many were marked.</returns>
    public int AbandonInFlight()
    {
        int marked = 0;
        foreach (BlockIo io in _slots)
        {
            if (io.IsSubmitted)
            {
                io.Abandon();
                marked++;
            }
        }

        return marked;
    }

    /// <summary>A pass requeued on the thread pool (the queue has no I/O thread): the device processes the queue again.</summary>
    void IThreadPoolWorkItem.Execute() => Device.NotifyQueue(Queue.Index);

    private void RunScheduledCompletions()
    {
        Volatile.Write(ref _drainScheduled, 0);
        lock (Gate)
        {
            Device.PushCompletions(this);
        }
    }
}
