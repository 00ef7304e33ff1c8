using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Core.Memory;

namespace Virtio.Core.Queues;

/// <summary>
/// The device side of a virtqueue: split (virtio 1.2 §2.7), or packed (§2.8) when
/// <see cref="PackedRing"/> is set before activation. Pops descriptor chains the driver made
/// available, publishes used buffers, and decides when the driver wants an interrupt; a device
/// sees the same calls whichever ring the driver negotiated. It walks rings only: it knows no
/// device and no hypervisor.
/// </summary>
/// <remarks>
/// <para>One thread at a time processes a queue (its I/O thread, or the vCPU thread on the
/// synchronous path); configuration (addresses, size, activation, reset) happens while the queue
/// is not being processed. Nothing here throws on guest input: a malformed ring stops the queue,
/// sets <see cref="Error"/> and raises <see cref="Broken"/> once.</para>
/// <para>All ring bytes are read through <see cref="IGuestMemory"/> spans; the guest can change
/// them at any time, so every value read is validated before use and read only once.</para>
/// </remarks>
public sealed partial class SplitVirtqueue
{
    /// <summary>The largest queue size a split virtqueue can have (virtio 1.2 §2.7).</summary>
    public const ushort MaxQueueSize = 32768;

    internal const int DescriptorSize = SplitRingLayout.DescriptorSize;
    private const ushort AvailFlagNoInterrupt = 1; // VIRTQ_AVAIL_F_NO_INTERRUPT
    private const ushort UsedFlagNoNotify = 1;     // VIRTQ_USED_F_NO_NOTIFY

    private readonly IGuestMemory _memory;
    private readonly ILogger _logger;
    private const byte HeadFree = 0;
    private const byte HeadInFlight = 1;
    private const byte HeadStale = 2; // in flight since before the last TryRestoreState: reserved, never completed

    private readonly byte[] _heads; // HeadFree, HeadInFlight or HeadStale per head: one load decides AddUsed
    private readonly uint[] _writableCapacity;
    private ushort[]? _resubmit;
    private int _resubmitNext;
    private int _resubmitCount;
    private IInFlightTracker? _inFlightTracker;
    private IChainPinning? _pinning;
    private IDirtyLog? _dirtyLog;

    private ushort _size;
    private ushort _nextAvail;
    private ushort _nextUsed;
    private ushort _lastNotifyDecisionUsed;
    private ushort _inFlightCount;
    private ushort _staleCount;
    private bool _staleLogged;
    private bool _ready;
    private bool _notificationsDisabled;
    private QueueError _error;

    /// <summary>Creates a queue of at most <paramref name="maxSize"/> entries over <paramref name="memory"/>.</summary>
    /// <param name="memory">The guest memory the rings and buffers live in.</param>
    /// <param name="index">The queue's index within its device.</param>
    /// <param name="maxSize">The largest size the driver may choose (QueueNumMax): a power of two up to 32768.</param>
    /// <param name="logger">Where queue errors are logged; none by default.</param>
    public SplitVirtqueue(IGuestMemory memory, ushort index, ushort maxSize, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (maxSize == 0 || maxSize > MaxQueueSize || (maxSize & (maxSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxSize), maxSize, "A split virtqueue's size is a power of two from 1 to 32768.");
        }

        _memory = memory;
        _logger = logger ?? NullLogger.Instance;
        Index = index;
        MaxSize = maxSize;
        _heads = new byte[maxSize];
        _writableCapacity = new uint[maxSize];
        _size = maxSize;
    }

    /// <summary>
    /// Raised once, on the processing thread, when the queue is found malformed. The device
    /// answers with DEVICE_NEEDS_RESET and a configuration-change interrupt.
    /// </summary>
    public event Action<SplitVirtqueue, QueueError>? Broken;

    /// <summary>The queue's index within its device.</summary>
    public ushort Index { get; }

    /// <summary>The largest size the driver may choose (QueueNumMax).</summary>
    public ushort MaxSize { get; }

    /// <summary>The guest memory the queue lives in.</summary>
    public IGuestMemory Memory => _memory;

