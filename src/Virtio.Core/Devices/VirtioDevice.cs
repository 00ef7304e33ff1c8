using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;

namespace Virtio.Core.Devices;

/// <summary>
/// The transport-independent part of a virtio device: feature negotiation, the device status
/// state machine (virtio 1.2 §2.1, §3.1), reset, virtqueues, configuration generation and
/// interrupts. A device model (block, network, ...) derives from it and processes its queues.
/// </summary>
/// <remarks>
/// <para>A transport (virtio-mmio, vhost-user, ...) calls the driver-facing members
/// (<see cref="WriteDriverFeatures"/>, <see cref="WriteStatus"/>, <see cref="ActivateQueue"/>,
/// <see cref="NotifyQueue"/>, config access) from one thread at a time, usually a vCPU thread.</para>
/// <para>Queue processing runs on whatever thread notifies the queue; the status bit
/// DEVICE_NEEDS_RESET and interrupts may be raised from that thread concurrently with the transport.</para>
/// <para>Lifetime: the embedder that created the device disposes it after the transport or server
/// that serves it has stopped (docs/architecture.md, "Ownership and shutdown order"), and before
/// the backends and I/O threads it uses. <see cref="Dispose()"/> resets the device (in-flight work
/// finished or dropped, as a driver reset does) and from then on ignores the driver.</para>
/// </remarks>
public abstract partial class VirtioDevice : IDisposable, IAsyncDisposable
{
    private readonly SplitVirtqueue[] _queues;
    private readonly object[] _processingLocks;
    private readonly bool[] _quiesced;
    private int _status;
    private int _configGeneration;
    private ulong _stagedDriverFeatures;
    private ulong _driverFeatures;
    private int _disposed;

    /// <summary>Creates the device with its queues.</summary>
    /// <param name="deviceId">The virtio device ID (1 network, 2 block, ...; virtio 1.2 §5).</param>
    /// <param name="deviceFeatures">Features offered; VIRTIO_F_VERSION_1 is always added.</param>
    /// <param name="memory">The guest memory the queues live in.</param>
    /// <param name="queueMaxSizes">One entry per queue: its largest size (a power of two up to 32768).</param>
    /// <param name="logger">Where device events are logged; none by default.</param>
    protected VirtioDevice(ushort deviceId, ulong deviceFeatures, IGuestMemory memory, ReadOnlySpan<ushort> queueMaxSizes, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (queueMaxSizes.Length is 0 or > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(queueMaxSizes), "A device has from 1 to 65535 virtqueues.");
        }

        DeviceId = deviceId;
        DeviceFeatures = deviceFeatures | VirtioFeatures.Version1;
        Memory = memory;
        Logger = logger ?? NullLogger.Instance;
        _queues = new SplitVirtqueue[queueMaxSizes.Length];
        _processingLocks = new object[queueMaxSizes.Length];
        _quiesced = new bool[queueMaxSizes.Length];
        for (int i = 0; i < _queues.Length; i++)
        {
            var queue = new SplitVirtqueue(memory, (ushort)i, queueMaxSizes[i], Logger);
            queue.Broken += OnQueueBroken;
            queue.MetricsOwner = this;
            _queues[i] = queue;
            _processingLocks[i] = new object();
        }

