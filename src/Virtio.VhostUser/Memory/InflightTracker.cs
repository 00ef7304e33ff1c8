using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// Keeps one ring's part of the <see cref="InflightRegion"/> up to date and resubmits what a dead
/// back end left in it. It sees the device's pops through the guest memory the device reads: the
/// split ring pops a chain by reading its avail-ring entry, so a 2-byte read inside the entry array
/// is a pop of the head stored there (marked in flight, with an increasing counter, before the
/// device can act on it). Completions are cleared from the used ring up to the used index the
/// driver can see, at every pop and when the ring stops. On a restart, the heads still marked are
/// handed to the device again by answering its reads of the next avail entries from a private
/// copy, oldest first, before the ring continues with the driver's own entries.
/// </summary>
/// <remarks>Called on the thread that processes the ring (under the device's per-queue lock).</remarks>
internal sealed unsafe class InflightTracker
{
    private const int VersionOffset = 8;
    private const int DescNumOffset = 10;
    private const int UsedIdxOffset = 14;

    private readonly byte* _region;
    private readonly ushort _descNum;
    private readonly SplitVirtqueue _queue;
    private readonly IGuestMemory _memory;
    private readonly ulong _entries;
    private readonly ulong _entriesLength;
    private readonly ulong _usedRing;
    private readonly ushort _num;
    private ulong _counter;
    private byte[]? _resubmit;
    private ushort _resubmitStart;
    private int _resubmitCount;

    public InflightTracker(InflightRegion region, int queueIndex, SplitVirtqueue queue, IGuestMemory memory, ulong availRing, ulong usedRing, ushort num)
    {
        _region = region.QueuePointer(queueIndex);
        _descNum = region.QueueSize;
        _queue = queue;
        _memory = memory;
        _entries = availRing + 4;
        _entriesLength = 2ul * num;
        _usedRing = usedRing;
        _num = num;
    }

    /// <summary>Requests handed to the device again after a restart (0 when none).</summary>
    public int Resubmitted { get; private set; }

    /// <summary>
    /// Reads the region left by an earlier back end: clears what the used ring shows completed up
    /// to <paramref name="usedIdx"/>, and queues every head still in flight for resubmission.
    /// Returns how many; the ring must then start at <paramref name="usedIdx"/>.
    /// </summary>
    public int Recover(ushort usedIdx)
    {
        if (ReadUInt16(VersionOffset) != 1 || ReadUInt16(DescNumOffset) != _descNum)
        {
            // A region nobody used yet (or not ours): start it clean.
            new Span<byte>(_region, InflightRegion.HeaderSize + (InflightRegion.EntrySize * _descNum)).Clear();
            WriteUInt16(VersionOffset, 1);
            WriteUInt16(DescNumOffset, _descNum);
            WriteUInt16(UsedIdxOffset, usedIdx);
            return 0;
        }

        ClearCompleted(_memory, usedIdx);
        var pending = new List<(ulong Counter, ushort Head)>();
        for (int head = 0; head < _descNum; head++)
        {
            byte* entry = Entry(head);
            if (entry[0] != 0)
            {
                ulong counter = Unsafe.ReadUnaligned<ulong>(entry + 8);
                _counter = Math.Max(_counter, counter);
                if (head < _num)
                {
                    pending.Add((counter, (ushort)head));
                }
                else
                {
                    entry[0] = 0;
                }
            }
        }

        if (pending.Count > _num)
        {
            ClearAll(usedIdx);
            return 0;
        }

        pending.Sort(static (a, b) => a.Counter.CompareTo(b.Counter));
        _resubmit = new byte[2 * pending.Count];
        for (int i = 0; i < pending.Count; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(_resubmit.AsSpan(2 * i), pending[i].Head);
        }

        _resubmitStart = usedIdx;
        _resubmitCount = pending.Count;
        Resubmitted = pending.Count;
        return pending.Count;
    }

    /// <summary>
    /// Called for every guest-memory access of the device: handles a read of this ring's avail
    /// entries (a pop) and returns true with the span to give the device; false for anything else.
    /// </summary>
    public bool TryInterceptPop(GuestAddress address, int length, IGuestMemory inner, out Span<byte> span, out bool found)
    {
        ulong offset = address.Value - _entries;
        if (length != 2 || offset >= _entriesLength)
        {
            span = default;
            found = false;
            return false;
        }

        int resubmitIndex = (ushort)(_queue.NextAvail - _resubmitStart);
        if (_resubmit is not null && resubmitIndex < _resubmitCount)
        {
            span = _resubmit.AsSpan(2 * resubmitIndex, 2);
            found = true;
        }
        else
        {
            _resubmit = null;
            found = inner.TryGetSpan(address, length, out span);
        }

        if (found)
        {
            if (inner.TryGetSpan(new GuestAddress(_usedRing + 2), 2, out Span<byte> usedIdx))
            {
                ClearCompleted(inner, Volatile.Read(ref Unsafe.As<byte, ushort>(ref usedIdx[0])));
            }

            MarkInFlight(BinaryPrimitives.ReadUInt16LittleEndian(span));
        }

        return true;
    }

    /// <summary>The ring stopped with nothing in flight: the region says so.</summary>
    public void Stopped(ushort usedIdx) => ClearAll(usedIdx);

    private void MarkInFlight(ushort head)
    {
        if (head >= _descNum)
        {
            return; // the device rejects it as well
        }

        byte* entry = Entry(head);
        Unsafe.WriteUnaligned(entry + 8, ++_counter);
        Volatile.Write(ref *entry, (byte)1);
    }

    /// <summary>Clears the heads the used ring shows in [region used_idx, <paramref name="published"/>).</summary>
    private void ClearCompleted(IGuestMemory memory, ushort published)
    {
        ushort synced = ReadUInt16(UsedIdxOffset);
        ushort count = (ushort)(published - synced);
        if (count > _num)
        {
            WriteUInt16(UsedIdxOffset, published);
            return;
        }

        for (ushort k = 0; k < count; k++)
        {
            ushort position = (ushort)(synced + k);
            if (memory.TryGetSpan(new GuestAddress(_usedRing + 4 + (8ul * (uint)(position & (_num - 1)))), 4, out Span<byte> element))
            {
                uint head = BinaryPrimitives.ReadUInt32LittleEndian(element);
                if (head < _descNum)
                {
                    Volatile.Write(ref *Entry((int)head), (byte)0);
                }
            }
        }

        WriteUInt16(UsedIdxOffset, published);
    }

    private void ClearAll(ushort usedIdx)
    {
        for (int head = 0; head < _descNum; head++)
        {
            Entry(head)[0] = 0;
        }

        _resubmit = null;
        WriteUInt16(UsedIdxOffset, usedIdx);
    }

    private byte* Entry(int head) => _region + InflightRegion.HeaderSize + (InflightRegion.EntrySize * head);

    private ushort ReadUInt16(int offset) => Volatile.Read(ref *(ushort*)(_region + offset));

    private void WriteUInt16(int offset, ushort value) => Volatile.Write(ref *(ushort*)(_region + offset), value);
}