    /// <summary>
    /// The size the driver chose (QueueNum); checked when the queue is activated. Set only while not
    /// ready. A value above <see cref="MaxSize"/> is stored as 0, which activation refuses: whatever
    /// a driver writes, and whenever it writes it, the size the queue indexes by never exceeds its
    /// per-head arrays.
    /// </summary>
    public ushort Size
    {
        get => _size;
        set => _size = value <= MaxSize ? value : (ushort)0;
    }

    /// <summary>The descriptor table's guest address (QueueDesc). Set only while not ready.</summary>
    public GuestAddress DescriptorTable { get; set; }

    /// <summary>The available ring's guest address (QueueDriver, the driver area). Set only while not ready.</summary>
    public GuestAddress AvailRing { get; set; }

    /// <summary>The used ring's guest address (QueueDevice, the device area). Set only while not ready.</summary>
    public GuestAddress UsedRing { get; set; }

    /// <summary>Whether VIRTIO_F_EVENT_IDX was negotiated: avail_event and used_event replace the ring flags.</summary>
    public bool EventIdx { get; set; }

    /// <summary>Whether VIRTIO_F_INDIRECT_DESC was negotiated: descriptors may point at indirect tables.</summary>
    public bool IndirectDescriptors { get; set; }

    /// <summary>True once <see cref="TryActivate"/> succeeded and until reset or deactivation.</summary>
    public bool IsReady => _ready;

    /// <summary>Why the queue stopped, or <see cref="QueueError.None"/> while it is healthy.</summary>
    public QueueError Error => _error;

    /// <summary>The next available-ring index the device will read.</summary>
    public ushort NextAvail => _nextAvail;

    /// <summary>The next used-ring index the device will write.</summary>
    public ushort NextUsed => _nextUsed;

    /// <summary>
    /// How many popped chains the device has not yet returned. A chain returned to a broken or
    /// stopped queue leaves the count too (nothing reaches the used ring), so the count drains
    /// whatever state the queue is in; chains kept as stale by <see cref="TryRestoreState"/> are
    /// counted by <see cref="StaleCount"/> instead.
    /// </summary>
    public int InFlightCount => _inFlightCount;

    /// <summary>
    /// How many chains popped before the last <see cref="TryRestoreState"/> the device has not
    /// returned yet. Their heads stay reserved (the driver never got them back, so making one
    /// available again breaks the queue with <see cref="QueueError.HeadAlreadyInFlight"/>), and
    /// their late <see cref="AddUsed"/> is dropped, counted and logged once: a completion from
    /// before a restart never completes a head of the restored ring.
    /// </summary>
    public int StaleCount => _staleCount;

    /// <summary>
    /// The used index last published to the driver (the value of used->idx we stored). It lags
    /// <see cref="NextUsed"/> while returned chains wait for <see cref="PublishUsed"/>: a chain that
    /// left <see cref="InFlightCount"/> is visible to the driver only once the two are equal.
    /// </summary>
    public ushort PublishedUsed => _lastNotifyDecisionUsed;

    /// <summary>
    /// Told when chains are taken, used and published (see <see cref="IInFlightTracker"/>); none by
    /// default, and then the queue makes no call. Set only while no thread processes the queue;
    /// kept across <see cref="Reset"/> and <see cref="TryRestoreState"/>.
    /// </summary>
    public IInFlightTracker? InFlightTracker
    {
        get => _inFlightTracker;
        set => _inFlightTracker = value;
    }

    /// <summary>
    /// Told when the device takes a chain and when it is done with the chain's buffers, in every
    /// outcome (see <see cref="IChainPinning"/>); none by default. Set only while no thread
    /// processes the queue; kept across <see cref="Reset"/> and <see cref="TryRestoreState"/>.
    /// </summary>
    public IChainPinning? Pinning
    {
        get => _pinning;
        set => _pinning = value;
    }

    /// <summary>
    /// Told of every guest-memory write the device makes through the queue (see <see cref="IDirtyLog"/>);
    /// none by default, and then logging costs one predictable branch per write site. Set only while no
    /// thread processes the queue, before it is activated (activation writes the ring); kept across
    /// <see cref="Reset"/> and <see cref="TryRestoreState"/>.
    /// </summary>
    public IDirtyLog? DirtyLog
    {
        get => _dirtyLog;
        set => _dirtyLog = value;
    }

