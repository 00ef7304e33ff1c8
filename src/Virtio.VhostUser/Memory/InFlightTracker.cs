using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;
using Virtio.Core.Queues;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// Keeps one ring's part of the <see cref="InFlightRegion"/> as vhost-user.rst ("InFlight I/O
/// tracking", split virtqueue) describes, told by the queue through <see cref="IInFlightTracker"/>:
/// a head taken gets the next counter and its inflight flag; a head used is linked into the batch
/// list (its <c>next</c> is the previous <c>last_batch_head</c>, and it becomes <c>last_batch_head</c>);
/// once used->idx moves, the batch's flags are cleared and the region's <c>used_idx</c> follows. On a
/// restart, <see cref="Recover"/> finishes a batch the dead back end published but did not clear and
/// returns the heads still marked, oldest counter first, for <see cref="SplitVirtqueue.TryResubmit"/>.
/// </summary>
/// <remarks>
/// The <see cref="IInFlightTracker"/> calls come on the thread that processes the ring (under the
/// device's per-queue lock); <see cref="Recover"/> and <see cref="Stopped"/> on the connection's
/// thread while the ring is not served. The region is shared with the front end: every value read
/// from it is bounded before use.
/// </remarks>
internal sealed class InFlightTracker : IInFlightTracker
{
    private const int VersionOffset = 8;
    private const int DescNumOffset = 10;
    private const int LastBatchHeadOffset = 12;
    private const int UsedIdxOffset = 14;
    private const int NextOffset = 6;
    private const int CounterOffset = 8;

    // The region keeps the mapping alive; the tracker is used only while the region is (the
    // session disposes the region after the ring that uses it has stopped).
    private readonly InFlightRegion _region;
    private readonly int _queueIndex;
    private readonly nint _queueBase; // this queue's part of the mapping, as a number
    private readonly ushort _descNum;
    private ulong _counter;

    public unsafe InFlightTracker(InFlightRegion region, int queueIndex)
    {
        _region = region;
        _queueIndex = queueIndex;
        _queueBase = (nint)region.QueuePointer(queueIndex); // checks the index and that it is mapped
        _descNum = region.QueueSize;
    }

    /// <summary>
    /// Reads the region left by an earlier back end. When its <c>used_idx</c> is behind the ring's
    /// <paramref name="usedIdx"/>, that back end published a batch and died before clearing it: the
    /// batch list from <c>last_batch_head</c> is cleared. Returns the heads still in flight, oldest
    /// first (unchecked against the ring: the queue validates them), and leaves <c>used_idx</c> at
    /// <paramref name="usedIdx"/>.
    /// </summary>
    public ushort[] Recover(ushort usedIdx)
    {
        if (ReadUInt16(VersionOffset) != 1 || ReadUInt16(DescNumOffset) != _descNum || IsPackedLayout())
        {
            // A region nobody used yet (or not ours): start it clean.
            _region.QueueSpan(_queueIndex)[..(InFlightRegion.HeaderSize + (InFlightRegion.EntrySize * _descNum))].Clear();
            WriteUInt16(VersionOffset, 1);
            WriteUInt16(DescNumOffset, _descNum);
            WriteUInt16(UsedIdxOffset, usedIdx);
            return [];
        }

        ushort unsynced = (ushort)(usedIdx - ReadUInt16(UsedIdxOffset));
        if (unsynced <= _descNum)
        {
            ClearBatch(unsynced);
        }

        WriteUInt16(UsedIdxOffset, usedIdx);
        var pending = new List<(ulong Counter, ushort Head)>();
        for (int head = 0; head < _descNum; head++)
        {
            if (ReadFlag(head) != 0)
            {
                ulong counter = ReadCounter(head);
                _counter = Math.Max(_counter, counter);
                pending.Add((counter, (ushort)head));
            }
        }

        pending.Sort(static (a, b) => a.Counter.CompareTo(b.Counter));
        ushort[] heads = new ushort[pending.Count];
        for (int i = 0; i < heads.Length; i++)
        {
            heads[i] = pending[i].Head;
        }

        return heads;
    }

    /// <summary>Whether the header's features field marks the packed layout (a packed ring used this region before).</summary>
    private bool IsPackedLayout() =>
        System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(_region.QueueSpan(_queueIndex)) == PackedInFlightTracker.PackedMark;

