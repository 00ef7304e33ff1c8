using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Fuzz.Targets;

/// <summary>
/// <c>ring</c>: the device side of a split virtqueue over rings and descriptors of arbitrary bytes.
/// Pops every chain (<see cref="SplitVirtqueue.TryPopChain"/>), walks it twice (buffer by buffer,
/// then <see cref="DescriptorChain.TryGather"/>), reads its readable bytes with a
/// <see cref="ChainReader"/>, writes into its writable ones with a <see cref="ChainWriter"/> and
/// returns it on the used ring.
/// </summary>
/// <remarks>
/// <para>Input: byte 0 picks the queue size (2 to 256), EVENT_IDX, indirect descriptors, publishing
/// after each chain and an over-long written length; byte 1 how many bytes to write per chain (255:
/// all); byte 2 what a device or a vhost-user back end does around the pops: bit 0 disables
/// notifications while popping and re-enables them after (popping again while that says more came),
/// bit 1 restores the queue at a next-available and next-used index of two u16s that follow (a
/// front end's SET_VRING_BASE), bit 2 resubmits the heads of a count byte and that many u16s that
/// follow (an in-flight region's); the rest is copied over guest memory from address 0, where the
/// descriptor table, the available ring and the used ring lie back to back (so the first 16 * size
/// bytes are the descriptors). Memory is a 16 KiB region at 0 and a 4 KiB one at 64 KiB, with a
/// hole between.</para>
/// <para>Invariants: nothing throws; at most <c>size</c> chains are popped from the available ring,
/// and a resubmission list is refused (the queue broken) or popped first, in its order; each buffer lies inside a
/// region at the address its descriptor names, and the walk is bounded; both walks of a chain agree;
/// the reader reads exactly the readable bytes and the writer writes at most the writable ones; a
/// failed walk breaks the queue (Broken raised, nothing more popped); the used ring holds exactly the
/// elements returned, each length capped at the chain's writable bytes; no byte outside the writable
/// buffers and the used ring changes.</para>
/// </remarks>
internal sealed class RingTarget : IFuzzTarget
{
    private const ulong LowSize = 0x4000, HighStart = 0x10000, HighSize = 0x1000;
    private const int MaxSegments = 64;

    private readonly GuestMemory _memory;
    private readonly MemoryGuard _guard;
    private readonly SplitVirtqueue _queue;
    private readonly IoSegment[] _segments = new IoSegment[MaxSegments];
    private readonly List<(ulong Address, int Length, bool Writable, nint Host)> _walked = new(MaxSegments);
    private readonly List<(ushort Head, uint Length)> _used = new(256);
    private readonly ushort[] _resubmit = new ushort[300];
    private readonly byte[] _scratch = new byte[LowSize + HighSize];
    private readonly byte[] _pattern = new byte[LowSize + HighSize];
    private int _broken;
    private int _gathered;
    private ulong _usedStart, _usedEnd;
    private bool _scribbled; // a chain's writable buffer overlaps the used ring
    private ushort _usedIdxBefore;
    private int _gatheredReadable;