    /// <summary>Whether <paramref name="head"/> is a stale chain (see <see cref="StaleCount"/>). Any value is accepted.</summary>
    /// <param name="head">A head index.</param>
    /// <returns>True while the chain popped at <paramref name="head"/> before the last restore is not returned.</returns>
    public bool IsStale(ushort head) => head < MaxSize && _heads[head] == HeadStale;

    /// <summary>How many chains handed to <see cref="TryResubmit"/> the device has not popped yet.</summary>
    public int ResubmitPending => _resubmitCount - _resubmitNext;

    /// <summary>
    /// Checks the size and ring addresses (virtio 1.2 §2.7: alignment 16 / 2 / 4, every byte in
    /// guest memory) and makes the queue live. On failure the queue stays down and
    /// <paramref name="error"/> says why; nothing is raised (the caller decides).
    /// </summary>
    /// <param name="error">Why the queue could not be activated.</param>
    /// <returns>True when the queue is live.</returns>
    public bool TryActivate(out QueueError error)
    {
        ushort size = _size;
        if (PackedRing)
        {
            return TryActivatePacked(size, out error);
        }

        _packed = false;
        if (size == 0 || size > MaxSize || (size & (size - 1)) != 0)
        {
            error = QueueError.InvalidQueueSize;
            return false;
        }

        var layout = new SplitRingLayout(size);
        if (!RingFits(DescriptorTable, layout.DescriptorTableSize, SplitRingLayout.DescriptorTableAlignment)
            || !RingFits(AvailRing, layout.AvailRingSize, SplitRingLayout.AvailRingAlignment)
            || !RingFits(UsedRing, layout.UsedRingSize, SplitRingLayout.UsedRingAlignment))
        {
            error = QueueError.InvalidRingAddress;
            return false;
        }

        _error = QueueError.None;
        _lastNotifyDecisionUsed = _nextUsed;
        _ready = true;

        // A queue starts with driver notifications enabled. With EVENT_IDX that means avail_event
        // names the next index we will read: a queue restored at a non-zero index would otherwise
        // leave a stale avail_event and the driver would skip the kick for its first buffer.
        _notificationsDisabled = true;
        EnableNotification();
        error = _error;
        return _ready && _error == QueueError.None;
    }

    private bool RingFits(GuestAddress address, int length, uint alignment) =>
        address.Value % alignment == 0 && _memory.TryGetSpan(address, length, out _);

    /// <summary>
    /// Stops the queue without forgetting its configuration or indices (QueueReady written 0,
    /// or the device stopping for a hand-over). Chains in flight stay in flight.
    /// </summary>
    public void Deactivate() => _ready = false;

    /// <summary>
    /// Returns the queue to its initial state (device reset, virtio 1.2 §2.4): not ready, size
    /// <see cref="MaxSize"/>, addresses 0, indices 0, no error, nothing in flight.
    /// The device must have finished or dropped its in-flight work first.
    /// </summary>
    public void Reset() => ResetState(keepInFlightAsStale: false);

    private void ResetState(bool keepInFlightAsStale)
    {
        _ready = false;
        _size = MaxSize;
        DescriptorTable = default;
        AvailRing = default;
        UsedRing = default;
        EventIdx = false;
        IndirectDescriptors = false;
        PackedRing = false;
        ResetPackedState();
        _nextAvail = 0;
        _seenAvailIdx = 0;
        _nextUsed = 0;
        _lastNotifyDecisionUsed = 0;
        _notificationsDisabled = false;
        _error = QueueError.None;
        if (keepInFlightAsStale)
        {
            // A chain the device still holds was popped from the ring before this restore: its
            // head stays reserved and its completion will be dropped.
            int stale = 0;
            for (int head = 0; head < _heads.Length; head++)
            {
                if (_heads[head] != HeadFree)
                {
                    _heads[head] = HeadStale;
                    stale++;
                }
            }

            _staleCount = (ushort)stale;
        }
        else
        {
            Array.Clear(_heads);
            _staleCount = 0;
            _staleLogged = false;
        }

        Array.Clear(_writableCapacity);
        _inFlightCount = 0;
        _resubmitNext = 0;
        _resubmitCount = 0;
    }

