using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Testing;

/// <summary>
/// Plays the guest side of one split virtqueue the way Linux's virtio_ring does: a free list of
/// descriptors, indirect tables when negotiated and the chain has more than one buffer, the
/// avail idx published with a release store, kick decisions from avail_event or the used flags,
/// used_event moved as buffers are consumed. It also writes raw, hostile rings for tests.
/// </summary>
/// <remarks>
/// Not thread-safe: one thread (a test's) calls its members, or hands it over with a barrier. The
/// device on the other side may run on any thread; the ring fields carry the ordering. Methods that
/// write raw descriptors or indices build hostile rings; the others keep the rings valid.
/// </remarks>
public sealed class GuestDriver : IDisposable
{
    private const ushort DescFlagNext = 1, DescFlagWrite = 2, DescFlagIndirect = 4;

    private readonly bool _ownsMemory;
    private readonly Stack<int> _freeBlocks = new();
    private readonly ulong _heapBase;
    private readonly List<int>[] _blocksByHead;
    private ushort _freeHead;
    private ushort _availShadow;
    private ushort _availAtLastKick;
    private ushort _lastUsed;
    private bool _callbacksEnabled = true;

    /// <summary>Creates a driver with its own anonymous guest memory and lays out one queue in it.</summary>
    /// <param name="queueSize">The queue size (a power of two).</param>
    /// <param name="memorySize">Guest memory bytes (rings live in the first MiB, buffers above).</param>
    /// <param name="blockSize">The size of each buffer block; a buffer is at most this long.</param>
    /// <param name="eventIdx">Whether VIRTIO_F_EVENT_IDX is negotiated.</param>
    /// <param name="indirect">Whether VIRTIO_F_INDIRECT_DESC is negotiated.</param>
    /// <param name="startIndex">Both ring indices start here (to test 16-bit wrap-around).</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "Both constructors ship in the first release; the second starts with a required GuestMemory, so no call binds to both.")]
    public GuestDriver(ushort queueSize = 16, ulong memorySize = 16 << 20, int blockSize = 4096, bool eventIdx = false, bool indirect = false, ushort startIndex = 0)
        : this(GuestMemory.CreateAnonymous(memorySize), ownsMemory: true, new GuestAddress(0x1000), queueSize, 1 << 20, blockSize, eventIdx, indirect, startIndex)
    {
    }

    /// <summary>Lays out a queue at <paramref name="ringBase"/> in memory owned by the caller.</summary>
    /// <param name="memory">Guest memory.</param>
    /// <param name="ringBase">Where the descriptor table starts; the rings follow it (4 KiB aligned).</param>
    /// <param name="queueSize">The queue size.</param>
    /// <param name="heapBase">Where buffer blocks start.</param>
    /// <param name="blockSize">Bytes per buffer block.</param>
    /// <param name="eventIdx">Whether VIRTIO_F_EVENT_IDX is negotiated.</param>
    /// <param name="indirect">Whether VIRTIO_F_INDIRECT_DESC is negotiated.</param>
    /// <param name="startIndex">Both ring indices start here.</param>
    /// <param name="heapSize">Bytes of heap; all memory above <paramref name="heapBase"/> when 0.</param>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("ApiDesign", "RS0026:Do not add multiple public overloads with optional parameters", Justification = "Both constructors ship in the first release; the second starts with a required GuestMemory, so no call binds to both.")]
    public GuestDriver(GuestMemory memory, GuestAddress ringBase, ushort queueSize, ulong heapBase, int blockSize, bool eventIdx, bool indirect, ushort startIndex = 0, ulong heapSize = 0)
        : this(memory, ownsMemory: false, ringBase, queueSize, heapBase, blockSize, eventIdx, indirect, startIndex, heapSize)
    {
    }