        CoreMetrics.Register(this);
    }

    /// <summary>
    /// Raised on the transport's thread at the start of <see cref="Reset()"/>, while the device is still
    /// live, so notification plumbing can stop and drain before the queues are cleared.
    /// </summary>
    public event Action<VirtioDevice>? Resetting;

    /// <summary>
    /// Raised on the transport's thread after the status changed, a queue was started or stopped,
    /// or a reset finished: whoever routes notifications re-evaluates them.
    /// </summary>
    public event Action<VirtioDevice>? StateChanged;

    /// <summary>The virtio device ID (virtio 1.2 §5).</summary>
    public ushort DeviceId { get; }

    /// <summary>The features the device offers, VIRTIO_F_VERSION_1 included.</summary>
    public ulong DeviceFeatures { get; }

    /// <summary>The features in force: those the driver asked for when FEATURES_OK was accepted; 0 before.</summary>
    public ulong DriverFeatures => Volatile.Read(ref _driverFeatures);

    /// <summary>The device status (virtio 1.2 §2.1). Readable from any thread.</summary>
    public DeviceStatus Status => (DeviceStatus)Volatile.Read(ref _status);

    /// <summary>The configuration generation (virtio 1.2 §2.5.1): changes whenever the device configuration changes.</summary>
    public uint ConfigGeneration => (uint)Volatile.Read(ref _configGeneration);

    /// <summary>The device's virtqueues.</summary>
    public IReadOnlyList<SplitVirtqueue> Queues => _queues;

    /// <summary>The guest memory the device works on.</summary>
    public IGuestMemory Memory { get; }

    /// <summary>
    /// Where used-buffer and configuration-change interrupts go. The transport sets it when the
    /// device is attached (virtio-mmio wraps the embedder's line to keep InterruptStatus right).
    /// </summary>
    public IGuestNotifier? GuestNotifier { get; set; }

    /// <summary>True when the device is live: DRIVER_OK set, DEVICE_NEEDS_RESET not, and not disposed.</summary>
    public bool IsLive => (Status & (DeviceStatus.DriverOk | DeviceStatus.DeviceNeedsReset)) == DeviceStatus.DriverOk && Volatile.Read(ref _disposed) == 0;

    /// <summary>Whether <see cref="Dispose()"/> or <see cref="DisposeAsync"/> has started. Any thread.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>The device's logger.</summary>
    protected ILogger Logger { get; }

    /// <summary>Whether every bit of <paramref name="feature"/> was negotiated.</summary>
    /// <param name="feature">A feature mask.</param>
    /// <returns>True when negotiated.</returns>
    public bool IsNegotiated(ulong feature) => (DriverFeatures & feature) == feature;

    /// <summary>
    /// Stages the features the driver asks for (the driver writes them before FEATURES_OK);
    /// ignored once FEATURES_OK is set. Called by a transport.
    /// </summary>
    /// <param name="features">The full 64-bit feature set the driver wants.</param>
    public void WriteDriverFeatures(ulong features)
    {
        if ((Status & DeviceStatus.FeaturesOk) == 0)
        {
            _stagedDriverFeatures = features;
        }
    }

    /// <summary>The features the driver has written so far (what FEATURES_OK will be checked against).</summary>
    public ulong StagedDriverFeatures => _stagedDriverFeatures;

    /// <summary>
    /// Handles a driver write of the status field (virtio 1.2 §3.1.1): 0 resets; FEATURES_OK is
    /// kept only when the staged features are a subset of the offered ones and include VERSION_1;
    /// DRIVER_OK without FEATURES_OK, and clearing bits, are ignored and logged. Called by a transport.
    /// </summary>
    /// <param name="value">The status byte the driver wrote.</param>
    public void WriteStatus(DeviceStatus value)
    {
        if (IsDisposed)
        {
            return; // a disposed device ignores the driver: it stays reset
        }

        if (value == DeviceStatus.None)
        {
            Reset();
            return;
        }

        DeviceStatus old = Status;
        DeviceStatus cleared = old & ~value & ~DeviceStatus.DeviceNeedsReset;
        if (cleared != 0)
        {
            // virtio 1.2 §2.1.2: the driver must not clear a status bit except by resetting.
            Log.StatusIgnored(Logger, DeviceId, (byte)value, "it clears bits without a reset");
            return;
        }

        DeviceStatus next = value | (old & DeviceStatus.DeviceNeedsReset);
        DeviceStatus added = next & ~old;
        if ((added & DeviceStatus.FeaturesOk) != 0 && !TryAcceptFeatures(_stagedDriverFeatures))
        {
            next &= ~DeviceStatus.FeaturesOk;
            added &= ~DeviceStatus.FeaturesOk;
        }

        if ((added & DeviceStatus.DriverOk) != 0 && (next & DeviceStatus.FeaturesOk) == 0)
        {
            Log.StatusIgnored(Logger, DeviceId, (byte)value, "DRIVER_OK without FEATURES_OK");
            next &= ~DeviceStatus.DriverOk;
            added &= ~DeviceStatus.DriverOk;
        }

        // Only the device sets DEVICE_NEEDS_RESET concurrently (from its processing thread): keep it.
        int current, desired;
        do
        {
            current = Volatile.Read(ref _status);
            desired = (int)next | (current & (int)DeviceStatus.DeviceNeedsReset);
        }
        while (Interlocked.CompareExchange(ref _status, desired, current) != current);

        if ((added & DeviceStatus.DriverOk) != 0)
        {
            OnDriverOk();
        }

        StateChanged?.Invoke(this);
    }

    private bool TryAcceptFeatures(ulong requested)
    {
        if ((requested & ~DeviceFeatures) != 0 || (requested & VirtioFeatures.Version1) == 0 || !AcceptFeatures(requested))
        {
            Log.FeaturesRefused(Logger, DeviceId, requested, DeviceFeatures);
            return false;
        }

        Volatile.Write(ref _driverFeatures, requested);
        return true;
    }

    /// <summary>
    /// Starts queue <paramref name="index"/> after the driver configured it (QueueReady = 1):
    /// applies the negotiated ring features and checks the rings. A queue whose rings are
    /// invalid stays down and puts the device in DEVICE_NEEDS_RESET. Called by a transport.
    /// </summary>
    /// <param name="index">The queue.</param>
    /// <returns>True when the queue is live.</returns>
    public bool ActivateQueue(ushort index)
    {
        if (index >= _queues.Length || IsDisposed)
        {
            return false;
        }

        SplitVirtqueue queue = _queues[index];

        // Not ready yet, so nothing processes it: the queue is served again from here on.
        Volatile.Write(ref _quiesced[index], false);
        queue.EventIdx = IsNegotiated(VirtioFeatures.EventIdx);
        queue.IndirectDescriptors = IsNegotiated(VirtioFeatures.IndirectDescriptors);
        queue.PackedRing = IsNegotiated(VirtioFeatures.RingPacked);
        if (!queue.TryActivate(out QueueError error))
        {
            Log.QueueActivationFailed(Logger, DeviceId, index, error);
            SetNeedsReset($"queue {index} could not be started ({error})");
            return false;
        }

        StateChanged?.Invoke(this);
        return true;
    }

    /// <summary>
    /// Stops queue <paramref name="index"/> (QueueReady = 0): quiesces it first (<see cref="QuiesceQueue"/>),
    /// so chains the device holds without work in progress go back to the driver. Called by a transport.
    /// </summary>
    /// <param name="index">The queue.</param>
    public void DeactivateQueue(ushort index)
    {
        if (index < _queues.Length)
        {
            QuiesceQueue(index);
            _queues[index].Deactivate();
            StateChanged?.Invoke(this);
        }
    }

    /// <summary>
    /// The transport is about to stop queue <paramref name="index"/>: from now until the queue is
    /// activated again (<see cref="ActivateQueue"/>) or the device resets, <see cref="NotifyQueue"/> and
    /// <see cref="PollQueue"/> do not process it, and the device gives back the chains it holds with no
    /// request in progress (<see cref="OnQueueQuiescing"/>), so a drain that waits for the in-flight
    /// count does not wait for them. The queue stays live: completions of requests in progress still
    /// reach the used ring. Idempotent; <see cref="DeactivateQueue"/> calls it. Called by a transport.
    /// </summary>
    /// <param name="index">The queue; out-of-range values are ignored.</param>
    public void QuiesceQueue(ushort index)
    {
        if (index >= _queues.Length)
        {
            return;
        }

        SplitVirtqueue queue = _queues[index];
        lock (_processingLocks[index])
        {
            if (_quiesced[index])
            {
                return;
            }

            Volatile.Write(ref _quiesced[index], true);
            if (!queue.IsReady)
            {
                return;
            }

            try
            {
                OnQueueQuiescing(queue);
            }
            catch (Exception exception)
            {
                FailQueue(queue, exception);
            }
        }
    }

    /// <summary>
    /// The driver notified queue <paramref name="index"/>: processes it on the calling thread (the
    /// vCPU thread on the synchronous path, the I/O thread on the event fd path) when the device is
    /// live and the queue ready, else does nothing. Calls for one queue are serialized. An exception
    /// out of <see cref="ProcessQueue"/> does not reach the caller: it is logged and breaks the queue
    /// with <see cref="QueueError.DeviceFailed"/> (DEVICE_NEEDS_RESET).
    /// </summary>
    /// <param name="index">The queue the driver kicked; out-of-range values are ignored.</param>
    public void NotifyQueue(ushort index)
    {
        if (index >= _queues.Length || !IsLive || !_queues[index].IsReady || Volatile.Read(ref _quiesced[index]))
        {
            return;
        }

        // One thread processes a queue at a time. Normally the host-notifier state machine already
        // guarantees it; the lock covers the moment a notifier is handed from the I/O thread back to
        // the synchronous path, when both may find work. Uncontended, it costs a few nanoseconds.
        SplitVirtqueue queue = _queues[index];
        lock (_processingLocks[index])
        {
            if (IsLive && queue.IsReady && !_quiesced[index])
            {
                try
                {
                    ProcessQueue(queue);
                }
                catch (Exception exception)
                {
                    // Device code must not throw on guest input; if it does anyway, this queue stops
                    // (DEVICE_NEEDS_RESET, one logged reason), not the caller's thread or the process.
                    FailQueue(queue, exception);
                }
            }
        }
    }

    /// <summary>
    /// Looks at queue <paramref name="index"/> without a kick, for an <see cref="Threading.IoThread"/>
    /// poller: when the device is live, the queue ready and the driver has made chains available that
    /// the device has not popped (avail->idx moved, one acquire load), processes it as
    /// <see cref="NotifyQueue"/> does, inside one <see cref="Threading.DeferredCalls"/> section (as a
    /// kick handler opens one), so the pass raises at most one interrupt. Cheap when there is nothing:
    /// call it as often as polling wants.
    /// </summary>
    /// <param name="index">The queue; out-of-range values are ignored.</param>
    /// <returns>True when the pass popped or returned a chain (polling found work).</returns>
    public bool PollQueue(ushort index)
    {
        if (index >= _queues.Length || !IsLive)
        {
            return false;
        }

        SplitVirtqueue queue = _queues[index];
        if (!queue.HasAvailable())
        {
            return false;
        }

        // A device that cannot take more (every slot in flight) leaves the chains where they are:
        // that is no progress, or polling would spin without sleeping until a completion.
        ushort nextAvail = queue.NextAvail;
        ushort nextUsed = queue.NextUsed;
        using (Threading.DeferredCalls.Section(Logger))
        {
            NotifyQueue(index);
        }

        return queue.NextAvail != nextAvail || queue.NextUsed != nextUsed;
    }

    /// <summary>
    /// Resets the device (virtio 1.2 §2.4): lets the device finish or drop in-flight work
    /// (<see cref="OnReset(TimeSpan?, CancellationToken)"/>, bounded by the device's own default: for a
    /// block device <c>BlockDeviceOptions.ResetTimeout</c>), then returns queues, features and status to
    /// their initial state. Called by a transport (the driver wrote status 0) or the embedder.
    /// </summary>
    public void Reset() => ResetCore(null, CancellationToken.None);

    /// <summary>
    /// Resets the device as <see cref="Reset()"/> does, waiting for in-flight work at most
    /// <paramref name="timeout"/> or until <paramref name="cancellationToken"/> is cancelled. Called by
    /// the embedder, from one thread at a time with the transport.
    /// </summary>
    /// <param name="timeout">The longest wait for in-flight work; <see cref="Timeout.InfiniteTimeSpan"/> waits for all of it.</param>
    /// <param name="cancellationToken">Ends the wait early; it never throws.</param>
    /// <returns>
    /// True when every in-flight request finished within the wait. False when the wait ran out or was
    /// cancelled: the reset still completes (queues, features and status are cleared, the device
    /// reads as reset), the requests still at the backend are abandoned (a backend that has not
    /// started one skips its transfer; one it had started may still fill its buffer) and their late
    /// completions are dropped: nothing is written to the used ring or a status byte after this returns.
    /// </returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="timeout"/> is negative and not infinite.</exception>
    public bool Reset(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), "Give a non-negative timeout or Timeout.InfiniteTimeSpan.");
        }

        return ResetCore(timeout, cancellationToken);
    }

    private bool ResetCore(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        Resetting?.Invoke(this);
        bool drained = OnReset(timeout, cancellationToken);
        foreach (SplitVirtqueue queue in _queues)
        {
            queue.Reset();
        }

        for (int i = 0; i < _quiesced.Length; i++)
        {
            Volatile.Write(ref _quiesced[i], false);
        }

        _stagedDriverFeatures = 0;
        Volatile.Write(ref _driverFeatures, 0);
        Volatile.Write(ref _status, 0);
        StateChanged?.Invoke(this);
        return drained;
    }

    /// <summary>
    /// Stops serving the driver: resets the device (<see cref="Reset()"/>: in-flight requests
    /// finished, or abandoned and their late completions dropped once the device's reset wait runs
    /// out) and from then on ignores it: status writes, queue starts and notifications do nothing,
    /// and no used element or status byte is written any more. Call it after the transport or server stopped
    /// forwarding to the device and before disposing the backends and I/O threads the device uses.
    /// Idempotent: a second call, or a call racing the first, returns at once without throwing.
    /// Not on one of the device's I/O threads when the device waits there (a network device does).
    /// </summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// <see cref="Dispose()"/> without blocking the caller's thread: the reset's wait for in-flight
    /// requests (up to the device's reset timeout) runs on a thread-pool thread. Idempotent.
    /// </summary>
    /// <returns>Completes when the device is disposed.</returns>
    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        if (IsDisposed)
        {
            return ValueTask.CompletedTask;
        }

        return new ValueTask(Task.Factory.StartNew(static state => ((VirtioDevice)state!).Dispose(), this, CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskScheduler.Default));
    }

    /// <summary>
    /// Releases what the device holds. The base resets the device (its queues stop; in-flight work
    /// is finished or dropped through <see cref="OnReset(TimeSpan?, CancellationToken)"/>); a device that
    /// overrides it calls the base first, then lets go of its own resources (stops watching backends).
    /// Called once, by <see cref="Dispose()"/>, after <see cref="IsDisposed"/> became true.
    /// </summary>
    /// <param name="disposing">True from <see cref="Dispose()"/>; the devices here have no finalizer.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing)
        {
            // IsDisposed is set: no pass starts from here on (NotifyQueue checks it under the lock).
            // Wait for one already running, so the reset does not clear a queue under it.
            foreach (object processing in _processingLocks)
            {
                lock (processing)
                {
                }
            }

            ResetCore(null, CancellationToken.None);
        }
    }

    /// <summary>Reads <c>data.Length</c> bytes of the device configuration space at <paramref name="offset"/>.</summary>
    /// <param name="offset">Offset into the device-specific configuration (virtio 1.2 §5.x.4).</param>
    /// <param name="data">Receives the bytes; bytes past the configuration's end read as zero.</param>
    public abstract void ReadConfig(int offset, Span<byte> data);

    /// <summary>Writes the device configuration space; by default every write is ignored (read-only configuration).</summary>
    /// <param name="offset">Offset into the device-specific configuration.</param>
    /// <param name="data">The bytes the driver wrote.</param>
    public virtual void WriteConfig(int offset, ReadOnlySpan<byte> data)
    {
    }

    /// <summary>Processes the available buffers of <paramref name="queue"/>. Must not throw on guest input.</summary>
    /// <param name="queue">A live queue of this device.</param>
    protected abstract void ProcessQueue(SplitVirtqueue queue);

    /// <summary>
    /// Called by <see cref="QuiesceQueue"/> under the queue's processing lock, while <paramref name="queue"/>
    /// is still live and no pass over it runs: the device returns the chains it popped and holds with no
    /// request in progress (a receive buffer waiting for a frame) and publishes them, and forgets them.
    /// Requests in progress are left to complete. By default nothing is held.
    /// </summary>
    /// <param name="queue">The queue being stopped.</param>
    protected virtual void OnQueueQuiescing(SplitVirtqueue queue)
    {
    }

    /// <summary>Called after the driver set DRIVER_OK: the device may start (threads, backends, notifiers).</summary>
    protected virtual void OnDriverOk()
    {
    }

    /// <summary>
    /// Called at the start of a reset, before the queues are cleared: the device finishes or
    /// cancels in-flight requests here, so nothing is written to guest memory after the reset.
    /// Called by the default <see cref="OnReset(TimeSpan?, CancellationToken)"/>.
    /// </summary>
    protected virtual void OnReset()
    {
    }

    /// <summary>
    /// Called at the start of a reset, before the queues are cleared, on the resetting thread: the
    /// device finishes or cancels in-flight requests, waiting for them at most
    /// <paramref name="timeout"/> (its own default when null) and no longer than until
    /// <paramref name="cancellationToken"/> is cancelled. When the wait ends early it still stops
    /// them from writing to guest memory later. By default calls <see cref="OnReset()"/> and returns true.
    /// </summary>
    /// <param name="timeout">The caller's bound on the wait, or null for the device's default.</param>
    /// <param name="cancellationToken">Ends the wait early; the override must not throw for it.</param>
    /// <returns>True when no in-flight work was left behind.</returns>
    protected virtual bool OnReset(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        OnReset();
        return true;
    }

    /// <summary>Device-specific check of the features the driver asked for; refuse to keep FEATURES_OK clear.</summary>
    /// <param name="features">The requested features, already a subset of the offered ones.</param>
    /// <returns>True to accept.</returns>
    protected virtual bool AcceptFeatures(ulong features) => true;

    /// <summary>
    /// Publishes the used elements added to <paramref name="queue"/> and interrupts the driver
    /// when it asked for it (notification suppression and EVENT_IDX applied).
    /// </summary>
    /// <param name="queue">The queue whose completions to publish.</param>
    /// <returns>True when an interrupt was raised.</returns>
    protected bool PublishUsedAndNotify(SplitVirtqueue queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        if (!queue.PublishUsed())
        {
            return false;
        }

        GuestNotifier?.Notify(InterruptReason.UsedBuffer, queue.Index);
        return true;
    }

    /// <summary>
    /// Breaks <paramref name="queue"/> because device code threw while working on it: logs the
    /// exception (event 1105) and stops the queue with <see cref="QueueError.DeviceFailed"/>, which
    /// puts the device in DEVICE_NEEDS_RESET. <see cref="NotifyQueue"/> does this for
    /// <see cref="ProcessQueue"/>; a device calls it from every other path that runs its code on
    /// a queue (a completion resumed on a backend's thread, say), so that an exception costs the
    /// guest that queue, not the thread or the process.
    /// </summary>
    /// <param name="queue">The queue the code was working on.</param>
    /// <param name="exception">What it threw.</param>
    protected void FailQueue(SplitVirtqueue queue, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(queue);
        Log.ProcessingThrew(Logger, DeviceId, queue.Index, exception);
        queue.MarkBroken(QueueError.DeviceFailed);
    }

    /// <summary>The device configuration changed: moves the generation and sends a configuration-change interrupt.</summary>
    protected void NotifyConfigChanged()
    {
        Interlocked.Increment(ref _configGeneration);
        GuestNotifier?.Notify(InterruptReason.ConfigurationChange, 0);
    }

    /// <summary>
    /// Puts the device in DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) with a configuration-change
    /// interrupt and one logged reason; further calls until reset do nothing.
    /// </summary>
    /// <param name="reason">What went wrong, for the log.</param>
    protected void SetNeedsReset(string reason)
    {
        int before = Interlocked.Or(ref _status, (int)DeviceStatus.DeviceNeedsReset);
        if ((before & (int)DeviceStatus.DeviceNeedsReset) != 0)
        {
            return;
        }

        CoreMetrics.NeedsReset.Add(1, MetricsDeviceTag);
        Log.NeedsReset(Logger, DeviceId, reason);
        GuestNotifier?.Notify(InterruptReason.ConfigurationChange, 0);
    }

    private void OnQueueBroken(SplitVirtqueue queue, QueueError error) =>
        SetNeedsReset($"virtqueue {queue.Index} is malformed ({error})");

    /// <summary>Copies configuration bytes for <see cref="ReadConfig"/>: in-range bytes from <paramref name="config"/>, zero beyond.</summary>
    /// <param name="config">The device's configuration structure, little-endian.</param>
    /// <param name="offset">The driver's offset.</param>
    /// <param name="data">Receives the bytes.</param>
    protected static void CopyConfig(ReadOnlySpan<byte> config, int offset, Span<byte> data)
    {
        data.Clear();
        if (offset < 0 || offset >= config.Length)
        {
            return;
        }

        ReadOnlySpan<byte> available = config[offset..];
        available[..Math.Min(available.Length, data.Length)].CopyTo(data);
    }
}
