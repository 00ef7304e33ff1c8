using System;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading;
using BenchmarkDotNet.Attributes;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;

namespace Virtio.Benchmarks.Queues;

/// <summary>
/// The device's per-request queue work: pop one chain, walk and validate every descriptor,
/// put it on the used ring and publish used->idx (with the interrupt decision). The chain's
/// descriptors are written once in <see cref="GlobalSetup"/>; each operation the guest side
/// only puts the head on the avail ring, moves avail->idx and consumes the used element, with
/// raw, allocation-free stores into guest memory, so the Allocated column is the device's.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet derives its generated runner from this class.</remarks>
[MemoryDiagnoser]
[SuppressMessage("Design", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: GlobalCleanup disposes the driver.")]
public class SplitVirtqueueBenchmarks
{
    /// <summary>Chains per benchmark invocation; the reported time is per chain.</summary>
    private const int Batch = 64;

    private const ushort QueueSize = 256;

    // static readonly: the tier-1 JIT folds its fields to constants, as it folds QueueSize.
    private static readonly SplitRingLayout Layout = new(QueueSize);
    private const int DataLength = 4096;
    private const int HeaderLength = 16;
    private const int StatusLength = 1;
    private const ushort FlagNext = (ushort)DescriptorFlags.Next;
    private const ushort FlagWrite = (ushort)DescriptorFlags.Write;
    private const ushort FlagIndirect = (ushort)DescriptorFlags.Indirect;

    private GuestDriver _driver = null!;
    private SplitVirtqueue _queue = null!;

    // Guest-side view of the rings: one span from the avail ring to the end of the used ring.
    private GuestAddress _ringsBase;
    private int _ringsLength;
    private int _availIdxOffset;
    private int _usedEventOffset;
    private int _usedIdxOffset;
    private int _usedRingOffset;

    private ushort _head;
    private ushort _availIdx;
    private ushort _lastUsed;
    private int _expectedBuffers;
    private uint _expectedWritten;

    /// <summary>The chain popped by each operation.</summary>
    [ParamsAllValues]
    public ChainShape Shape { get; set; }

    /// <summary>Whether VIRTIO_F_EVENT_IDX is negotiated (used_event instead of the avail flags).</summary>
    [ParamsAllValues]
    public bool EventIdx { get; set; }

    /// <summary>Lays out the queue and writes the chain's descriptors once.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        _driver = new GuestDriver(queueSize: QueueSize, blockSize: DataLength, eventIdx: EventIdx, indirect: true);
        _queue = _driver.CreateDeviceQueue();

        ulong availBase = _driver.AvailRing.Value;
        _ringsBase = _driver.AvailRing;
        _ringsLength = checked((int)(_driver.UsedRing.Value + (uint)Layout.UsedRingSize - availBase));
        _availIdxOffset = SplitRingLayout.AvailIdxOffset;
        _usedEventOffset = Layout.UsedEventOffset;
        _usedIdxOffset = checked((int)(_driver.UsedRing.Value - availBase)) + SplitRingLayout.UsedIdxOffset;
        _usedRingOffset = checked((int)(_driver.UsedRing.Value - availBase));

        _head = 0;
        _availIdx = _driver.AvailIndex;
        _lastUsed = _driver.LastUsedIndex;
        switch (Shape)
        {
            case ChainShape.Direct1:
                _driver.WriteDescriptor(0, _driver.BlockAddress(0).Value, DataLength, FlagWrite, 0);
                _expectedBuffers = 1;
                _expectedWritten = DataLength;
                break;
            case ChainShape.Direct3:
                WriteBlockRequest(_driver.DescriptorTable, buffers: 3, firstBlock: 0);
                break;
            case ChainShape.Direct17:
                WriteBlockRequest(_driver.DescriptorTable, buffers: 17, firstBlock: 0);
                break;
            case ChainShape.Indirect64:
                GuestAddress table = _driver.BlockAddress(0);
                WriteBlockRequest(table, buffers: 64, firstBlock: 1);
                _driver.WriteDescriptor(0, table.Value, 64 * 16, FlagIndirect, 0);
                break;
            default:
                throw new InvalidOperationException($"Unknown shape {Shape}.");
        }

        // One checked round trip before BenchmarkDotNet starts timing: a broken layout fails here.
        if (PopValidatePublish() == 0 || _queue.Error != QueueError.None || _queue.InFlightCount != 0)
        {
            throw new InvalidOperationException($"The setup round trip failed: {_queue.Error}.");
        }

        ReportAllocations();
    }

    /// <summary>Releases the guest memory.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        QueueError error = _queue.Error;
        _driver.Dispose();
        if (error != QueueError.None)
        {
            throw new InvalidOperationException($"The queue broke during the run: {error}.");
        }
    }

    /// <summary>
    /// <see cref="Batch"/> round trips of one chain; each is: the guest makes the head available,
    /// the device pops, walks, adds and publishes it, the guest consumes the used element.
    /// </summary>
    /// <returns>How many publishes asked for an interrupt (all of them: the guest always wants one).</returns>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int PopValidatePublish()
    {
        // One lookup per invocation: the guest side's cost stays a few stores and loads per chain.
        Span<byte> rings = Rings();
        int notifications = 0;
        for (int i = 0; i < Batch; i++)
        {
            MakeAvailable(rings);
            if (DeviceProcessOne())
            {
                notifications++;
            }

            ConsumeUsed(rings);
        }

        return notifications;
    }

    // The device side: everything measured that is not the guest's three stores and two loads.
    private bool DeviceProcessOne()
    {
        if (!_queue.TryPopChain(out DescriptorChain chain))
        {
            ThrowRoundTripFailed("nothing to pop");
        }

        while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
        {
            _ = buffer.Length;
        }

        if (chain.Error != QueueError.None || chain.Count != _expectedBuffers)
        {
            ThrowRoundTripFailed("the walk failed");
        }

        _queue.AddUsed(chain.HeadIndex, (uint)chain.WritableLength);
        return _queue.PublishUsed();
    }

    // Guest: avail->ring[idx % size] = head, then the release store of avail->idx (virtio 1.2 §2.7.13.2).
    private void MakeAvailable(Span<byte> rings)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(rings[Layout.AvailEntryOffset(_availIdx)..], _head);
        _availIdx++;
        WriteUInt16Release(rings, _availIdxOffset, _availIdx);
    }

    // Guest: virtqueue_get_buf without the free-list bookkeeping (the chain is reused as written).
    private void ConsumeUsed(Span<byte> rings)
    {
        if (ReadUInt16Acquire(rings, _usedIdxOffset) == _lastUsed)
        {
            ThrowRoundTripFailed("nothing used");
        }

        Span<byte> element = rings.Slice(_usedRingOffset + Layout.UsedElementOffset(_lastUsed), SplitRingLayout.UsedElementSize);
        if (BinaryPrimitives.ReadUInt32LittleEndian(element) != _head || BinaryPrimitives.ReadUInt32LittleEndian(element[4..]) != _expectedWritten)
        {
            ThrowRoundTripFailed("wrong used element");
        }

        _lastUsed++;
        if (EventIdx)
        {
            // Callbacks stay enabled: used_event follows the driver (vring_used_event).
            WriteUInt16Release(rings, _usedEventOffset, _lastUsed);
        }
    }

    private Span<byte> Rings() =>
        _driver.Memory.TryGetSpan(_ringsBase, _ringsLength, out Span<byte> rings) ? rings : throw new InvalidOperationException("The rings are not guest memory.");

    // A virtio-blk read: readable header, writable data buffers, a writable status byte, chained 0..n-1.
    private void WriteBlockRequest(GuestAddress table, int buffers, int firstBlock)
    {
        for (int i = 0; i < buffers; i++)
        {
            bool last = i == buffers - 1;
            uint length = (uint)(i == 0 ? HeaderLength : last ? StatusLength : DataLength);
            ushort flags = (ushort)((i == 0 ? 0 : FlagWrite) | (last ? 0 : FlagNext));
            _driver.WriteDescriptorAt(table, i, _driver.BlockAddress(firstBlock + i).Value, length, flags, last ? (ushort)0 : (ushort)(i + 1));
        }

        _expectedBuffers = buffers;
        _expectedWritten = (uint)(((buffers - 2) * DataLength) + StatusLength);
    }

    // A second, independent look at allocations: the thread's GC allocation counter over many round trips.
    private void ReportAllocations()
    {
        const int Rounds = 2000;
        for (int i = 0; i < Rounds; i++)
        {
            PopValidatePublish();
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Rounds; i++)
        {
            PopValidatePublish();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Console.WriteLine($"AllocationCheck Shape={Shape} EventIdx={EventIdx}: {allocated} B over {Rounds * Batch} round trips");
    }

    private static void WriteUInt16Release(Span<byte> rings, int offset, ushort value) =>
        Volatile.Write(ref Unsafe.As<byte, ushort>(ref rings[offset]), BitConverter.IsLittleEndian ? value : BinaryPrimitives.ReverseEndianness(value));

    private static ushort ReadUInt16Acquire(Span<byte> rings, int offset)
    {
        ushort raw = Volatile.Read(ref Unsafe.As<byte, ushort>(ref rings[offset]));
        return BitConverter.IsLittleEndian ? raw : BinaryPrimitives.ReverseEndianness(raw);
    }

    [DoesNotReturn]
    private static void ThrowRoundTripFailed(string what) =>
        throw new InvalidOperationException($"Round trip failed: {what}.");
}