    private GuestDriver(GuestMemory memory, bool ownsMemory, GuestAddress ringBase, ushort queueSize, ulong heapBase, int blockSize, bool eventIdx, bool indirect, ushort startIndex, ulong heapSize = 0)
    {
        Memory = memory;
        _ownsMemory = ownsMemory;
        QueueSize = queueSize;
        Layout = new SplitRingLayout(queueSize);
        BlockSize = blockSize;
        EventIdx = eventIdx;
        Indirect = indirect;
        DescriptorTable = ringBase;
        AvailRing = new GuestAddress(ringBase.Value + (uint)Layout.DescriptorTableSize);
        UsedRing = new GuestAddress(AlignUp(AvailRing.Value + (uint)Layout.AvailRingSize, 4096));
        _heapBase = heapBase;
        GuestMemoryRegion last = memory.Regions[^1];
        ulong heapEnd = heapSize != 0 ? heapBase + heapSize : last.Start.Value + last.Size;
        int blocks = (int)Math.Min((heapEnd - heapBase) / (ulong)blockSize, 1 << 20);
        for (int i = blocks - 1; i >= 0; i--)
        {
            _freeBlocks.Push(i);
        }

        _blocksByHead = new List<int>[queueSize];
        for (int i = 0; i < queueSize; i++)
        {
            _blocksByHead[i] = new List<int>();
        }

        // Zero the rings, chain the free list, and start both indices at startIndex.
        Span<byte> table = Span(DescriptorTable, Layout.DescriptorTableSize);
        table.Clear();
        for (ushort i = 0; i < queueSize; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(table[(SplitRingLayout.DescriptorOffset(i) + 14)..], (ushort)(i + 1));
        }

        Span(AvailRing, Layout.AvailRingSize).Clear();
        Span(UsedRing, Layout.UsedRingSize).Clear();
        NumFree = queueSize;
        _freeHead = 0;
        _availShadow = _availAtLastKick = _lastUsed = startIndex;
        WriteUInt16(new GuestAddress(AvailRing.Value + SplitRingLayout.AvailIdxOffset), startIndex);
        WriteUInt16(new GuestAddress(UsedRing.Value + SplitRingLayout.UsedIdxOffset), startIndex);
        if (eventIdx)
        {
            WriteUInt16(UsedEventAddress, startIndex);
        }
    }

    /// <summary>The guest memory.</summary>
    public GuestMemory Memory { get; }

    /// <summary>The queue size.</summary>
    public ushort QueueSize { get; }

    /// <summary>Bytes per buffer block.</summary>
    public int BlockSize { get; }

    /// <summary>Whether VIRTIO_F_EVENT_IDX is negotiated.</summary>
    public bool EventIdx { get; }

    /// <summary>Whether VIRTIO_F_INDIRECT_DESC is negotiated.</summary>
    public bool Indirect { get; }

    /// <summary>The descriptor table's address.</summary>
    public GuestAddress DescriptorTable { get; }

    /// <summary>The available ring's address.</summary>
    public GuestAddress AvailRing { get; }

    /// <summary>The used ring's address.</summary>
    public GuestAddress UsedRing { get; }

    /// <summary>Free descriptors.</summary>
    public int NumFree { get; private set; }

    /// <summary>The avail idx the driver will publish next (its shadow).</summary>
    public ushort AvailIndex => _availShadow;

    /// <summary>The next used index the driver will consume.</summary>
    public ushort LastUsedIndex => _lastUsed;

    /// <summary>Chains made available and not yet consumed from the used ring.</summary>
    public int Outstanding { get; private set; }

    /// <summary>Where the ring fields lie for <see cref="QueueSize"/>.</summary>
    public SplitRingLayout Layout { get; }

    private GuestAddress UsedEventAddress => new(AvailRing.Value + (uint)Layout.UsedEventOffset);

    private GuestAddress AvailEventAddress => new(UsedRing.Value + (uint)Layout.AvailEventOffset);

    /// <summary>A device-side queue over the same rings, activated, with the driver's start index.</summary>
    /// <param name="logger">The queue's logger.</param>
    /// <returns>The queue.</returns>
    public SplitVirtqueue CreateDeviceQueue(ILogger? logger = null)
    {
        var queue = new SplitVirtqueue(Memory, 0, QueueSize, logger);
        if (!queue.TryRestoreState(new SplitVirtqueueState(QueueSize, DescriptorTable, AvailRing, UsedRing, _availShadow, _lastUsed, true, EventIdx, Indirect), out QueueError error))
        {
            throw new InvalidOperationException($"The device queue did not activate: {error}");
        }

        return queue;
    }

    /// <summary>Configures <paramref name="queue"/> with this driver's layout (what a transport does from the driver's register writes).</summary>
    /// <param name="queue">A device queue that is not ready.</param>
    public void Configure(SplitVirtqueue queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        queue.Size = QueueSize;
        queue.DescriptorTable = DescriptorTable;
        queue.AvailRing = AvailRing;
        queue.UsedRing = UsedRing;
    }