    /// <summary>Whether the driver has made buffers available that the device has not popped.</summary>
    /// <returns>False also when the queue is not live or the ring is malformed (which breaks it).</returns>
    public bool HasAvailable() =>
        _ready && _error == QueueError.None && (_packed
            ? PackedHeadAvailable()
            : _resubmitNext != _resubmitCount || (TryReadAvailIdx(out ushort availIdx) && availIdx != _nextAvail));

    /// <summary>
    /// Hands the queue chains to deliver again before any new available-ring entry: chains an earlier
    /// device took and never returned (a vhost-user back end restarted with INFLIGHT_SHMFD). They are
    /// popped in the order given, validated like any head on the available ring, and do not move
    /// <see cref="NextAvail"/>: restore the queue with its next available index past them. Call once
    /// the queue is live and before any thread processes it.
    /// </summary>
    /// <param name="heads">Head indices, oldest first. Untrusted: a list longer than <see cref="Size"/>,
    /// a head not below it, or one given twice or already in flight breaks the queue
    /// (<see cref="Broken"/> is raised on the calling thread) and nothing is resubmitted.</param>
    /// <param name="error">Why the list was refused.</param>
    /// <returns>True when every head will be delivered; false when the queue broke or is not live.</returns>
    public bool TryResubmit(ReadOnlySpan<ushort> heads, out QueueError error)
    {
        error = _error;
        if (!_ready || _error != QueueError.None)
        {
            return false;
        }

        ushort size = _size;

        // A packed ring's chains are found by ring position, not by head: the inflight format that
        // carries them (descriptor copies) is not implemented, so nothing can be resubmitted.
        error = heads.Length > size || _packed ? QueueError.InvalidResubmission : ValidateResubmission(heads, size);
        if (error != QueueError.None)
        {
            MarkBroken(error);
            return false;
        }

        _resubmit ??= new ushort[MaxSize];
        heads.CopyTo(_resubmit.AsSpan(_resubmitCount));
        _resubmitCount += heads.Length;
        return true;
    }

    private QueueError ValidateResubmission(ReadOnlySpan<ushort> heads, ushort size)
    {
        // The same rules as a head on the available ring; duplicates are found by marking each head
        // in flight for the moment of the check (no allocation), then unmarking the ones marked here.
        QueueError error = QueueError.None;
        int marked = 0;
        for (; marked < heads.Length; marked++)
        {
            ushort head = heads[marked];
            if (head >= size)
            {
                error = QueueError.InvalidHeadIndex;
                break;
            }

            if (_heads[head] != HeadFree)
            {
                error = QueueError.HeadAlreadyInFlight;
                break;
            }

            _heads[head] = HeadInFlight;
        }

        for (int i = 0; i < marked; i++)
        {
            _heads[heads[i]] = HeadFree;
        }

        if (error == QueueError.None && _resubmitCount - _resubmitNext + heads.Length > size)
        {
            error = QueueError.InvalidResubmission;
        }

        return error;
    }

    /// <summary>
    /// Pops the next available descriptor chain. Returns false when there is none, when the queue
    /// is not live, or when the ring is malformed (the queue then breaks: see <see cref="Broken"/>).
    /// </summary>
    /// <param name="chain">A walker over the chain; walk it with <see cref="DescriptorChain.TryMoveNext"/>.</param>
    /// <returns>True when a chain was popped; it must later be returned with <see cref="AddUsed"/>.</returns>
    public bool TryPopChain(out DescriptorChain chain)
    {
        chain = default;
        if (!_ready || _error != QueueError.None)
        {
            return false;
        }

        // Read once: a transport thread may store another size meanwhile (a guest racing QueueNum
        // against its own QueueReady); every stored size is at most MaxSize, and this call uses one.
        ushort size = _size;
        if (_packed)
        {
            return TryPopPackedChain(size, out chain);
        }

        ushort head;
        bool resubmitted = _resubmitNext != _resubmitCount;
        if (resubmitted)
        {
            head = _resubmit![_resubmitNext];
        }
        else if (!TryReadAvailHead(size, out head))
        {
            return false;
        }

        if (head >= size)
        {
            MarkBroken(QueueError.InvalidHeadIndex);
            return false;
        }

        if (_heads[head] != HeadFree)
        {
            MarkBroken(QueueError.HeadAlreadyInFlight);
            return false;
        }

        _heads[head] = HeadInFlight;
        _writableCapacity[head] = 0;
        _inFlightCount++;
        if (resubmitted)
        {
            _resubmitNext++;
        }
        else
        {
            _nextAvail++;
        }

        // The queue owns the head before the tracker and the pinning hear of it, and all of them
        // before the device does (the pinning holds the memory the chain's buffers are read from).
        _inFlightTracker?.ChainTaken(head);
        _pinning?.ChainTaken(head);
        chain = new DescriptorChain(this, head);
        return true;
    }

