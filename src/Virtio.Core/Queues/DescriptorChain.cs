using System;
using System.Buffers.Binary;
using Virtio.Core.Memory;

namespace Virtio.Core.Queues;

/// <summary>
/// Walks one descriptor chain in place, following <c>next</c> links and at most one indirect
/// table (virtio 1.2 §2.7.5), or on a packed ring the chain's consecutive ring descriptors and at
/// most one indirect table (§2.8.6, §2.8.8), and yields each buffer checked against guest memory. Allocates
/// nothing. Every rule the driver can break ends the walk with a <see cref="QueueError"/> and
/// breaks the queue; the walk is bounded by the table sizes, so a looping chain cannot hang it.
/// </summary>
/// <remarks>Use it on the thread that popped it, before the chain is returned with <see cref="SplitVirtqueue.AddUsed"/>.
/// On a packed ring, walk it before any other chain of the queue is returned: a used descriptor is
/// written over ring descriptors, and the driver reuses ring slots as soon as others are used.</remarks>
public ref struct DescriptorChain
{
    private readonly SplitVirtqueue? _queue;
    private readonly ushort _head;

    // Packed ring only: where the chain starts in the ring and how many ring descriptors it has
    // (found by the pop); the walk takes exactly those, whatever NEXT flags read now.
    private readonly ushort _packedStart;
    private readonly ushort _packedSlots;
    private readonly bool _packed;

    // Packed ring only: the chain is a resubmitted copy (SplitVirtqueue.TryResubmitPacked), walked in
    // the queue's copy buffer instead of the ring.
    private readonly bool _resubmitted;

    // Where the next descriptor comes from: the queue's table or an indirect table, looked up in
    // guest memory once per table rather than once per descriptor.
    private Span<byte> _table;
    private uint _tableEntries;
    private uint _next;
    private int _ttl;
    private bool _inIndirect;
    private bool _hasNext;
    private bool _seenWritable;
    private ulong _readable;
    private ulong _writable;
    private int _count;
    private QueueError _error;

    internal DescriptorChain(SplitVirtqueue queue, ushort head)
    {
        _queue = queue;
        _head = head;
        Reset();
    }

    internal DescriptorChain(SplitVirtqueue queue, ushort bufferId, ushort start, ushort slots, bool resubmitted = false)
    {
        _queue = queue;
        _head = bufferId;
        _packed = true;
        _packedStart = start;
        _packedSlots = slots;
        _resubmitted = resubmitted;
        Reset();
    }

    /// <summary>The index of the chain's first descriptor (a packed ring: its buffer ID): what <see cref="SplitVirtqueue.AddUsed"/> takes.</summary>
    public readonly ushort HeadIndex => _head;

    /// <summary>Device-readable bytes walked so far.</summary>
    public readonly ulong ReadableLength => _readable;

    /// <summary>Device-writable bytes walked so far.</summary>
    public readonly ulong WritableLength => _writable;

    /// <summary>Buffers yielded so far.</summary>
    public readonly int Count => _count;

    /// <summary>The error that ended the walk, or <see cref="QueueError.None"/>.</summary>
    public readonly QueueError Error => _error;

    /// <summary>Starts the walk again from the head (for a device that validates a chain before processing it).</summary>
    public void Reset()
    {
        if (_queue is null)
        {
            return;
        }

        // The table was checked to lie in guest memory when the queue was activated. The size is
        // read once, so the table's span and the walk's bound agree even if a transport stores
        // another size meanwhile.
        ushort size = _queue.Size;
        _tableEntries = size;
        _error = QueueError.None;
        if (_resubmitted)
        {
            // The copies lie one chain after another from _packedStart: the walk never wraps there.
            _table = _queue.ResubmittedDescriptors;
            _tableEntries = (uint)(_table.Length / SplitVirtqueue.DescriptorSize);
        }
        else if (!_queue.Memory.TryGetSpan(_queue.DescriptorTable, (int)_tableEntries * SplitVirtqueue.DescriptorSize, out _table))
        {
            _tableEntries = 0;
        }

        _next = _packed ? _packedStart : _head;
        _ttl = _packed ? _packedSlots : size;
        _inIndirect = false;
        _hasNext = true;
        _seenWritable = false;
        _readable = 0;
        _writable = 0;
        _count = 0;
    }

    /// <summary>
    /// Moves to the next buffer of the chain. Returns false at the end of the chain
    /// (<paramref name="error"/> is <see cref="QueueError.None"/>) or when the chain breaks a
    /// rule (<paramref name="error"/> says which; the queue is then broken).
    /// </summary>
    /// <param name="buffer">The buffer, inside guest memory.</param>
    /// <param name="error">Why the walk stopped early.</param>
    /// <returns>True when a buffer was produced.</returns>
    public bool TryMoveNext(out DescriptorBuffer buffer, out QueueError error)
    {
        buffer = default;
        error = _error;
        if (_queue is null || !_hasNext || error != QueueError.None)
        {
            return false;
        }

        if (_table.IsEmpty)
        {
            // The descriptor table left guest memory after activation (a region was removed).
            return Fail(QueueError.InvalidRingAddress, out error);
        }

        while (true)
        {
            if (_next >= _tableEntries)
            {
                return Fail(_count == 0 && !_inIndirect ? QueueError.InvalidHeadIndex : QueueError.InvalidNextIndex, out error);
            }

            // Each table entry can be visited at most once in a chain that does not loop.
            if (--_ttl < 0)
            {
                return Fail(QueueError.ChainTooLong, out error);
            }

            Span<byte> raw = _table.Slice((int)_next * SplitVirtqueue.DescriptorSize, SplitVirtqueue.DescriptorSize);

            // Read each field once: the guest may rewrite the table while we look at it.
            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(raw);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(raw[8..]);
            DescriptorFlags flags;
            bool hasNext;
            uint next;
            if (_packed)
            {
                // §2.8.6 / §2.8.8: a packed chain's descriptors (and an indirect table's entries)
                // follow one another; the count fixed at pop ends the walk, not NEXT.
                flags = (DescriptorFlags)BinaryPrimitives.ReadUInt16LittleEndian(raw[PackedRingLayout.FlagsOffset..]);
                next = _next + 1 == _tableEntries ? 0 : _next + 1;
                hasNext = _ttl > 0;
                if (_inIndirect)
                {
                    // §2.8.8: only WRITE is valid inside an indirect table; NEXT is ignored there.
                    flags &= DescriptorFlags.Write | DescriptorFlags.Indirect;
                }
            }
            else
            {
                flags = (DescriptorFlags)BinaryPrimitives.ReadUInt16LittleEndian(raw[12..]);
                next = BinaryPrimitives.ReadUInt16LittleEndian(raw[14..]);
                hasNext = (flags & DescriptorFlags.Next) != 0;
            }

            if ((flags & DescriptorFlags.Indirect) != 0)
            {
                QueueError indirectError = EnterIndirect(address, length, flags);
                if (indirectError != QueueError.None)
                {
                    return Fail(indirectError, out error);
                }

                continue;
            }

            if (address + length < address)
            {
                return Fail(QueueError.AddressOverflow, out error);
            }

            if (length > int.MaxValue || !_queue.Memory.TryGetSpan(new GuestAddress(address), (int)length, out Span<byte> span))
            {
                return Fail(QueueError.AddressOutOfRange, out error);
            }

            bool writable = (flags & DescriptorFlags.Write) != 0;
            if (writable)
            {
                _seenWritable = true;
                _writable += length;
                _queue.RecordWritable(_head, _writable, new GuestAddress(address), length);
            }
            else if (_seenWritable)
            {
                // virtio 1.2 §2.7.4.2: all device-readable buffers come before the writable ones.
                return Fail(QueueError.ReadableAfterWritable, out error);
            }
            else
            {
                _readable += length;
            }

            // virtio 1.2 §2.7.5: a chain is at most 2^32 bytes in total.
            if (_readable + _writable > uint.MaxValue)
            {
                return Fail(QueueError.ChainTooLarge, out error);
            }

            _hasNext = hasNext;
            _next = next;
            _count++;
            buffer = new DescriptorBuffer(new GuestAddress(address), span, writable);
            return true;
        }
    }

    /// <summary>
    /// Walks the rest of the chain and stores its non-empty buffers in <paramref name="destination"/>
    /// as <see cref="IoSegment"/>s, device-readable ones first (the order virtio 1.2 §2.7.4.2
    /// requires), so that <c>destination[..readableCount]</c> feeds a <see cref="ChainReader"/> and
    /// <c>destination[readableCount..count]</c> a <see cref="ChainWriter"/>. Walks to the end even
    /// when <paramref name="destination"/> is full, so the whole chain is validated:
    /// <paramref name="count"/> larger than <c>destination.Length</c> says segments did not fit
    /// (those past the end are counted, not stored). Allocates nothing.
    /// </summary>
    /// <param name="destination">Receives the segments.</param>
    /// <param name="readableCount">How many of the segments are device-readable.</param>
    /// <param name="count">How many non-empty buffers the rest of the chain has.</param>
    /// <returns>False when the chain broke a rule (<see cref="Error"/> says which, and the queue is broken, as with <see cref="TryMoveNext"/>).</returns>
    public bool TryGather(Span<IoSegment> destination, out int readableCount, out int count)
    {
        readableCount = 0;
        count = 0;
        while (TryMoveNext(out DescriptorBuffer buffer, out _))
        {
            if (buffer.Length == 0)
            {
                continue;
            }

            if (count < destination.Length)
            {
                destination[count] = buffer.Segment;
            }

            count++;
            if (!buffer.IsWriteOnly)
            {
                readableCount++;
            }
        }

        return _error == QueueError.None;
    }

    private QueueError EnterIndirect(ulong address, uint length, DescriptorFlags flags)
    {
        SplitVirtqueue queue = _queue!;
        if (!queue.IndirectDescriptors)
        {
            return QueueError.IndirectNotNegotiated;
        }

        if (_inIndirect)
        {
            return QueueError.NestedIndirect;
        }

        if ((flags & DescriptorFlags.Next) != 0)
        {
            return QueueError.IndirectWithNext;
        }

        if (length == 0)
        {
            return QueueError.IndirectTableEmpty;
        }

        if (length % SplitVirtqueue.DescriptorSize != 0)
        {
            return QueueError.IndirectTableMisaligned;
        }

        uint entries = length / SplitVirtqueue.DescriptorSize;
        if (entries > queue.Size)
        {
            return QueueError.IndirectTableTooLarge;
        }

        if (address + length < address)
        {
            return QueueError.AddressOverflow;
        }

        if (!queue.Memory.TryGetSpan(new GuestAddress(address), (int)length, out Span<byte> table))
        {
            return QueueError.AddressOutOfRange;
        }

        // virtio 1.2 §2.7.5.3.2: the WRITE flag of the descriptor naming the table is ignored;
        // the table's entries chain from entry 0.
        _inIndirect = true;
        _table = table;
        _tableEntries = entries;
        _next = 0;
        _ttl = (int)entries;
        return QueueError.None;
    }

    private bool Fail(QueueError error, out QueueError reported)
    {
        _error = error;
        _hasNext = false;
        reported = error;
        _queue!.MarkBroken(error);
        _queue.AbandonChain(_head);
        return false;
    }
}
