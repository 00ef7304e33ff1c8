using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Threading;
using Virtio.Core.Queues;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// Keeps one packed ring's part of the <see cref="InFlightRegion"/> in the packed layout of
/// vhost-user.rst ("InFlight I/O tracking", packed virtqueue): a 32-byte header (features, version,
/// desc_num, free_head, old_free_head, used_idx, old_used_idx, used_wrap_counter,
/// old_used_wrap_counter) and desc_num 32-byte entries (inflight, next, last, num, counter, then a
/// copy of one ring descriptor: id, flags, len, addr). A chain taken gets entries from the free list,
/// one per ring descriptor, each a copy (the ring slots are soon overwritten by used descriptors);
/// its head entry holds the count and the order counter and is marked in flight last.
/// </summary>
/// <remarks>
/// <para>The publication rule is ours (the spec leaves it to the back end): a chain written to the
/// used ring is marked 2 and <c>used_idx</c> moves on, before the used flags are stored; once they are
/// (<see cref="UsedPublished"/>), its entries return to the free list, and <c>old_used_idx</c> follows.
/// So after a crash, <c>used_idx</c> ≠ <c>old_used_idx</c> means a batch was being published, and the ring
/// tells whether it was: the first used descriptor of a batch gets its flags last.</para>
/// <para>The <see cref="IInFlightTracker"/> calls come on the thread that processes the ring; <see cref="Recover"/>
/// on the connection's thread before the ring is served. The region is shared with the front end: the
/// tracker keeps its own lists, writes them through, and bounds everything it reads back.</para>
/// </remarks>
internal sealed class PackedInFlightTracker : IInFlightTracker
{
    /// <summary>Bytes of the header and of an entry.</summary>
    public const int HeaderSize = 32;

    /// <summary>Bytes of an entry.</summary>
    public const int EntrySize = 32;

    /// <summary>What the header's features field holds for a region in this layout: VIRTIO_F_RING_PACKED.</summary>
    public const ulong PackedMark = 1ul << 34;

    private const ushort None = 0xFFFF;
    private const int FeaturesOffset = 0;
    private const int VersionOffset = 8;
    private const int DescNumOffset = 10;
    private const int FreeHeadOffset = 12;
    private const int OldFreeHeadOffset = 14;
    private const int UsedIdxOffset = 16;
    private const int OldUsedIdxOffset = 18;
    private const int UsedWrapOffset = 20;
    private const int OldUsedWrapOffset = 21;
    private const int InFlightField = 0;
    private const int NextField = 2;
    private const int LastField = 4;
    private const int NumField = 6;
    private const int CounterField = 8;
    private const int IdField = 16;
    private const int DescriptorField = 16; // id, flags, len, addr: the packed descriptor, reordered
    private const int PackedRingLayoutSize = 16;

    private readonly InFlightRegion _region;
    private readonly int _queueIndex;
    private readonly ushort _descNum;
    private readonly ushort[] _next;
    private readonly ushort[] _headOfId;
    private readonly ushort[] _batch;
    private int _batchCount;
    private ushort _freeHead;
    private ushort _usedPosition;
    private bool _usedWrap;
    private ulong _counter;

    public PackedInFlightTracker(InFlightRegion region, int queueIndex, ushort ringSize)
    {
        _region = region;
        _queueIndex = queueIndex;
        _ = region.QueueSpan(queueIndex); // checks the index and that it is mapped
        _descNum = ringSize;
        _next = new ushort[ringSize];
        _headOfId = new ushort[ringSize];
        _batch = new ushort[ringSize];
        Array.Fill(_headOfId, None);
    }

    /// <summary>Bytes of one queue's packed region for <paramref name="queueSize"/> entries.</summary>
    public static int RegionSize(ushort queueSize) => HeaderSize + (EntrySize * queueSize);

