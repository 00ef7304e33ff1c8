using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Testing;

/// <summary>
/// Plays the guest side of one packed virtqueue (virtio 1.2 §2.8) the way Linux's virtio_ring does
/// for VIRTIO_F_RING_PACKED: buffer IDs from a free list, a chain's descriptors written at the next
/// avail position with the lap's AVAIL/USED bits and the head's flags stored last, an indirect table
/// when negotiated and the chain has more than one buffer, kicks decided from the device event
/// suppression structure, used descriptors taken in ring order (skipping each chain's descriptors),
/// and the driver event suppression structure moved as buffers are consumed. It also writes raw,
/// hostile descriptors for tests.
/// </summary>
/// <remarks>Not thread-safe; a test drives it from one thread, or hands it over with a barrier.</remarks>
internal sealed class PackedGuestDriver : IDisposable
{
    private const ushort DescFlagNext = 1, DescFlagWrite = 2, DescFlagIndirect = 4;
    private const ushort AvailFlag = 1 << 7, UsedFlag = 1 << 15;
    private const ushort EventEnable = 0, EventDisable = 1, EventDesc = 2;

    private readonly bool _ownsMemory;
    private readonly Stack<int> _freeBlocks = new();
    private readonly Stack<ushort> _freeIds = new();
    private readonly ulong _heapBase;
    private readonly List<int>[] _blocksById;
    private readonly int[] _slotsById;
    private ushort _nextAvail;
    private bool _availWrap = true;
    private ushort _lastUsed;
    private bool _usedWrap = true;
    private int _addedSinceKick;
    private bool _callbacksEnabled = true;

    /// <summary>Creates a driver with its own anonymous guest memory and lays out one packed queue in it.</summary>
    /// <param name="queueSize">The queue size (any from 1 to 32768).</param>
    /// <param name="memorySize">Guest memory bytes (rings in the first MiB, buffers above).</param>
    /// <param name="blockSize">The size of each buffer block; a buffer is at most this long.</param>
    /// <param name="eventIdx">Whether VIRTIO_F_EVENT_IDX (descriptor event mode) is negotiated.</param>
    /// <param name="indirect">Whether VIRTIO_F_INDIRECT_DESC is negotiated.</param>
    public PackedGuestDriver(ushort queueSize = 16, ulong memorySize = 16 << 20, int blockSize = 4096, bool eventIdx = false, bool indirect = false)
        : this(GuestMemory.CreateAnonymous(memorySize), ownsMemory: true, new GuestAddress(0x1000), queueSize, 1 << 20, blockSize, eventIdx, indirect)
    {
    }

    /// <summary>Lays out a packed queue at <paramref name="ringBase"/> in memory owned by the caller.</summary>
    /// <param name="memory">Guest memory.</param>
    /// <param name="ringBase">Where the descriptor ring starts; the two event structures follow it.</param>
    /// <param name="queueSize">The queue size.</param>
    /// <param name="heapBase">Where buffer blocks start.</param>
    /// <param name="blockSize">Bytes per buffer block.</param>
    /// <param name="eventIdx">Whether VIRTIO_F_EVENT_IDX is negotiated.</param>
    /// <param name="indirect">Whether VIRTIO_F_INDIRECT_DESC is negotiated.</param>
    public PackedGuestDriver(GuestMemory memory, GuestAddress ringBase, ushort queueSize, ulong heapBase, int blockSize, bool eventIdx, bool indirect)
        : this(memory, ownsMemory: false, ringBase, queueSize, heapBase, blockSize, eventIdx, indirect)
    {
    }