    public RingTarget()
    {
        _memory = new GuestMemory([
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), LowSize),
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(HighStart), HighSize)]);
        _guard = new MemoryGuard(_memory);
        _queue = new SplitVirtqueue(_memory, 0, 256);
        _queue.Broken += (_, _) => _broken++;
        _pattern.AsSpan().Fill(0xD7);
    }

    public string Name => "ring";

    public void Host(Action loop) => loop();

    public void Run(ReadOnlySpan<byte> input)
    {
        var reader = new FuzzInput(input);
        byte mode = reader.Byte();
        byte writeAmount = reader.Byte();
        byte ops = reader.Byte();
        ushort size = (ushort)(2 << (mode & 7));
        ushort nextAvail = 0, nextUsed = 0;
        if ((ops & 2) != 0)
        {
            nextAvail = reader.UInt16();
            nextUsed = reader.UInt16();
        }

        int resubmitCount = 0;
        if ((ops & 4) != 0)
        {
            resubmitCount = Math.Min((int)reader.Byte(), _resubmit.Length);
            for (int i = 0; i < resubmitCount; i++)
            {
                _resubmit[i] = reader.UInt16();
            }
        }

        bool publishEach = (mode & 0x20) != 0, overstate = (mode & 0x40) != 0;

        // The guest's memory: the input, then zeros.
        _memory.TryGetSpan(new GuestAddress(0), (int)LowSize, out Span<byte> low);
        _memory.TryGetSpan(new GuestAddress(HighStart), (int)HighSize, out Span<byte> high);
        reader.Fill(low);
        reader.Fill(high);

        var layout = new SplitRingLayout(size);
        ulong avail = (ulong)layout.DescriptorTableSize;
        ulong used = (avail + (ulong)layout.AvailRingSize + 3) & ~3UL;
        _queue.Reset();
        _queue.Size = size;
        _queue.DescriptorTable = new GuestAddress(0);
        _queue.AvailRing = new GuestAddress(avail);
        _queue.UsedRing = new GuestAddress(used);
        _queue.EventIdx = (mode & 0x08) != 0;
        _queue.IndirectDescriptors = (mode & 0x10) != 0;
        _broken = 0;
        _used.Clear();

        _guard.Snapshot();
        _guard.AllowWrite(used, (ulong)layout.UsedRingSize);
        _usedStart = used;
        _usedEnd = used + (ulong)layout.UsedRingSize;
        _scribbled = false;
        _usedIdxBefore = BinaryPrimitives.ReadUInt16LittleEndian(low[((int)used + SplitRingLayout.UsedIdxOffset)..]);
        QueueError activateError;
        bool active = (ops & 2) != 0
            ? _queue.TryRestoreState(_queue.SaveState() with { NextAvail = nextAvail, NextUsed = nextUsed, Ready = true }, out activateError)
            : _queue.TryActivate(out activateError);
        Invariant.Check(active && _broken == 0, $"a well-placed ring of size {size} did not activate ({activateError})");

        bool resubmitted = resubmitCount == 0 || _queue.TryResubmit(_resubmit.AsSpan(0, resubmitCount), out _);
        Invariant.Check(resubmitted || (_queue.Error != QueueError.None && _broken == 1), $"a refused resubmission of {resubmitCount} heads left the queue unbroken ({_queue.Error})");
        Invariant.Check(!resubmitted || _queue.ResubmitPending == resubmitCount, $"{_queue.ResubmitPending} heads pending after resubmitting {resubmitCount}");
        int popped = 0, fromRing = 0;
        bool walkFailed = false;
        bool notifications = (ops & 1) != 0;
        do
        {
            if (notifications)
            {
                _queue.DisableNotification();
            }

            while (!walkFailed && _queue.TryPopChain(out DescriptorChain chain))
            {
                if (popped < resubmitCount && resubmitted)
                {
                    Invariant.Check(chain.HeadIndex == _resubmit[popped], $"pop {popped} gave head {chain.HeadIndex}, resubmitted {_resubmit[popped]}");
                }
                else
                {
                    Invariant.Check(++fromRing <= size, $"popped {fromRing} chains off the available ring of a ring of size {size}");
                }

                popped++;
                if (!Walk(ref chain, size))
                {
                    walkFailed = true;
                    break;
                }

                uint written = Transfer(ref chain, writeAmount);
                uint claimed = overstate ? written + 4096 : written;
                if (_queue.AddUsed(chain.HeadIndex, claimed))
                {
                    _used.Add((chain.HeadIndex, (uint)Math.Min(claimed, chain.WritableLength)));
                }

                if (publishEach)
                {
                    _queue.PublishUsed();
                }
            }
        }
        while (notifications && !walkFailed && _queue.EnableNotification() && fromRing <= size);

        _queue.PublishUsed();
        if (walkFailed)
        {
            Invariant.Check(_queue.Error != QueueError.None && _broken == 1, $"a failed walk left the queue unbroken (error {_queue.Error}, Broken raised {_broken} times)");
            Invariant.Check(!_queue.TryPopChain(out _), "a broken queue popped a chain");
        }

        Invariant.Check(_broken <= 1, $"Broken raised {_broken} times");
        _guard.Verify("the ring walk");
        CheckUsedRing(used, layout, nextUsed);
    }

    /// <summary>Walks the chain buffer by buffer, then again with TryGather; false when it is malformed.</summary>
    private bool Walk(ref DescriptorChain chain, ushort size)
    {
        _walked.Clear();
        int steps = 0;
        ulong readable = 0, writable = 0;
        while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
        {
            // Each table entry at most once, the ring's table and one indirect table (at most all of memory).
            Invariant.Check(++steps <= size + (int)((LowSize + HighSize) / 16), $"walked {steps} buffers of one chain");
            GuestMemoryRegion? region = _memory.FindRegion(buffer.Address);
            ulong address = buffer.Address.Value;
            Invariant.Check(
                buffer.Length == 0 || (region is not null && address - region.Start.Value <= region.Size - (ulong)buffer.Length
                    && buffer.Segment.Address == region.HostAddress + (nint)(address - region.Start.Value)),
                $"buffer at 0x{address:x} (+{buffer.Length}) is not where its descriptor says in guest memory");
            _walked.Add((address, buffer.Length, buffer.IsWriteOnly, buffer.Length == 0 ? 0 : buffer.Segment.Address));
            if (buffer.IsWriteOnly)
            {
                writable += (ulong)buffer.Length;
                _guard.AllowWrite(address, (ulong)buffer.Length);
                _scribbled |= buffer.Length != 0 && address < _usedEnd && _usedStart < address + (ulong)buffer.Length;
            }
            else
            {
                Invariant.Check(writable == 0, "a readable buffer came after a writable one");
                readable += (ulong)buffer.Length;
            }

        }

        if (chain.Error != QueueError.None)
        {
            return false;
        }

        Invariant.Check(chain.ReadableLength == readable && chain.WritableLength == writable && chain.Count == _walked.Count,
            $"chain totals {chain.ReadableLength}/{chain.WritableLength}/{chain.Count} differ from the buffers walked {readable}/{writable}/{_walked.Count}");
        chain.Reset();
        Invariant.Check(chain.TryGather(_segments, out int readableCount, out int count), $"the second walk of a chain failed ({chain.Error})");
        int nonEmpty = 0, nonEmptyReadable = 0;
        foreach (var walked in _walked)
        {
            if (walked.Length == 0)
            {
                continue;
            }

            if (nonEmpty < MaxSegments)
            {
                IoSegment segment = _segments[nonEmpty];
                Invariant.Check(segment.Address == walked.Host && segment.Length == walked.Length, $"TryGather segment {nonEmpty} differs from the walk");
            }

            nonEmpty++;
            nonEmptyReadable += walked.Writable ? 0 : 1;
        }

        Invariant.Check(count == nonEmpty && readableCount == nonEmptyReadable, $"TryGather counted {count}/{readableCount}, the walk {nonEmpty}/{nonEmptyReadable}");
        Invariant.Check(chain.ReadableLength == readable && chain.WritableLength == writable, "the second walk's totals differ");
        _gathered = count;
        _gatheredReadable = readableCount;
        return true;
    }

    /// <summary>Reads every readable byte, writes the amount asked into the writable ones; returns the bytes written.</summary>
    private uint Transfer(ref DescriptorChain chain, byte writeAmount)
    {
        // Past MaxSegments the segments were counted, not stored: the transfer covers the stored ones.
        int count = Math.Min(_gathered, MaxSegments);
        int readableCount = Math.Min(_gatheredReadable, count);
        var chainReader = new ChainReader(_segments.AsSpan(0, readableCount));
        long toRead = chainReader.Remaining;
        int read = chainReader.Read(_scratch);
        Invariant.Check(read == Math.Min(toRead, _scratch.Length) && (toRead > _scratch.Length || chainReader.Remaining == 0), $"the reader read {read} of {toRead} bytes");

        var writer = new ChainWriter(_segments.AsSpan(readableCount, count - readableCount));
        long room = writer.Remaining;
        int want = writeAmount == 255 ? _pattern.Length : writeAmount * 16;
        int wrote = writer.Write(_pattern.AsSpan(0, want));
        Invariant.Check(wrote == Math.Min(want, room) && writer.Written == wrote && (ulong)room <= chain.WritableLength, $"the writer wrote {wrote} of {want} bytes into {room} (chain writable {chain.WritableLength})");
        return (uint)wrote;
    }

    private void CheckUsedRing(ulong used, SplitRingLayout layout, ushort firstUsed)
    {
        // A writable buffer over the used ring lets the "guest" scribble on it: nothing to compare then.
        if (_scribbled || _used.Count == 0)
        {
            return;
        }

        _memory.TryGetSpan(new GuestAddress(used), layout.UsedRingSize, out Span<byte> ring);
        ushort idx = BinaryPrimitives.ReadUInt16LittleEndian(ring[SplitRingLayout.UsedIdxOffset..]);
        // A broken ring publishes nothing (DEVICE_NEEDS_RESET): elements returned before the break
        // are written, but used->idx need not have moved past them.
        Invariant.Check(_queue.NextUsed == (ushort)(firstUsed + _used.Count), $"NextUsed {_queue.NextUsed} after {_used.Count} chains returned from {firstUsed}");
        Invariant.Check(idx == _queue.NextUsed || (_queue.Error != QueueError.None && (idx == _queue.PublishedUsed || idx == _usedIdxBefore)), $"used idx {idx} (NextUsed {_queue.NextUsed}, published {_queue.PublishedUsed}, error {_queue.Error}) after {_used.Count} chains returned from {firstUsed}");
        for (int i = Math.Max(0, _used.Count - layout.QueueSize); i < _used.Count; i++)
        {
            Span<byte> element = ring.Slice(layout.UsedElementOffset((ushort)(firstUsed + i)), SplitRingLayout.UsedElementSize);
            uint head = BinaryPrimitives.ReadUInt32LittleEndian(element), length = BinaryPrimitives.ReadUInt32LittleEndian(element[4..]);
            Invariant.Check(head == _used[i].Head && length == _used[i].Length, $"used element {i} is {head}/{length}, returned {_used[i].Head}/{_used[i].Length}");
        }
    }

    public void Dispose() => _memory.Dispose();
}