    /// <summary>
    /// Reads the region an earlier back end left. A region not in this layout for this ring size is
    /// started fresh at <paramref name="start"/> (the front end's base) and null is returned. Otherwise
    /// a batch caught mid-publication is settled by the used flags in <paramref name="ring"/> (the
    /// descriptor ring), and the result gives the positions to start at and the chains still in flight,
    /// oldest first, as copies for <see cref="SplitVirtqueue.TryResubmitPacked"/>. A region whose
    /// contents do not hold together (positions past the ring, a chain longer than the ring, an entry in
    /// two chains, a buffer ID twice) is started fresh too, with <paramref name="why"/> set.
    /// </summary>
    public PackedRecovery? Recover(ReadOnlySpan<byte> ring, PackedBase start, out string? why)
    {
        why = null;
        Span<byte> queue = Queue();
        if (Read64(queue, FeaturesOffset) != PackedMark || Read16(queue, VersionOffset) != 1 || Read16(queue, DescNumOffset) != _descNum)
        {
            StartFresh(start);
            return null;
        }

        ushort committedPosition = Read16(queue, OldUsedIdxOffset);
        byte committedWrap = queue[OldUsedWrapOffset];
        ushort intentPosition = Read16(queue, UsedIdxOffset);
        byte intentWrap = queue[UsedWrapOffset];
        if (committedPosition >= _descNum || intentPosition >= _descNum || committedWrap > 1 || intentWrap > 1)
        {
            why = "its used position is past the ring";
            StartFresh(start);
            return null;
        }

        // A batch was being published when the last back end stopped: its first used descriptor's
        // flags, stored last, say whether the driver got it (USED in the committed lap: ours, or
        // already consumed and made available again by the driver).
        bool settle = committedPosition != intentPosition || committedWrap != intentWrap;
        bool published = settle && IsUsedInLap(ring, committedPosition, committedWrap != 0);
        ushort usedPosition = published ? intentPosition : committedPosition;
        bool usedWrap = (published ? intentWrap : committedWrap) != 0;

        var chains = new List<(ulong Counter, ushort Head, ushort Num)>();
        for (int entry = 0; entry < _descNum; entry++)
        {
            byte state = Entry(queue, entry)[InFlightField];
            if (state == 2)
            {
                // Used but not yet free: published means done, not published means still in flight.
                state = published ? (byte)0 : (byte)1;
                Entry(queue, entry)[InFlightField] = state;
            }
            else if (state > 2)
            {
                why = $"entry {entry} has inflight {state}";
                StartFresh(start);
                return null;
            }

            if (state == 1)
            {
                chains.Add((Read64(Entry(queue, entry), CounterField), (ushort)entry, Read16(Entry(queue, entry), NumField)));
            }
        }

        chains.Sort(static (a, b) => a.Counter.CompareTo(b.Counter));
        var owner = new bool[_descNum];
        Array.Fill(_headOfId, None);
        var lengths = new ushort[chains.Count];
        var copies = new byte[_descNum * PackedRingLayoutSize];
        int total = 0;
        for (int c = 0; c < chains.Count; c++)
        {
            (ulong counter, ushort head, ushort num) = chains[c];
            total += num;
            if (num == 0 || total > _descNum)
            {
                why = $"chain at entry {head} has {num} descriptor(s), {total} in all for a ring of {_descNum}";
                StartFresh(start);
                return null;
            }

            ushort entry = head;
            ushort id = 0;
            for (int k = 0; k < num; k++)
            {
                if (entry >= _descNum || owner[entry])
                {
                    why = $"chain at entry {head} runs into entry {entry}, outside the ring or in another chain";
                    StartFresh(start);
                    return null;
                }

                owner[entry] = true;
                Span<byte> e = Entry(queue, entry);
                WriteDescriptor(e, copies.AsSpan((total - num + k) * PackedRingLayoutSize, PackedRingLayoutSize));
                id = Read16(e, IdField);
                ushort next = Read16(e, NextField);
                _next[entry] = next;
                if (k + 1 < num)
                {
                    entry = next;
                }
            }

            // The buffer ID is the last descriptor's (as the ring walk takes it).
            if (id >= _descNum || _headOfId[id] != None)
            {
                why = $"chain at entry {head} has buffer ID {id}, out of range or given twice";
                StartFresh(start);
                return null;
            }

            _headOfId[id] = head;
            lengths[c] = num;
            _counter = Math.Max(_counter, counter);
        }

        // Every other entry is free: one list in index order, written through.
        _freeHead = None;
        for (int entry = _descNum - 1; entry >= 0; entry--)
        {
            if (!owner[entry])
            {
                _next[entry] = _freeHead;
                Write16(Entry(queue, entry), NextField, _freeHead);
                Entry(queue, entry)[InFlightField] = 0;
                _freeHead = (ushort)entry;
            }
        }

        _usedPosition = usedPosition;
        _usedWrap = usedWrap;
        _batchCount = 0;
        Commit(queue);

        // The chains in flight fill the ring from the used position on: the device's next available
        // position is past them (in the next lap when it crosses the end).
        int avail = usedPosition + total;
        bool availWrap = usedWrap;
        if (avail >= _descNum)
        {
            avail -= _descNum;
            availWrap = !availWrap;
        }

        return new PackedRecovery(new PackedBase((ushort)avail, availWrap, usedPosition, usedWrap), copies[..(total * PackedRingLayoutSize)], lengths);
    }