    private PackedGuestDriver(GuestMemory memory, bool ownsMemory, GuestAddress ringBase, ushort queueSize, ulong heapBase, int blockSize, bool eventIdx, bool indirect)
    {
        Memory = memory;
        _ownsMemory = ownsMemory;
        QueueSize = queueSize;
        BlockSize = blockSize;
        EventIdx = eventIdx;
        Indirect = indirect;
        DescriptorRing = ringBase;
        DriverEvent = new GuestAddress(ringBase.Value + (16u * queueSize));
        DeviceEvent = new GuestAddress(DriverEvent.Value + 4);
        _heapBase = heapBase;
        GuestMemoryRegion last = memory.Regions[^1];
        ulong heapEnd = last.Start.Value + last.Size;
        int blocks = (int)Math.Min((heapEnd - heapBase) / (ulong)blockSize, 1 << 20);
        for (int i = blocks - 1; i >= 0; i--)
        {
            _freeBlocks.Push(i);
        }

        _blocksById = new List<int>[queueSize];
        _slotsById = new int[queueSize];
        for (int i = queueSize - 1; i >= 0; i--)
        {
            _blocksById[i] = new List<int>();
            _freeIds.Push((ushort)i);
        }

        Span(DescriptorRing, 16 * queueSize).Clear();
        Span(DriverEvent, 8).Clear();
        NumFree = queueSize;
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

    /// <summary>The descriptor ring's address (QueueDesc).</summary>
    public GuestAddress DescriptorRing { get; }

    /// <summary>The driver event suppression structure's address (QueueDriver).</summary>
    public GuestAddress DriverEvent { get; }

    /// <summary>The device event suppression structure's address (QueueDevice).</summary>
    public GuestAddress DeviceEvent { get; }

    /// <summary>Free ring descriptors.</summary>
    public int NumFree { get; private set; }

    /// <summary>Chains made available and not yet consumed.</summary>
    public int Outstanding { get; private set; }

    /// <summary>The ring position the next descriptor will be written at.</summary>
    public ushort NextAvail => _nextAvail;

    /// <summary>The driver's avail wrap counter.</summary>
    public bool AvailWrapCounter => _availWrap;

    /// <summary>The ring position the next used descriptor is expected at.</summary>
    public ushort LastUsed => _lastUsed;

    /// <summary>The driver's used wrap counter.</summary>
    public bool UsedWrapCounter => _usedWrap;

    /// <summary>A device-side queue over the same ring, activated at the driver's positions.</summary>
    /// <param name="logger">The queue's logger.</param>
    /// <returns>The queue.</returns>
    public SplitVirtqueue CreateDeviceQueue(ILogger? logger = null)
    {
        // QueueNumMax is a power of two; a packed ring's chosen size need not be.
        var queue = new SplitVirtqueue(Memory, 0, (ushort)System.Numerics.BitOperations.RoundUpToPowerOf2(QueueSize), logger);
        var state = new SplitVirtqueueState(QueueSize, DescriptorRing, DriverEvent, DeviceEvent, _nextAvail, _lastUsed, true, EventIdx, Indirect)
        {
            PackedRing = true,
            AvailWrapCounter = _availWrap,
            UsedWrapCounter = _usedWrap,
        };
        if (!queue.TryRestoreState(state, out QueueError error))
        {
            throw new InvalidOperationException($"The device queue did not activate: {error}");
        }

        return queue;
    }

    /// <summary>Configures <paramref name="queue"/> with this driver's layout (what a transport does).</summary>
    /// <param name="queue">A device queue that is not ready.</param>
    public void Configure(SplitVirtqueue queue)
    {
        ArgumentNullException.ThrowIfNull(queue);
        queue.Size = QueueSize;
        queue.DescriptorTable = DescriptorRing;
        queue.AvailRing = DriverEvent;
        queue.UsedRing = DeviceEvent;
    }

    /// <summary>
    /// Adds a chain of buffers (readable ones first) at the next avail positions, head flags last
    /// (virtqueue_add_packed). Readable buffers are filled with <paramref name="fill"/>.
    /// </summary>
    /// <param name="buffers">The buffers.</param>
    /// <param name="useIndirect">Force an indirect table (true) or a direct chain (false); by default as Linux.</param>
    /// <param name="fill">The byte written into readable buffers.</param>
    /// <returns>The buffer ID, or -1 when there are not enough free descriptors or blocks.</returns>
    public int TryAddChain(ReadOnlySpan<BufferSpec> buffers, bool? useIndirect = null, byte fill = 0xA5)
    {
        if (buffers.Length == 0)
        {
            throw new ArgumentException("A chain needs at least one buffer.", nameof(buffers));
        }

        bool indirect = useIndirect ?? (Indirect && buffers.Length > 1);
        int needDescriptors = indirect ? 1 : buffers.Length;
        int needBlocks = buffers.Length + (indirect ? 1 : 0);
        if (NumFree < needDescriptors || _freeIds.Count == 0 || _freeBlocks.Count < needBlocks || (indirect && buffers.Length * 16 > BlockSize))
        {
            return -1;
        }

        ushort id = _freeIds.Pop();
        List<int> owned = _blocksById[id];
        owned.Clear();
        ushort head = _nextAvail;
        ushort headFlags;
        if (indirect)
        {
            int tableBlock = _freeBlocks.Pop();
            owned.Add(tableBlock);
            GuestAddress table = BlockAddress(tableBlock);
            for (int i = 0; i < buffers.Length; i++)
            {
                GuestAddress data = AllocateBuffer(buffers[i], owned, fill);
                WriteDescriptorAt(table, i, data.Value, (uint)buffers[i].Length, 0, buffers[i].Writable ? DescFlagWrite : (ushort)0);
            }

            headFlags = (ushort)(DescFlagIndirect | LapFlags(_availWrap));
            WriteDescriptorAt(DescriptorRing, head, table.Value, (uint)(16 * buffers.Length), id, 0);
            Advance();
        }
        else
        {
            headFlags = 0;
            for (int i = 0; i < buffers.Length; i++)
            {
                GuestAddress data = AllocateBuffer(buffers[i], owned, fill);
                ushort flags = (ushort)((buffers[i].Writable ? DescFlagWrite : 0) | (i + 1 < buffers.Length ? DescFlagNext : 0) | LapFlags(_availWrap));
                if (i == 0)
                {
                    headFlags = flags;
                    flags = 0; // stored last, below
                }

                WriteDescriptorAt(DescriptorRing, _nextAvail, data.Value, (uint)buffers[i].Length, id, flags);
                Advance();
            }
        }

        _slotsById[id] = needDescriptors;
        NumFree -= needDescriptors;
        Outstanding++;
        _addedSinceKick += needDescriptors;

        // virtio 1.2 §2.8.21: the head's flags last, with a write barrier before (release store).
        Volatile.Write(ref RingField(new GuestAddress(DescriptorRing.Value + (16u * head) + 14)), headFlags);
        return id;
    }

    /// <summary>Adds a chain and throws when the queue is full.</summary>
    /// <param name="buffers">The buffers.</param>
    /// <returns>The buffer ID.</returns>
    public ushort AddChain(params BufferSpec[] buffers)
    {
        int id = TryAddChain(buffers);
        return id >= 0 ? (ushort)id : throw new InvalidOperationException("The queue is full.");
    }

    /// <summary>
    /// Decides whether the device wants a notification for the descriptors added since the last
    /// kick (virtqueue_kick_prepare_packed): the device event structure's flags, and in descriptor
    /// mode its off_wrap against the positions just made available.
    /// </summary>
    /// <returns>True when the driver must notify the device.</returns>
    public bool Kick()
    {
        int added = _addedSinceKick;
        _addedSinceKick = 0;
        Interlocked.MemoryBarrier();
        ushort flags = Volatile.Read(ref RingField(new GuestAddress(DeviceEvent.Value + 2)));
        if (flags != EventDesc)
        {
            return flags != EventDisable;
        }

        ushort offWrap = Volatile.Read(ref RingField(DeviceEvent));
        int eventIdx = offWrap & 0x7FFF;
        if (((offWrap & 0x8000) != 0) != _availWrap)
        {
            eventIdx -= QueueSize;
        }

        ushort now = _nextAvail;
        return SplitVirtqueue.NeedEvent((ushort)eventIdx, now, (ushort)(now - added));
    }

    /// <summary>
    /// Takes the next used descriptor when its flags say used in the current lap, frees its ID,
    /// descriptors and blocks, and with callbacks enabled in descriptor mode moves off_wrap past it.
    /// </summary>
    /// <param name="id">The buffer ID the device returned.</param>
    /// <param name="length">The length the device reported (0 when WRITE is clear).</param>
    /// <returns>False when the device has used nothing new.</returns>
    public bool TryGetUsed(out ushort id, out uint length)
    {
        id = 0;
        length = 0;
        ushort flags = Volatile.Read(ref RingField(new GuestAddress(DescriptorRing.Value + (16u * _lastUsed) + 14)));
        bool avail = (flags & AvailFlag) != 0, used = (flags & UsedFlag) != 0;
        if (avail != used || used != _usedWrap)
        {
            return false;
        }

        Span<byte> d = Span(new GuestAddress(DescriptorRing.Value + (16u * _lastUsed)), 16);
        ushort usedId = BinaryPrimitives.ReadUInt16LittleEndian(d[12..]);
        if (usedId >= QueueSize || _slotsById[usedId] == 0)
        {
            throw new InvalidOperationException($"The device returned buffer ID {usedId}, which is not in flight.");
        }

        id = usedId;
        length = (flags & DescFlagWrite) != 0 ? BinaryPrimitives.ReadUInt32LittleEndian(d[8..]) : 0;
        int next = _lastUsed + _slotsById[id];
        if (next >= QueueSize)
        {
            next -= QueueSize;
            _usedWrap = !_usedWrap;
        }

        _lastUsed = (ushort)next;
        NumFree += _slotsById[id];
        _slotsById[id] = 0;
        foreach (int block in _blocksById[id])
        {
            _freeBlocks.Push(block);
        }

        _blocksById[id].Clear();
        _freeIds.Push(id);
        Outstanding--;
        if (EventIdx && _callbacksEnabled)
        {
            Volatile.Write(ref RingField(DriverEvent), OffWrap(_lastUsed, _usedWrap));
            Interlocked.MemoryBarrier();
        }

        return true;
    }

    /// <summary>Asks for used-buffer interrupts again (virtqueue_enable_cb_prepare_packed).</summary>
    public void EnableCallbacks()
    {
        _callbacksEnabled = true;
        if (EventIdx)
        {
            Volatile.Write(ref RingField(DriverEvent), OffWrap(_lastUsed, _usedWrap));
        }

        Volatile.Write(ref RingField(new GuestAddress(DriverEvent.Value + 2)), EventIdx ? EventDesc : EventEnable);
        Interlocked.MemoryBarrier();
    }

    /// <summary>Asks for no used-buffer interrupts (RING_EVENT_FLAGS_DISABLE).</summary>
    public void DisableCallbacks()
    {
        _callbacksEnabled = false;
        Volatile.Write(ref RingField(new GuestAddress(DriverEvent.Value + 2)), EventDisable);
    }

    /// <summary>Writes the driver event structure directly (for descriptor-mode tests).</summary>
    /// <param name="position">The used position after which the driver wants an interrupt.</param>
    /// <param name="wrap">The wrap counter of that position's lap.</param>
    public void SetUsedEvent(ushort position, bool wrap)
    {
        Volatile.Write(ref RingField(DriverEvent), OffWrap(position, wrap));
        Volatile.Write(ref RingField(new GuestAddress(DriverEvent.Value + 2)), EventDesc);
    }

    /// <summary>Reads the device event structure: (off_wrap, flags).</summary>
    /// <returns>The two fields.</returns>
    public (ushort OffWrap, ushort Flags) ReadDeviceEvent() =>
        (Volatile.Read(ref RingField(DeviceEvent)), Volatile.Read(ref RingField(new GuestAddress(DeviceEvent.Value + 2))));

    /// <summary>Writes one raw descriptor at ring position <paramref name="position"/>, as a hostile driver would.</summary>
    /// <param name="position">The ring position.</param>
    /// <param name="address">The buffer address.</param>
    /// <param name="length">The buffer length.</param>
    /// <param name="id">The buffer ID.</param>
    /// <param name="flags">The flags, AVAIL/USED bits included.</param>
    public void WriteDescriptor(ushort position, ulong address, uint length, ushort id, ushort flags) =>
        WriteDescriptorAt(DescriptorRing, position, address, length, id, flags);

    /// <summary>Writes one raw packed descriptor into a table at <paramref name="table"/>.</summary>
    /// <param name="table">The table or ring.</param>
    /// <param name="index">The entry.</param>
    /// <param name="address">The buffer address.</param>
    /// <param name="length">The buffer length.</param>
    /// <param name="id">The buffer ID.</param>
    /// <param name="flags">The flags.</param>
    public void WriteDescriptorAt(GuestAddress table, int index, ulong address, uint length, ushort id, ushort flags)
    {
        Span<byte> d = Span(new GuestAddress(table.Value + (16u * (uint)index)), 16);
        BinaryPrimitives.WriteUInt64LittleEndian(d, address);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], length);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], id);
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], flags);
    }

    /// <summary>The AVAIL/USED bits of an available descriptor in the lap of <paramref name="wrap"/>.</summary>
    /// <param name="wrap">The lap's wrap counter.</param>
    /// <returns>AVAIL set and USED clear for wrap 1, the reverse for wrap 0.</returns>
    public static ushort LapFlags(bool wrap) => wrap ? AvailFlag : UsedFlag;

    /// <summary>The guest address of buffer block <paramref name="block"/>.</summary>
    /// <param name="block">The block.</param>
    /// <returns>Its address.</returns>
    public GuestAddress BlockAddress(int block) => new(_heapBase + ((ulong)block * (ulong)BlockSize));

    /// <summary>A span over guest memory; throws when the range is not guest memory.</summary>
    /// <param name="address">The start.</param>
    /// <param name="length">The length.</param>
    /// <returns>The span.</returns>
    public Span<byte> Span(GuestAddress address, int length) =>
        Memory.TryGetSpan(address, length, out Span<byte> span) ? span : throw new ArgumentOutOfRangeException(nameof(address), $"{address}+{length} is not guest memory.");

    /// <summary>Disposes the memory when the driver created it.</summary>
    public void Dispose()
    {
        if (_ownsMemory)
        {
            Memory.Dispose();
        }
    }

    private static ushort OffWrap(ushort position, bool wrap) => (ushort)(position | (wrap ? 0x8000 : 0));

    private void Advance()
    {
        if (++_nextAvail == QueueSize)
        {
            _nextAvail = 0;
            _availWrap = !_availWrap;
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
        Span(address, buffer.Length).Fill(buffer.Writable ? (byte)0 : fill);
        return address;
    }

    private ref ushort RingField(GuestAddress address) =>
        ref System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(Span(address, 2))[0];
}