    // Inlined into TryPopChain by hand: once the pop grew (the pinning calls), the JIT's inline
    // budget stopped here, and every pop paid a call plus an interface call for each ring read
    // that dynamic PGO otherwise devirtualizes (seen in DOTNET_JitDisasm of the queue benchmark).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryReadAvailHead(ushort size, out ushort head)
    {
        head = 0;
        if (!TryReadAvailIdx(out ushort availIdx))
        {
            return false;
        }

        _seenAvailIdx = availIdx; // for the virtio.queue.available gauge
        ushort pending = (ushort)(availIdx - _nextAvail);
        if (pending == 0)
        {
            return false;
        }

        // virtio 1.2 §2.7.13.3: the driver never has more than the queue size outstanding; an idx
        // further ahead is garbage and would make the device pop stale entries forever.
        if (pending > size)
        {
            MarkBroken(QueueError.AvailIndexTooFar);
            return false;
        }

        // The acquire load of avail->idx above orders this read of the ring entry after it
        // (virtio 1.2 §2.7.13.2: the driver writes the entry before it moves idx).
        GuestAddress entry = new(AvailRing.Value + (uint)new SplitRingLayout(size).AvailEntryOffset(_nextAvail));
        if (!_memory.TryGetSpan(entry, 2, out Span<byte> slot))
        {
            MarkBroken(QueueError.InvalidRingAddress);
            return false;
        }

        head = BinaryPrimitives.ReadUInt16LittleEndian(slot);
        return true;
    }

    /// <summary>
    /// Puts a popped chain on the used ring with the number of bytes the device wrote into its
    /// writable buffers. The driver sees it only after <see cref="PublishUsed"/>, so a batch of
    /// completions is published with one index update.
    /// </summary>
    /// <param name="headIndex">The chain's <see cref="DescriptorChain.HeadIndex"/>.</param>
    /// <param name="writtenLength">Bytes written; capped at the writable bytes of the buffers walked.</param>
    /// <returns>
    /// False (and nothing written) when the queue is not live or broken, the head is not in flight,
    /// or the chain is stale (popped before the last <see cref="TryRestoreState"/>). A head that was
    /// in flight is returned all the same: it leaves <see cref="InFlightCount"/> (or
    /// <see cref="StaleCount"/>) and <see cref="Pinning"/> hears of it.
    /// </returns>
    public bool AddUsed(ushort headIndex, uint writtenLength)
    {
        // The one check of the common case: a head of this ring in flight, on a live queue. The size
        // is read once (see TryPopChain).
        ushort size = _size;
        if (headIndex < size && _heads[headIndex] == HeadInFlight && _ready && _error == QueueError.None)
        {
            if (_packed)
            {
                return AddUsedPacked(headIndex, writtenLength, size) || AddUsedOtherwise(headIndex, size);
            }

            GuestAddress element = new(UsedRing.Value + (uint)new SplitRingLayout(size).UsedElementOffset(_nextUsed));
            if (_memory.TryGetSpan(element, SplitRingLayout.UsedElementSize, out Span<byte> slot))
            {
                uint length = Math.Min(writtenLength, _writableCapacity[headIndex]);
                BinaryPrimitives.WriteUInt32LittleEndian(slot, headIndex);
                BinaryPrimitives.WriteUInt32LittleEndian(slot[4..], length);
                if (_dirtyLog is not null)
                {
                    LogUsed(headIndex, size);
                }

                _heads[headIndex] = HeadFree;
                _inFlightCount--;
                _nextUsed++;
                _inFlightTracker?.ChainUsed(headIndex);
                _pinning?.ChainReleased(headIndex);
                return true;
            }
        }

        return AddUsedOtherwise(headIndex, size);
    }