    public void ChainTaken(ushort head)
    {
        // A packed ring reports PackedChainTaken, with the descriptors to copy.
    }

    public void PackedChainTaken(ushort bufferId, ReadOnlySpan<byte> descriptors, ReadOnlySpan<byte> wrapped)
    {
        if (bufferId >= _descNum || _headOfId[bufferId] != None)
        {
            return; // resubmitted: tracked since Recover
        }

        int count = (descriptors.Length + wrapped.Length) / PackedRingLayoutSize;
        Span<byte> queue = Queue();
        ushort head = _freeHead;
        ushort entry = head;
        for (int k = 0; k < count; k++)
        {
            if (entry >= _descNum)
            {
                return; // cannot happen: a ring never has more descriptors in flight than entries
            }

            ReadOnlySpan<byte> descriptor = k * PackedRingLayoutSize < descriptors.Length
                ? descriptors.Slice(k * PackedRingLayoutSize, PackedRingLayoutSize)
                : wrapped.Slice((k * PackedRingLayoutSize) - descriptors.Length, PackedRingLayoutSize);
            Span<byte> e = Entry(queue, entry);
            Write16(e, IdField, BinaryPrimitives.ReadUInt16LittleEndian(descriptor[12..]));
            Write16(e, IdField + 2, BinaryPrimitives.ReadUInt16LittleEndian(descriptor[14..]));
            BinaryPrimitives.WriteUInt32LittleEndian(e[(DescriptorField + 4)..], BinaryPrimitives.ReadUInt32LittleEndian(descriptor[8..]));
            BinaryPrimitives.WriteUInt64LittleEndian(e[(DescriptorField + 8)..], BinaryPrimitives.ReadUInt64LittleEndian(descriptor));
            if (k + 1 < count)
            {
                entry = _next[entry];
            }
        }

        Span<byte> first = Entry(queue, head);
        Write16(first, LastField, entry);
        Write16(first, NumField, (ushort)count);
        BinaryPrimitives.WriteUInt64LittleEndian(first[CounterField..], ++_counter);
        // The flag last, with release: a head marked in flight always has its copies and count.
        Volatile.Write(ref first[InFlightField], 1);
        _freeHead = _next[entry];
        _headOfId[bufferId] = head;
        Write16(queue, FreeHeadOffset, _freeHead);
        Write16(queue, OldFreeHeadOffset, _freeHead);
    }

    public void ChainUsed(ushort head)
    {
        ushort bufferId = head;
        if (bufferId >= _descNum || _headOfId[bufferId] == None)
        {
            return;
        }

        Span<byte> queue = Queue();
        ushort entry = _headOfId[bufferId];
        Span<byte> e = Entry(queue, entry);
        Volatile.Write(ref e[InFlightField], 2);
        _batch[_batchCount++] = bufferId;
        int next = _usedPosition + Read16(e, NumField);
        if (next >= _descNum)
        {
            next -= _descNum;
            _usedWrap = !_usedWrap;
        }

        _usedPosition = (ushort)next;
        queue[UsedWrapOffset] = _usedWrap ? (byte)1 : (byte)0;
        Write16(queue, UsedIdxOffset, _usedPosition);
    }