    /// <summary>The ring stopped with nothing in flight: the region says so.</summary>
    public void Stopped(ushort usedIdx)
    {
        for (int head = 0; head < _descNum; head++)
        {
            WriteFlag(head, 0);
        }

        WriteUInt16(UsedIdxOffset, usedIdx);
    }

    public void ChainTaken(ushort head)
    {
        if (head >= _descNum)
        {
            return; // the ring is no larger than the region (checked when it started)
        }

        // Counter first, flag second (a release store): a flag is never seen with a stale counter.
        WriteCounter(head, ++_counter);
        WriteFlag(head, 1);
    }

    public void ChainUsed(ushort head)
    {
        if (head >= _descNum)
        {
            return;
        }

        WriteNext(head, ReadUInt16(LastBatchHeadOffset));
        WriteUInt16(LastBatchHeadOffset, head);
    }

    public void UsedPublished(ushort usedIdx)
    {
        ClearBatch((ushort)(usedIdx - ReadUInt16(UsedIdxOffset)));
        WriteUInt16(UsedIdxOffset, usedIdx);
    }

    /// <summary>Clears the flags of the last <paramref name="count"/> heads used, newest first along the batch list.</summary>
    private void ClearBatch(ushort count)
    {
        ushort head = ReadUInt16(LastBatchHeadOffset);
        for (int k = 0; k < count && head < _descNum; k++)
        {
            WriteFlag(head, 0);
            head = ReadNext(head);
        }
    }

    // Every access below goes through Entry or Field, which stay inside this queue's part of the
    // mapping: a header field offset is below HeaderSize, and a head is below _descNum (checked by
    // each caller; heads read back from the shared region are bounded before use).

    private unsafe byte* Entry(int head)
    {
        Debug.Assert((uint)head < _descNum);
        // SAFETY: head < desc_num, and the queue's region holds HeaderSize + desc_num entries.
        return (byte*)_queueBase + InFlightRegion.HeaderSize + (InFlightRegion.EntrySize * head);
    }

    private unsafe ushort* Field(int offset)
    {
        Debug.Assert(offset is >= 0 and < InFlightRegion.HeaderSize && offset % sizeof(ushort) == 0);
        // SAFETY: an even offset inside the 16-byte header of a 64-byte-aligned region: a 2-byte
        // field, naturally aligned, inside the mapping.
        return (ushort*)((byte*)_queueBase + offset);
    }

    private unsafe byte ReadFlag(int head)
    {
        // SAFETY: Entry(head) points at the entry's inflight byte inside the mapping.
        return Volatile.Read(ref *Entry(head));
    }

    private unsafe void WriteFlag(int head, byte value)
    {
        // SAFETY: a one-byte store to the entry's inflight flag inside the mapping; the release store
        // orders it after the counter written before it. The front end only reads it.
        Volatile.Write(ref *Entry(head), value);
    }

    private unsafe ulong ReadCounter(int head)
    {
        // SAFETY: bytes 8..16 of an entry inside the mapping; read unaligned, as the front end may
        // have written any value there (it is only compared, never used as an index).
        return Unsafe.ReadUnaligned<ulong>(Entry(head) + CounterOffset);
    }

    private unsafe void WriteCounter(int head, ulong value)
    {
        // SAFETY: an 8-byte store to bytes 8..16 of the entry, inside the mapping.
        Unsafe.WriteUnaligned(Entry(head) + CounterOffset, value);
    }

    private unsafe ushort ReadNext(int head)
    {
        // SAFETY: bytes 6..8 of an entry inside the mapping. The value is the front end's to
        // corrupt: ClearBatch bounds it against desc_num before following it.
        return Unsafe.ReadUnaligned<ushort>(Entry(head) + NextOffset);
    }

    private unsafe void WriteNext(int head, ushort value)
    {
        // SAFETY: a 2-byte store to bytes 6..8 of the entry, inside the mapping.
        Unsafe.WriteUnaligned(Entry(head) + NextOffset, value);
    }

    private unsafe ushort ReadUInt16(int offset)
    {
        // SAFETY: Field(offset) is an aligned header field inside the mapping.
        return Volatile.Read(ref *Field(offset));
    }

    private unsafe void WriteUInt16(int offset, ushort value)
    {
        // SAFETY: an aligned 2-byte store to a header field (version, desc_num, last_batch_head or
        // used_idx) inside the mapping.
        Volatile.Write(ref *Field(offset), value);
    }
}