    /// <summary>Logging: the chain's buffers, then the used element just written (while the head is still pinned).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void LogUsed(ushort headIndex, ushort size)
    {
        _dirtyLog!.ChainUsed(headIndex);
        _dirtyLog.UsedAreaWritten(new SplitRingLayout(size).UsedElementOffset(_nextUsed), SplitRingLayout.UsedElementSize);
    }

    /// <summary>Every outcome of <see cref="AddUsed"/> but a used element written: stale, unknown, stopped, broken, unwritable.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool AddUsedOtherwise(ushort headIndex, ushort size)
    {
        if (headIndex < MaxSize && _heads[headIndex] == HeadStale)
        {
            // Popped from the ring before a restore: that head belongs to the driver's old ring state.
            _staleCount--;
            DropReturned(headIndex);
            return false;
        }

        // In flight is decided against the per-head arrays, not the current size: a driver that
        // shrank the queue while it was stopped must not strand a chain popped before.
        if (headIndex >= MaxSize || _heads[headIndex] != HeadInFlight)
        {
            if (_ready && _error == QueueError.None)
            {
                Log.UsedHeadNotInFlight(_logger, Index, headIndex);
            }

            return false;
        }

        if (!_ready || _error != QueueError.None || headIndex >= size)
        {
            // Returned to a stopped or broken queue, or to a ring resized since the pop: nothing
            // can reach the used ring, but the device is done with the buffers. A stopped queue's
            // completion is a stale one.
            _inFlightCount--;
            if (_error == QueueError.None)
            {
                DropReturned(headIndex);
            }
            else
            {
                ReleaseHead(headIndex);
            }

            return false;
        }

        // The used element is outside the memory (AddUsed could not write it).
        MarkBroken(QueueError.InvalidRingAddress);
        _inFlightCount--;
        ReleaseHead(headIndex);
        return false;
    }

    /// <summary>
    /// The walk of the chain at <paramref name="head"/> failed and broke the queue: the queue takes
    /// the chain back itself (a device does not return a chain it could not walk), so it does not
    /// stay in flight for ever.
    /// </summary>
    internal void AbandonChain(ushort head)
    {
        if (head < MaxSize && _heads[head] == HeadInFlight)
        {
            _inFlightCount--;
            ReleaseHead(head);
        }
    }

    private void DropReturned(ushort head)
    {
        CountEvent(CoreMetrics.StaleCompletions);
        if (!_staleLogged)
        {
            _staleLogged = true;
            Log.StaleCompletionDropped(_logger, Index, head);
        }

        ReleaseHead(head);
    }

    private void ReleaseHead(ushort head)
    {
        _heads[head] = HeadFree;
        _pinning?.ChainReleased(head);
    }

    /// <summary>
    /// Publishes every element added since the last call by moving used->idx, then says whether
    /// the driver asked to be interrupted for them (VIRTQ_AVAIL_F_NO_INTERRUPT, or with
    /// VIRTIO_F_EVENT_IDX the vring_need_event rule of virtio 1.2 §2.7.10 on used_event).
    /// </summary>
    /// <returns>True when the device should send a used-buffer notification now.</returns>
    public bool PublishUsed()
    {
        if (!_ready || _error != QueueError.None)
        {
            return false;
        }

        if (_packed)
        {
            return PublishUsedPacked();
        }

        ushort newIdx = _nextUsed;
        ushort oldIdx = _lastNotifyDecisionUsed;
        if (newIdx == oldIdx)
        {
            return false;
        }

        if (!_memory.TryGetSpan(new GuestAddress(UsedRing.Value + SplitRingLayout.UsedIdxOffset), 2, out Span<byte> usedIdx))
        {
            MarkBroken(QueueError.InvalidRingAddress);
            return false;
        }

        // virtio 1.2 §2.7.8: the used elements are visible before used->idx moves (release store).
        RingAccess.WriteUInt16Release(usedIdx, newIdx);

        // Logged before PublishedUsed moves: a drain that sees the batch published sees the log done too.
        _dirtyLog?.UsedAreaWritten(SplitRingLayout.UsedIdxOffset, 2);
        _lastNotifyDecisionUsed = newIdx;
        _inFlightTracker?.UsedPublished(newIdx);

        // virtio 1.2 §2.7.10: our idx store must be visible before we read the driver's
        // used_event or flags, or a driver that re-armed meanwhile could miss its interrupt (full fence).
        Interlocked.MemoryBarrier();
        if (EventIdx)
        {
            if (!_memory.TryGetSpan(new GuestAddress(AvailRing.Value + (uint)new SplitRingLayout(_size).UsedEventOffset), 2, out Span<byte> usedEventField))
            {
                MarkBroken(QueueError.InvalidRingAddress);
                return false;
            }

            ushort usedEvent = RingAccess.ReadUInt16Acquire(usedEventField);
            return NeedEvent(usedEvent, newIdx, oldIdx);
        }

        if (!_memory.TryGetSpan(AvailRing, 2, out Span<byte> availFlags))
        {
            MarkBroken(QueueError.InvalidRingAddress);
            return false;
        }

        return (RingAccess.ReadUInt16Acquire(availFlags) & AvailFlagNoInterrupt) == 0;
    }