    /// <summary>
    /// Adds a chain of buffers (readable ones first) and puts its head on the avail ring, not yet
    /// published (see <see cref="Kick"/>). Readable buffers are filled with <paramref name="fill"/>.
    /// </summary>
    /// <param name="buffers">The buffers.</param>
    /// <param name="useIndirect">Force an indirect table (true) or a direct chain (false); by default as Linux: indirect when negotiated and more than one buffer.</param>
    /// <param name="fill">The byte written into readable buffers.</param>
    /// <returns>The head index, or -1 when there are not enough free descriptors or blocks.</returns>
    public int TryAddChain(ReadOnlySpan<BufferSpec> buffers, bool? useIndirect = null, byte fill = 0xA5)
    {
        if (buffers.Length == 0)
        {
            throw new ArgumentException("A chain needs at least one buffer.", nameof(buffers));
        }

        bool indirect = useIndirect ?? (Indirect && buffers.Length > 1);
        int needDescriptors = indirect ? 1 : buffers.Length;
        int needBlocks = buffers.Length + (indirect ? 1 : 0);
        if (NumFree < needDescriptors || _freeBlocks.Count < needBlocks || (indirect && buffers.Length * 16 > BlockSize))
        {
            return -1;
        }

        ushort head = _freeHead;
        List<int> owned = _blocksByHead[head];
        owned.Clear();
        if (indirect)
        {
            int tableBlock = _freeBlocks.Pop();
            owned.Add(tableBlock);
            GuestAddress table = BlockAddress(tableBlock);
            for (int i = 0; i < buffers.Length; i++)
            {
                GuestAddress data = AllocateBuffer(buffers[i], owned, fill);
                ushort flags = (ushort)((buffers[i].Writable ? DescFlagWrite : 0) | (i + 1 < buffers.Length ? DescFlagNext : 0));
                WriteDescriptorAt(table, i, data.Value, (uint)buffers[i].Length, flags, (ushort)(i + 1));
            }

            ushort slot = TakeFreeDescriptor();
            WriteDescriptor(slot, table.Value, (uint)(16 * buffers.Length), DescFlagIndirect, 0);
        }
        else
        {
            for (int i = 0; i < buffers.Length; i++)
            {
                GuestAddress data = AllocateBuffer(buffers[i], owned, fill);
                ushort slot = TakeFreeDescriptor();
                ushort flags = (ushort)((buffers[i].Writable ? DescFlagWrite : 0) | (i + 1 < buffers.Length ? DescFlagNext : 0));
                // The next descriptor is the new free head (Linux links chains through the free list).
                WriteDescriptor(slot, data.Value, (uint)buffers[i].Length, flags, i + 1 < buffers.Length ? _freeHead : (ushort)0);
            }
        }

        PutOnAvailRing(head);
        Outstanding++;
        return head;
    }

    /// <summary>Adds a chain and throws when the queue is full (for tests that know it is not).</summary>
    /// <param name="buffers">The buffers.</param>
    /// <returns>The head index.</returns>
    public ushort AddChain(params BufferSpec[] buffers)
    {
        int head = TryAddChain(buffers);
        return head >= 0 ? (ushort)head : throw new InvalidOperationException("The queue is full.");
    }

    /// <summary>
    /// Publishes the heads added since the last kick (release store of avail->idx) and says
    /// whether the device wants a notification (virtqueue_kick_prepare).
    /// </summary>
    /// <returns>True when the driver must notify the device.</returns>
    public bool Kick()
    {
        ushort old = _availAtLastKick;
        ushort now = _availShadow;
        Volatile.Write(ref RingField(new GuestAddress(AvailRing.Value + SplitRingLayout.AvailIdxOffset)), now);
        _availAtLastKick = now;
        Interlocked.MemoryBarrier();
        if (EventIdx)
        {
            ushort availEvent = Volatile.Read(ref RingField(AvailEventAddress));
            return SplitVirtqueue.NeedEvent(availEvent, now, old);
        }

        return (Volatile.Read(ref RingField(UsedRing)) & 1) == 0;
    }