    public void UsedPublished(ushort usedIdx)
    {
        Span<byte> queue = Queue();
        for (int i = 0; i < _batchCount; i++)
        {
            ushort bufferId = _batch[i];
            ushort head = _headOfId[bufferId];
            Span<byte> e = Entry(queue, head);
            ushort last = Read16(e, LastField);
            e[InFlightField] = 0;
            if (last < _descNum)
            {
                // The chain's entries go back to the front of the free list.
                _next[last] = _freeHead;
                Write16(Entry(queue, last), NextField, _freeHead);
                _freeHead = head;
            }

            _headOfId[bufferId] = None;
        }

        _batchCount = 0;
        Commit(queue);
    }

    /// <summary>Starts the region over: no chain in flight, every entry free, used position and wrap from <paramref name="start"/>.</summary>
    private void StartFresh(PackedBase start)
    {
        Span<byte> queue = Queue();
        queue[..RegionSize(_descNum)].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(queue[FeaturesOffset..], PackedMark);
        Write16(queue, VersionOffset, 1);
        Write16(queue, DescNumOffset, _descNum);
        for (int entry = 0; entry < _descNum; entry++)
        {
            _next[entry] = entry + 1 < _descNum ? (ushort)(entry + 1) : None;
            Write16(Entry(queue, entry), NextField, _next[entry]);
        }

        Array.Fill(_headOfId, None);
        _freeHead = 0;
        _batchCount = 0;
        _usedPosition = start.UsedPosition;
        _usedWrap = start.UsedWrapCounter;
        Commit(queue);
    }

    /// <summary>The used position and the free list as they are now are what a later back end starts from.</summary>
    private void Commit(Span<byte> queue)
    {
        Write16(queue, FreeHeadOffset, _freeHead);
        Write16(queue, OldFreeHeadOffset, _freeHead);
        queue[UsedWrapOffset] = _usedWrap ? (byte)1 : (byte)0;
        Write16(queue, UsedIdxOffset, _usedPosition);
        // The committed position last: until it is written, a later back end settles the batch by the ring.
        Thread.MemoryBarrier();
        queue[OldUsedWrapOffset] = _usedWrap ? (byte)1 : (byte)0;
        Write16(queue, OldUsedIdxOffset, _usedPosition);
    }

    /// <summary>Whether the descriptor at <paramref name="position"/> has USED in lap <paramref name="wrap"/> (made used by a device).</summary>
    private static bool IsUsedInLap(ReadOnlySpan<byte> ring, ushort position, bool wrap)
    {
        int offset = (position * PackedRingLayoutSize) + 14;
        if (offset + 2 > ring.Length)
        {
            return false;
        }

        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(ring[offset..]);
        return ((flags & (1 << 15)) != 0) == wrap;
    }

    /// <summary>Writes an entry's descriptor copy into <paramref name="d"/> in the ring's layout (addr, len, id, flags).</summary>
    private static void WriteDescriptor(Span<byte> entry, Span<byte> d)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(d, BinaryPrimitives.ReadUInt64LittleEndian(entry[(DescriptorField + 8)..]));
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], BinaryPrimitives.ReadUInt32LittleEndian(entry[(DescriptorField + 4)..]));
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], Read16(entry, IdField));
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], Read16(entry, IdField + 2));
    }

    private Span<byte> Queue() => _region.QueueSpan(_queueIndex);

    private static Span<byte> Entry(Span<byte> queue, int entry) => queue.Slice(HeaderSize + (EntrySize * entry), EntrySize);

    private static ushort Read16(ReadOnlySpan<byte> span, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(span[offset..]);

    private static ulong Read64(ReadOnlySpan<byte> span, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(span[offset..]);

    private static void Write16(Span<byte> span, int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(span[offset..], value);
}
