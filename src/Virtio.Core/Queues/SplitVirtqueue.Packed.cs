using System;
using System.Buffers.Binary;
using System.Threading;
using Virtio.Core.Memory;

namespace Virtio.Core.Queues;

/// <summary>The packed-ring paths of the queue (virtio 1.2 §2.8), chosen at activation by <see cref="PackedRing"/>.</summary>
public sealed partial class SplitVirtqueue
{
    // Packed ring state. _nextAvail and _nextUsed hold ring positions (0 .. size-1) instead of
    // free-running indices; each has its wrap counter, 1 at start (§2.8.1).
    private bool _packed;
    private bool _availWrap = true;
    private bool _usedWrap = true;

    // Per buffer ID: how many ring descriptors the chain took, so the used position skips them (§2.8.7).
    private ushort[]? _chainSlots;

    // Used descriptors written by AddUsed whose flags PublishUsed has not stored yet: their position
    // and the flags to store. At most one per chain in flight, so MaxSize entries.
    private ushort[]? _pendingPositions;
    private ushort[]? _pendingFlags;
    private int _pendingCount;

    // Ring positions made used since the last notification decision (the packed "new - old").
    private int _usedSinceDecision;

    /// <summary>
    /// Whether VIRTIO_F_RING_PACKED was negotiated: the queue is a packed virtqueue (virtio 1.2 §2.8).
    /// Then <see cref="DescriptorTable"/> is the descriptor ring, <see cref="AvailRing"/> the driver
    /// event suppression structure and <see cref="UsedRing"/> the device event suppression structure;
    /// <see cref="NextAvail"/> and <see cref="NextUsed"/> are ring positions, with
    /// <see cref="AvailWrapCounter"/> and <see cref="UsedWrapCounter"/>; <see cref="DescriptorChain.HeadIndex"/>
    /// is the chain's buffer ID. Set only while not ready; read at <see cref="TryActivate"/>.
    /// </summary>
    public bool PackedRing { get; set; }

    /// <summary>The packed ring's available wrap counter: the lap the next descriptor the device reads is in (true at start).</summary>
    public bool AvailWrapCounter => _availWrap;

    /// <summary>The packed ring's used wrap counter: the lap the next used descriptor the device writes is in (true at start).</summary>
    public bool UsedWrapCounter => _usedWrap;

    private void ResetPackedState()
    {
        _packed = false;
        _availWrap = true;
        _usedWrap = true;
        _pendingCount = 0;
        _usedSinceDecision = 0;
        _resubmitDescriptorNext = 0;
    }

    private bool TryActivatePacked(ushort size, out QueueError error)
    {
        // virtio 1.2 §2.8: a packed queue's size need not be a power of two; positions must fit in 15 bits.
        if (size == 0 || size > MaxSize)
        {
            error = QueueError.InvalidQueueSize;
            return false;
        }

        if (!RingFits(DescriptorTable, size * PackedRingLayout.DescriptorSize, PackedRingLayout.DescriptorRingAlignment)
            || !RingFits(AvailRing, PackedRingLayout.EventSuppressionSize, PackedRingLayout.EventSuppressionAlignment)
            || !RingFits(UsedRing, PackedRingLayout.EventSuppressionSize, PackedRingLayout.EventSuppressionAlignment)
            || _nextAvail >= size
            || _nextUsed >= size)
        {
            error = QueueError.InvalidRingAddress;
            return false;
        }

        _chainSlots ??= new ushort[MaxSize];
        _pendingPositions ??= new ushort[MaxSize];
        _pendingFlags ??= new ushort[MaxSize];
        _pendingCount = 0;
        _usedSinceDecision = 0;
        _packed = true;
        _error = QueueError.None;
        _lastNotifyDecisionUsed = _nextUsed;
        _ready = true;
        _notificationsDisabled = true;
        EnableNotification();
        error = _error;
        return _ready && _error == QueueError.None;
    }

    private bool TryGetDescriptorRing(ushort size, out Span<byte> ring)
    {
        if (_memory.TryGetSpan(DescriptorTable, size * PackedRingLayout.DescriptorSize, out ring))
        {
            return true;
        }

        MarkBroken(QueueError.InvalidRingAddress);
        return false;
    }

    private bool PackedHeadAvailable()
    {
        if (_resubmitNext != _resubmitCount)
        {
            return true;
        }

        ushort size = _size;
        if (_nextAvail >= size || !TryGetDescriptorRing(size, out Span<byte> ring))
        {
            return false;
        }

        // virtio 1.2 §2.8.1 / §2.8.21: the driver stores a chain's head flags last, with release
        // semantics; this acquire load orders every later read of the chain after it.
        ushort flags = RingAccess.ReadUInt16Acquire(ring.Slice(PackedRingLayout.DescriptorOffset(_nextAvail) + PackedRingLayout.FlagsOffset, 2));
        return PackedRingLayout.IsAvailable(flags, _availWrap);
    }