    /// <summary>
    /// The vring_need_event rule (virtio 1.2 §2.7.10): true when <paramref name="eventIdx"/> lies
    /// in [old, new) in 16-bit ring arithmetic, i.e. the index the other side asked about was crossed.
    /// </summary>
    /// <param name="eventIdx">The other side's event index (used_event or avail_event).</param>
    /// <param name="newIdx">The index after the update.</param>
    /// <param name="oldIdx">The index at the previous notification decision.</param>
    /// <returns>True when a notification is due.</returns>
    public static bool NeedEvent(ushort eventIdx, ushort newIdx, ushort oldIdx) =>
        (ushort)(newIdx - eventIdx - 1) < (ushort)(newIdx - oldIdx);

    /// <summary>
    /// Asks the driver not to notify (kick) the device while it drains the ring: sets
    /// VIRTQ_USED_F_NO_NOTIFY, or with VIRTIO_F_EVENT_IDX simply stops moving avail_event.
    /// Only a hint: the driver may still notify.
    /// </summary>
    public void DisableNotification()
    {
        if (!_ready || _error != QueueError.None || _notificationsDisabled)
        {
            return;
        }

        _notificationsDisabled = true;
        if (_packed)
        {
            WriteDeviceEvent(PackedRingLayout.EventFlagsDisable, 0);
        }
        else if (!EventIdx)
        {
            SetUsedFlags(UsedFlagNoNotify);
        }
    }

    /// <summary>
    /// Asks the driver to notify again (clears VIRTQ_USED_F_NO_NOTIFY, or with VIRTIO_F_EVENT_IDX
    /// sets avail_event to the next index the device will read), then, after a full barrier,
    /// checks the ring once more. The caller must process the queue again when this returns true,
    /// or a buffer made available just before the re-enable would wait for a kick that never comes.
    /// </summary>
    /// <returns>True when buffers are available.</returns>
    public bool EnableNotification()
    {
        if (!_ready || _error != QueueError.None)
        {
            return false;
        }

        _notificationsDisabled = false;
        if (_packed)
        {
            // With VIRTIO_F_RING_EVENT_IDX, ask for a kick when the descriptor at our next avail
            // position (and wrap counter) is made available; otherwise for every one (§2.8.10).
            if (EventIdx)
            {
                WriteDeviceEvent(PackedRingLayout.EventFlagsDesc, PackedRingLayout.OffWrap(_nextAvail, _availWrap));
            }
            else
            {
                WriteDeviceEvent(PackedRingLayout.EventFlagsEnable, 0);
            }
        }
        else if (EventIdx)
        {
            if (!_memory.TryGetSpan(new GuestAddress(UsedRing.Value + (uint)new SplitRingLayout(_size).AvailEventOffset), 2, out Span<byte> availEvent))
            {
                MarkBroken(QueueError.InvalidRingAddress);
                return false;
            }

            RingAccess.WriteUInt16Release(availEvent, _nextAvail);
            _dirtyLog?.UsedAreaWritten(new SplitRingLayout(_size).AvailEventOffset, 2);
        }
        else
        {
            SetUsedFlags(0);
        }

        // virtio 1.2 §2.7.10 / §2.7.13.4: the re-enable store must be visible before we look at
        // avail->idx again; otherwise the driver may skip its kick while we miss its new buffer.
        Interlocked.MemoryBarrier();
        return HasAvailable();
    }

