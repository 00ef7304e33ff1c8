using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;
using Virtio.Core.Queues;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// Keeps one ring's part of the <see cref="InflightRegion"/> as vhost-user.rst ("Inflight I/O
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
internal sealed unsafe class InflightTracker : IInFlightTracker
{
    private const int VersionOffset = 8;
    private const int DescNumOffset = 10;
    private const int LastBatchHeadOffset = 12;
    private const int UsedIdxOffset = 14;
    private const int NextOffset = 6;
    private const int CounterOffset = 8;

    private readonly byte* _region;
    private readonly ushort _descNum;
    private ulong _counter;

    public InflightTracker(InflightRegion region, int queueIndex)
    {
        _region = region.QueuePointer(queueIndex);
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
        if (ReadUInt16(VersionOffset) != 1 || ReadUInt16(DescNumOffset) != _descNum)
        {
            // A region nobody used yet (or not ours): start it clean.
            new Span<byte>(_region, InflightRegion.HeaderSize + (InflightRegion.EntrySize * _descNum)).Clear();
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
            byte* entry = Entry(head);
            if (entry[0] != 0)
            {
                ulong counter = Unsafe.ReadUnaligned<ulong>(entry + CounterOffset);
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

    /// <summary>The ring stopped with nothing in flight: the region says so.</summary>
    public void Stopped(ushort usedIdx)
    {
        for (int head = 0; head < _descNum; head++)
        {
            Entry(head)[0] = 0;
        }

        WriteUInt16(UsedIdxOffset, usedIdx);
    }

    public void ChainTaken(ushort head)
    {
        if (head >= _descNum)
        {
            return; // the ring is no larger than the region (checked when it started)
        }

        // Counter first, flag second: a flag is never seen with a stale counter.
        byte* entry = Entry(head);
        Unsafe.WriteUnaligned(entry + CounterOffset, ++_counter);
        Volatile.Write(ref *entry, (byte)1);
    }

    public void ChainUsed(ushort head)
    {
        if (head >= _descNum)
        {
            return;
        }

        Unsafe.WriteUnaligned(Entry(head) + NextOffset, ReadUInt16(LastBatchHeadOffset));
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
            byte* entry = Entry(head);
            Volatile.Write(ref *entry, (byte)0);
            head = Unsafe.ReadUnaligned<ushort>(entry + NextOffset);
        }
    }

    private byte* Entry(int head) => _region + InflightRegion.HeaderSize + (InflightRegion.EntrySize * head);

    private ushort ReadUInt16(int offset) => Volatile.Read(ref *(ushort*)(_region + offset));

    private void WriteUInt16(int offset, ushort value) => Volatile.Write(ref *(ushort*)(_region + offset), value);
}