    private bool TryPopPackedChain(ushort size, out DescriptorChain chain)
    {
        chain = default;
        if (_resubmitNext != _resubmitCount)
        {
            return TryPopResubmittedPacked(size, out chain);
        }

        ushort start = _nextAvail;
        if (start >= size)
        {
            // The size was changed under a live queue (a transport race): positions no longer fit.
            MarkBroken(QueueError.InvalidQueueSize);
            return false;
        }

        if (!TryGetDescriptorRing(size, out Span<byte> ring))
        {
            return false;
        }

        bool wrap = _availWrap;

        // Acquire: see PackedHeadAvailable. The head's flags decide whether there is a chain at all.
        ushort flags = RingAccess.ReadUInt16Acquire(ring.Slice(PackedRingLayout.DescriptorOffset(start) + PackedRingLayout.FlagsOffset, 2));
        if (!PackedRingLayout.IsAvailable(flags, wrap))
        {
            return false;
        }

        // Find the chain's end: descriptors follow one another in the ring while NEXT is set
        // (§2.8.6), each made available in its own lap (the chain may cross the ring's end, where
        // the counter flips). The driver stored them before the head, so these plain loads, after
        // the acquire above, see them. A chain never holds more descriptors than the ring.
        ushort position = start;
        int slots = 1;
        while ((flags & (ushort)DescriptorFlags.Next) != 0)
        {
            if (slots == size)
            {
                MarkBroken(QueueError.ChainTooLong);
                return false;
            }

            if (++position == size)
            {
                position = 0;
                wrap = !wrap;
            }

            flags = BinaryPrimitives.ReadUInt16LittleEndian(ring.Slice(PackedRingLayout.DescriptorOffset(position) + PackedRingLayout.FlagsOffset, 2));
            if (!PackedRingLayout.IsAvailable(flags, wrap))
            {
                MarkBroken(QueueError.DescriptorNotAvailable);
                return false;
            }

            slots++;
        }

        // §2.8.6: the buffer ID is in the chain's last descriptor. IDs index per-chain arrays of the
        // queue size, as every driver allocates them (Linux: below the ring size).
        ushort id = BinaryPrimitives.ReadUInt16LittleEndian(ring.Slice(PackedRingLayout.DescriptorOffset(position) + PackedRingLayout.IdOffset, 2));
        if (!IsFreeBufferId(id, size))
        {
            return false;
        }

        if (++position == size)
        {
            position = 0;
            wrap = !wrap;
        }

        _heads[id] = HeadInFlight;
        _writableCapacity[id] = 0;
        _chainSlots![id] = (ushort)slots;
        _inFlightCount++;
        _nextAvail = position;
        _availWrap = wrap;

        // As on the split ring: the queue owns the ID before the tracker and the pinning hear of it.
        if (_inFlightTracker is IInFlightTracker tracker)
        {
            // The chain's ring descriptors, in two parts when it crosses the ring's end.
            int first = Math.Min(slots, size - start);
            tracker.PackedChainTaken(
                id,
                ring.Slice(PackedRingLayout.DescriptorOffset(start), first * PackedRingLayout.DescriptorSize),
                ring[..((slots - first) * PackedRingLayout.DescriptorSize)]);
        }

        _pinning?.ChainTaken(id);
        chain = new DescriptorChain(this, id, start, (ushort)slots);
        return true;
    }

    /// <summary>Whether <paramref name="id"/> can be a popped chain's buffer ID: below the size and not in flight; else breaks the queue.</summary>
    private bool IsFreeBufferId(ushort id, ushort size)
    {
        if (id >= size)
        {
            MarkBroken(QueueError.InvalidHeadIndex);
            return false;
        }

        if (_heads[id] != HeadFree)
        {
            MarkBroken(QueueError.HeadAlreadyInFlight);
            return false;
        }

        return true;
    }