    private void SetUsedFlags(ushort flags)
    {
        if (_memory.TryGetSpan(UsedRing, 2, out Span<byte> usedFlags))
        {
            RingAccess.WriteUInt16Release(usedFlags, flags);
            _dirtyLog?.UsedAreaWritten(0, 2);
        }
        else
        {
            MarkBroken(QueueError.InvalidRingAddress);
        }
    }

    /// <summary>Captures the queue's configuration and indices (see <see cref="SplitVirtqueueState"/>).</summary>
    /// <returns>The state; chains still in flight are not part of it, so drain the device first.</returns>
    public SplitVirtqueueState SaveState() =>
        new(_size, DescriptorTable, AvailRing, UsedRing, _nextAvail, _nextUsed, _ready, EventIdx, IndirectDescriptors)
        {
            PackedRing = PackedRing,
            AvailWrapCounter = _availWrap,
            UsedWrapCounter = _usedWrap,
        };

    /// <summary>
    /// Restores a saved state: configuration and indices, then, when <see cref="SplitVirtqueueState.Ready"/>,
    /// activates the queue (which checks the rings again). Chains still in flight become stale
    /// (see <see cref="StaleCount"/>): their heads stay reserved and their completions are dropped.
    /// </summary>
    /// <param name="state">A state from <see cref="SaveState"/> or from another back end.</param>
    /// <param name="error">Why activation failed, when it did.</param>
    /// <returns>False when the state asked for a live queue whose rings are invalid.</returns>
    public bool TryRestoreState(SplitVirtqueueState state, out QueueError error)
    {
        ResetState(keepInFlightAsStale: true);
        Size = state.Size;
        DescriptorTable = state.DescriptorTable;
        AvailRing = state.AvailRing;
        UsedRing = state.UsedRing;
        EventIdx = state.EventIdx;
        IndirectDescriptors = state.IndirectDescriptors;
        PackedRing = state.PackedRing;
        if (state.PackedRing)
        {
            _availWrap = state.AvailWrapCounter;
            _usedWrap = state.UsedWrapCounter;
        }

        _nextAvail = state.NextAvail;
        _seenAvailIdx = state.NextAvail;
        _nextUsed = state.NextUsed;
        _lastNotifyDecisionUsed = state.NextUsed;
        error = QueueError.None;
        return !state.Ready || TryActivate(out error);
    }

    internal bool TryReadAvailIdx(out ushort availIdx)
    {
        if (_memory.TryGetSpan(new GuestAddress(AvailRing.Value + SplitRingLayout.AvailIdxOffset), 2, out Span<byte> field))
        {
            // virtio 1.2 §2.7.13.2: acquire, so the ring entries and descriptors the driver wrote
            // before moving idx are read after it.
            availIdx = RingAccess.ReadUInt16Acquire(field);
            return true;
        }

        availIdx = 0;
        MarkBroken(QueueError.InvalidRingAddress);
        return false;
    }

    internal void RecordWritable(ushort head, ulong writableBytes, GuestAddress address, uint length)
    {
        _dirtyLog?.BufferWritable(head, writableBytes == length, address, length);

        // A walker may walk a chain more than once; the capacity is what it has seen at most.
        uint capped = writableBytes > uint.MaxValue ? uint.MaxValue : (uint)writableBytes;
        if (capped > _writableCapacity[head])
        {
            _writableCapacity[head] = capped;
        }
    }

    /// <summary>
    /// Stops the queue because the driver broke a ring rule. Logged and raised once; afterwards
    /// the queue pops nothing and publishes nothing until reset.
    /// </summary>
    /// <param name="error">The rule that was broken.</param>
    internal void MarkBroken(QueueError error)
    {
        if (_error != QueueError.None)
        {
            return;
        }

        _error = error;
        CountEvent(CoreMetrics.QueueErrors);
        Log.QueueBroken(_logger, Index, error);
        Broken?.Invoke(this, error);
    }
}