    /// <summary>
    /// Takes the next used element, frees its descriptors and blocks (detach_buf), and with
    /// callbacks enabled moves used_event past it.
    /// </summary>
    /// <param name="head">The head the device returned.</param>
    /// <param name="length">The length the device reported.</param>
    /// <returns>False when the device has used nothing new.</returns>
    public bool TryGetUsed(out ushort head, out uint length)
    {
        ushort usedIdx = Volatile.Read(ref RingField(new GuestAddress(UsedRing.Value + SplitRingLayout.UsedIdxOffset)));
        if (usedIdx == _lastUsed)
        {
            head = 0;
            length = 0;
            return false;
        }

        Span<byte> element = Span(new GuestAddress(UsedRing.Value + (uint)Layout.UsedElementOffset(_lastUsed)), SplitRingLayout.UsedElementSize);
        uint id = BinaryPrimitives.ReadUInt32LittleEndian(element);
        length = BinaryPrimitives.ReadUInt32LittleEndian(element[4..]);
        if (id >= QueueSize)
        {
            throw new InvalidOperationException($"The device returned head {id}, outside the queue.");
        }

        head = (ushort)id;
        DetachChain(head);
        _lastUsed++;
        Outstanding--;
        if (EventIdx && _callbacksEnabled)
        {
            Volatile.Write(ref RingField(UsedEventAddress), _lastUsed);
        }

        return true;
    }

    /// <summary>Asks for used-buffer interrupts again: clears NO_INTERRUPT or moves used_event to the next used index.</summary>
    public void EnableCallbacks()
    {
        _callbacksEnabled = true;
        if (EventIdx)
        {
            Volatile.Write(ref RingField(UsedEventAddress), _lastUsed);
        }
        else
        {
            Volatile.Write(ref RingField(AvailRing), 0);
        }

        Interlocked.MemoryBarrier();
    }

    /// <summary>Asks for no used-buffer interrupts: sets NO_INTERRUPT (without EVENT_IDX the only way).</summary>
    public void DisableCallbacks()
    {
        _callbacksEnabled = false;
        if (!EventIdx)
        {
            Volatile.Write(ref RingField(AvailRing), 1);
        }
    }

    /// <summary>Sets used_event directly (for EVENT_IDX tests).</summary>
    /// <param name="value">The used index after which the driver wants an interrupt.</param>
    public void SetUsedEvent(ushort value) => Volatile.Write(ref RingField(UsedEventAddress), value);

    /// <summary>Reads the device's avail_event.</summary>
    /// <returns>The avail index after which the device wants a notification.</returns>
    public ushort ReadAvailEvent() => Volatile.Read(ref RingField(AvailEventAddress));

    /// <summary>Reads the device's used ring flags.</summary>
    /// <returns>The flags; bit 0 is VIRTQ_USED_F_NO_NOTIFY.</returns>
    public ushort ReadUsedFlags() => Volatile.Read(ref RingField(UsedRing));

    /// <summary>Writes one raw descriptor into the queue's table, as a hostile driver would.</summary>
    /// <param name="index">The descriptor's index in the table (not checked against the queue size).</param>
    /// <param name="address">The buffer's guest address.</param>
    /// <param name="length">The buffer's length.</param>
    /// <param name="flags">VIRTQ_DESC_F_NEXT (1), WRITE (2), INDIRECT (4), or anything else.</param>
    /// <param name="next">The next descriptor's index.</param>
    public void WriteDescriptor(ushort index, ulong address, uint length, ushort flags, ushort next) =>
        WriteDescriptorAt(DescriptorTable, index, address, length, flags, next);