    private bool AddUsedPacked(ushort id, uint writtenLength, ushort size)
    {
        ushort position = _nextUsed;
        if (position >= size
            || !_memory.TryGetSpan(new GuestAddress(DescriptorTable.Value + (uint)PackedRingLayout.DescriptorOffset(position)), PackedRingLayout.DescriptorSize, out Span<byte> slot))
        {
            return false;
        }

        // §2.8.7: a used descriptor is written at the next used position with the buffer ID and the
        // length written; its flags (AVAIL = USED = the used wrap counter) are stored by PublishUsed,
        // which is what makes it the driver's. WRITE says the length is meaningful (§2.8.4).
        uint length = Math.Min(writtenLength, _writableCapacity[id]);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[PackedRingLayout.IdOffset..], id);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[PackedRingLayout.LengthOffset..], length);
        _pendingPositions![_pendingCount] = position;
        _pendingFlags![_pendingCount] = (ushort)(PackedRingLayout.UsedFlags(_usedWrap) | (length > 0 ? (ushort)DescriptorFlags.Write : 0));
        _pendingCount++;
        if (_dirtyLog is IDirtyLog log)
        {
            // The chain's buffers, then the used descriptor's id and length; its flags when published.
            log.ChainUsed(id);
            log.RingWritten(new GuestAddress(DescriptorTable.Value + (uint)PackedRingLayout.DescriptorOffset(position)), PackedRingLayout.DescriptorSize);
        }

        // The used position skips every descriptor the chain took in the ring (an indirect chain took one).
        int next = position + _chainSlots![id];
        if (next >= size)
        {
            next -= size;
            _usedWrap = !_usedWrap;
        }

        _nextUsed = (ushort)next;
        _usedSinceDecision += _chainSlots[id];
        _heads[id] = HeadFree;
        _inFlightCount--;
        _inFlightTracker?.ChainUsed(id);
        _pinning?.ChainReleased(id);
        return true;
    }

    private bool PublishUsedPacked()
    {
        int pending = _pendingCount;
        if (pending == 0)
        {
            return false;
        }

        ushort size = _size;
        if (!TryGetDescriptorRing(size, out Span<byte> ring))
        {
            return false;
        }

        // §2.8.21 (the device side of "make the first descriptor available last"): the driver reads
        // used descriptors in ring order and stops at the first whose flags are not used, so storing
        // the first one's flags last hands the whole batch over at once. Release stores: the ID and
        // length written by AddUsed are visible before the flags that make them the driver's.
        IDirtyLog? log = _dirtyLog;
        for (int i = pending - 1; i >= 0; i--)
        {
            ushort position = _pendingPositions![i];
            if (position >= size)
            {
                MarkBroken(QueueError.InvalidQueueSize);
                return false;
            }

            RingAccess.WriteUInt16Release(ring.Slice(PackedRingLayout.DescriptorOffset(position) + PackedRingLayout.FlagsOffset, 2), _pendingFlags![i]);
            log?.RingWritten(new GuestAddress(DescriptorTable.Value + (uint)(PackedRingLayout.DescriptorOffset(position) + PackedRingLayout.FlagsOffset)), 2);
        }

        _pendingCount = 0;
        ushort newPosition = _nextUsed;
        int crossed = _usedSinceDecision;
        _usedSinceDecision = 0;
        _lastNotifyDecisionUsed = newPosition;
        _inFlightTracker?.UsedPublished(PackedRingLayout.OffWrap(newPosition, _usedWrap));

        // §2.8.10 and §2.8.21: the used flags must be visible before we read the driver's event
        // suppression structure, or a driver re-enabling meanwhile could miss its interrupt (full fence).
        Interlocked.MemoryBarrier();
        if (!_memory.TryGetSpan(AvailRing, PackedRingLayout.EventSuppressionSize, out Span<byte> driverEvent))
        {
            MarkBroken(QueueError.InvalidRingAddress);
            return false;
        }

        // The driver stores off_wrap before flags (release), so flags are loaded first (acquire).
        ushort mode = RingAccess.ReadUInt16Acquire(driverEvent[PackedRingLayout.EventFlagsOffset..]);
        if (mode == PackedRingLayout.EventFlagsDisable)
        {
            return false;
        }

        if (mode != PackedRingLayout.EventFlagsDesc || !EventIdx)
        {
            // Enable, or a value this ring does not define (reserved, or DESC without EVENT_IDX):
            // notifying too often is harmless, too rarely hangs the driver.
            return true;
        }

        ushort offWrap = RingAccess.ReadUInt16Acquire(driverEvent[PackedRingLayout.EventOffWrapOffset..]);
        return NeedPackedEvent(offWrap, newPosition, _usedWrap, crossed, size);
    }

    /// <summary>
    /// The packed analogue of vring_need_event (virtio 1.2 §2.8.10): the event position is taken
    /// relative to the current lap (one ring behind when its wrap bit is the other lap's), then the
    /// split rule applies to the <paramref name="crossed"/> positions just passed.
    /// </summary>
    private static bool NeedPackedEvent(ushort offWrap, ushort newPosition, bool wrap, int crossed, ushort size)
    {
        int eventPosition = offWrap & 0x7FFF;
        if (((offWrap & 0x8000) != 0) != wrap)
        {
            eventPosition -= size;
        }

        ushort oldPosition = (ushort)(newPosition - crossed);
        return NeedEvent((ushort)eventPosition, newPosition, oldPosition);
    }

    private void WriteDeviceEvent(ushort mode, ushort offWrap)
    {
        if (!_memory.TryGetSpan(UsedRing, PackedRingLayout.EventSuppressionSize, out Span<byte> deviceEvent))
        {
            MarkBroken(QueueError.InvalidRingAddress);
            return;
        }

        // §2.8.10: off_wrap before flags, so a driver that sees DESC mode reads the position that goes with it.
        RingAccess.WriteUInt16Release(deviceEvent[PackedRingLayout.EventOffWrapOffset..], offWrap);
        RingAccess.WriteUInt16Release(deviceEvent[PackedRingLayout.EventFlagsOffset..], mode);
        _dirtyLog?.UsedAreaWritten(0, PackedRingLayout.EventSuppressionSize);
    }
}