    /// <summary>Writes one raw descriptor into a table at <paramref name="table"/> (an indirect table, say).</summary>
    /// <param name="table">The table's guest address.</param>
    /// <param name="index">The entry.</param>
    /// <param name="address">The buffer's guest address.</param>
    /// <param name="length">The buffer's length.</param>
    /// <param name="flags">The descriptor flags.</param>
    /// <param name="next">The next descriptor's index.</param>
    public void WriteDescriptorAt(GuestAddress table, int index, ulong address, uint length, ushort flags, ushort next)
    {
        Span<byte> d = Span(new GuestAddress(table.Value + (16u * (uint)index)), 16);
        BinaryPrimitives.WriteUInt64LittleEndian(d, address);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], next);
    }

    /// <summary>Puts a raw head on the avail ring (not yet published), bypassing the free list.</summary>
    /// <param name="head">The head index written into the next avail ring entry (not checked).</param>
    public void PutOnAvailRing(ushort head)
    {
        WriteUInt16(new GuestAddress(AvailRing.Value + (uint)Layout.AvailEntryOffset(_availShadow)), head);
        _availShadow++;
    }

    /// <summary>Writes avail->idx directly, as a hostile driver could.</summary>
    /// <param name="value">The new avail idx, published at once.</param>
    public void SetAvailIndex(ushort value)
    {
        _availShadow = value;
        Volatile.Write(ref RingField(new GuestAddress(AvailRing.Value + SplitRingLayout.AvailIdxOffset)), value);
    }

    /// <summary>The guest address of buffer block <paramref name="block"/> (for hand-made chains).</summary>
    /// <param name="block">The block's number, from 0.</param>
    /// <returns>Its guest address.</returns>
    public GuestAddress BlockAddress(int block) => new(_heapBase + ((ulong)block * (ulong)BlockSize));

    /// <summary>A span over guest memory; throws when the range is not guest memory.</summary>
    /// <param name="address">The start.</param>
    /// <param name="length">The length.</param>
    /// <returns>The bytes, read and written in place.</returns>
    public Span<byte> Span(GuestAddress address, int length) =>
        Memory.TryGetSpan(address, length, out Span<byte> span) ? span : throw new ArgumentOutOfRangeException(nameof(address), $"{address}+{length} is not guest memory.");

    /// <summary>Reads the buffers of chain <paramref name="head"/> in order, as they are in guest memory now.</summary>
    /// <param name="head">A head the driver added and has not yet consumed.</param>
    /// <returns>Address, length and direction of each buffer.</returns>
    public IReadOnlyList<(GuestAddress Address, int Length, bool Writable)> ChainBuffers(ushort head)
    {
        var result = new List<(GuestAddress, int, bool)>();
        ushort index = head;
        GuestAddress table = DescriptorTable;
        int limit = QueueSize;
        while (limit-- > 0)
        {
            Span<byte> d = Span(new GuestAddress(table.Value + (16u * index)), 16);
            ulong address = BinaryPrimitives.ReadUInt64LittleEndian(d);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(d[8..]);
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(d[12..]);
            ushort next = BinaryPrimitives.ReadUInt16LittleEndian(d[14..]);
            if ((flags & DescFlagIndirect) != 0)
            {
                table = new GuestAddress(address);
                index = 0;
                limit = (int)(length / 16);
                continue;
            }

            result.Add((new GuestAddress(address), (int)length, (flags & DescFlagWrite) != 0));
            if ((flags & DescFlagNext) == 0)
            {
                break;
            }

            index = next;
        }

        return result;
    }

    /// <summary>Disposes the memory when the driver created it.</summary>
    public void Dispose()
    {
        if (_ownsMemory)
        {
            Memory.Dispose();
        }
    }

    private GuestAddress AllocateBuffer(BufferSpec buffer, List<int> owned, byte fill)
    {
        if (buffer.Length > BlockSize || buffer.Length < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(buffer), $"A buffer is at most {BlockSize} bytes.");
        }

        int block = _freeBlocks.Pop();
        owned.Add(block);
        GuestAddress address = BlockAddress(block);
        Span<byte> data = Span(address, buffer.Length);
        data.Fill(buffer.Writable ? (byte)0 : fill);
        return address;
    }

    private ushort TakeFreeDescriptor()
    {
        ushort slot = _freeHead;
        _freeHead = BinaryPrimitives.ReadUInt16LittleEndian(Span(new GuestAddress(DescriptorTable.Value + (16u * slot) + 14), 2));
        NumFree--;
        return slot;
    }

    private void DetachChain(ushort head)
    {
        // Walk the direct chain and return its descriptors to the free list (detach_buf_split).
        ushort index = head;
        int count = 1;
        while (true)
        {
            ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(Span(new GuestAddress(DescriptorTable.Value + (16u * index) + 12), 2));
            if ((flags & DescFlagNext) == 0 || count > QueueSize)
            {
                break;
            }

            index = BinaryPrimitives.ReadUInt16LittleEndian(Span(new GuestAddress(DescriptorTable.Value + (16u * index) + 14), 2));
            count++;
        }

        BinaryPrimitives.WriteUInt16LittleEndian(Span(new GuestAddress(DescriptorTable.Value + (16u * index) + 14), 2), _freeHead);
        _freeHead = head;
        NumFree += count;
        foreach (int block in _blocksByHead[head])
        {
            _freeBlocks.Push(block);
        }

        _blocksByHead[head].Clear();
    }

    private void WriteUInt16(GuestAddress address, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Span(address, 2), value);

    private ref ushort RingField(GuestAddress address) =>
        ref System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(Span(address, 2))[0];

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}
