using System;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading;
using BenchmarkDotNet.Attributes;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Benchmarks.Queues;

/// <summary>
/// The packed-ring twin of <see cref="SplitVirtqueueBenchmarks"/> (virtio 1.2 §2.8): the same chain
/// shapes, queue size and batch, and the same device work per operation: pop one chain, walk and
/// validate every descriptor, add it as used and publish it (flags, with the interrupt decision).
/// The ring is the descriptor table, so the guest side writes the chain's descriptors at the next
/// avail position each operation (16 bytes each, the head's flags last with a release store), as a
/// packed driver must; the split benchmark's guest writes only an avail entry and avail->idx. So
/// the packed numbers hold more guest work: one descriptor for Direct1 and Indirect64, 3 and 17 for
/// the others. Raw, allocation-free stores, so the Allocated column is the device's. The ring is
/// laid out here, not by Virtio.Testing's packed driver (internal to the test projects): the
/// descriptor ring at 4 KiB, the driver and device event structures right after it, buffers from 1 MiB.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet derives its generated runner from this class.</remarks>
[MemoryDiagnoser]
[SuppressMessage("Design", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: GlobalCleanup disposes the guest memory.")]
public class PackedVirtqueueBenchmarks
{
    /// <summary>Chains per benchmark invocation; the reported time is per chain.</summary>
    private const int Batch = 64;

    private const ushort QueueSize = 256;
    private const int DataLength = 4096;
    private const int HeaderLength = 16;
    private const int StatusLength = 1;
    private const ushort Id = 0;
    private const ushort FlagNext = (ushort)DescriptorFlags.Next;
    private const ushort FlagWrite = (ushort)DescriptorFlags.Write;
    private const ushort FlagIndirect = (ushort)DescriptorFlags.Indirect;
    private const int DriverEventOffset = QueueSize * PackedRingLayout.DescriptorSize;
    private const ulong RingBase = 0x1000;
    private const ulong HeapBase = 1 << 20;

    private GuestMemory _memory = null!;
    private SplitVirtqueue _queue = null!;

    // The chain as the guest writes it each operation: address, length and flags (lap bits added) per descriptor.
    private ulong[] _addresses = null!;
    private uint[] _lengths = null!;
    private ushort[] _flags = null!;
    private uint _expectedWritten;

    // The guest's ring state (virtqueue_add_packed / virtqueue_get_buf_ctx_packed).
    private ushort _nextAvail;
    private bool _availWrap = true;
    private ushort _lastUsed;
    private bool _usedWrap = true;

    /// <summary>The chain popped by each operation.</summary>
    [ParamsAllValues]
    public ChainShape Shape { get; set; }

    /// <summary>Whether VIRTIO_F_EVENT_IDX is negotiated (the driver event structure in descriptor mode).</summary>
    [ParamsAllValues]
    public bool EventIdx { get; set; }

    /// <summary>Lays out the ring and builds the chain (an indirect table is written once).</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        _memory = GuestMemory.CreateAnonymous(16 << 20);
        var driverEvent = new GuestAddress(RingBase + DriverEventOffset);
        var state = new SplitVirtqueueState(QueueSize, new GuestAddress(RingBase), driverEvent, new GuestAddress(driverEvent.Value + PackedRingLayout.EventSuppressionSize), 0, 0, true, EventIdx, true)
        {
            PackedRing = true,
            AvailWrapCounter = true,
            UsedWrapCounter = true,
        };
        _queue = new SplitVirtqueue(_memory, 0, QueueSize);
        if (!_queue.TryRestoreState(state, out QueueError error))
        {
            throw new InvalidOperationException($"The queue did not activate: {error}.");
        }

        // The driver wants every interrupt: with EVENT_IDX descriptor mode at its next used position (0, wrap 1).
        Span<byte> events = Ring()[DriverEventOffset..];
        BinaryPrimitives.WriteUInt16LittleEndian(events[PackedRingLayout.EventOffWrapOffset..], PackedRingLayout.OffWrap(0, true));
        BinaryPrimitives.WriteUInt16LittleEndian(events[PackedRingLayout.EventFlagsOffset..], EventIdx ? PackedRingLayout.EventFlagsDesc : PackedRingLayout.EventFlagsEnable);
        switch (Shape)
        {
            case ChainShape.Direct1:
                _addresses = [BlockAddress(0)];
                _lengths = [DataLength];
                _flags = [FlagWrite];
                _expectedWritten = DataLength;
                break;
            case ChainShape.Direct3:
                BuildBlockRequest(buffers: 3, firstBlock: 0, inRing: true);
                break;
            case ChainShape.Direct17:
                BuildBlockRequest(buffers: 17, firstBlock: 0, inRing: true);
                break;
            case ChainShape.Indirect64:
                BuildBlockRequest(buffers: 64, firstBlock: 1, inRing: false);
                _addresses = [BlockAddress(0)];
                _lengths = [64 * 16];
                _flags = [FlagIndirect];
                break;
            default:
                throw new InvalidOperationException($"Unknown shape {Shape}.");
        }

        // One checked round trip before BenchmarkDotNet starts timing: a broken layout fails here.
        RoundTripChecks.AfterSetup(PopValidatePublish(), _queue);
        RoundTripChecks.ReportAllocations($"Packed Shape={Shape} EventIdx={EventIdx}", PopValidatePublish, Batch);
    }

    /// <summary>Releases the guest memory.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        QueueError error = _queue.Error;
        _memory.Dispose();
        RoundTripChecks.AfterRun(error);
    }

    /// <summary>
    /// <see cref="Batch"/> round trips of one chain; each is: the guest writes the chain at the next
    /// avail position, the device pops, walks, adds and publishes it, the guest takes the used descriptor.
    /// </summary>
    /// <returns>How many publishes asked for an interrupt (all of them: the guest always wants one).</returns>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int PopValidatePublish()
    {
        Span<byte> ring = Ring();
        int notifications = 0;
        for (int i = 0; i < Batch; i++)
        {
            MakeAvailable(ring);
            if (!_queue.TryPopChain(out DescriptorChain chain))
            {
                RoundTripChecks.Fail("nothing to pop");
            }

            while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
            {
                _ = buffer.Length;
            }

            if (chain.Error != QueueError.None || chain.WritableLength != _expectedWritten)
            {
                RoundTripChecks.Fail("the walk failed");
            }

            _queue.AddUsed(chain.HeadIndex, (uint)chain.WritableLength);
            if (_queue.PublishUsed())
            {
                notifications++;
            }

            ConsumeUsed(ring);
        }

        return notifications;
    }

    // Guest: the chain's descriptors at consecutive positions with this lap's AVAIL/USED bits, the
    // head's flags stored last with release semantics (virtio 1.2 §2.8.21).
    private void MakeAvailable(Span<byte> ring)
    {
        ushort head = _nextAvail;
        ushort headFlags = 0;
        for (int i = 0; i < _flags.Length; i++)
        {
            Span<byte> d = ring.Slice(PackedRingLayout.DescriptorOffset(_nextAvail), PackedRingLayout.DescriptorSize);
            // This lap's bits: AVAIL set and USED clear with wrap 1, the reverse with wrap 0.
            ushort flags = (ushort)(_flags[i] | (_availWrap ? PackedRingLayout.AvailFlag : PackedRingLayout.UsedFlag));
            WriteDescriptor(d, _addresses[i], _lengths[i], i == 0 ? (ushort)0 : flags);
            if (i == 0)
            {
                headFlags = flags;
            }

            if (++_nextAvail == QueueSize)
            {
                _nextAvail = 0;
                _availWrap = !_availWrap;
            }
        }

        Volatile.Write(ref Unsafe.As<byte, ushort>(ref ring[PackedRingLayout.DescriptorOffset(head) + PackedRingLayout.FlagsOffset]), headFlags);
    }

    // Guest: virtqueue_get_buf_ctx_packed without the free-list bookkeeping.
    private void ConsumeUsed(Span<byte> ring)
    {
        Span<byte> d = ring.Slice(PackedRingLayout.DescriptorOffset(_lastUsed), PackedRingLayout.DescriptorSize);
        ushort flags = Volatile.Read(ref Unsafe.As<byte, ushort>(ref d[PackedRingLayout.FlagsOffset]));
        if (flags != (PackedRingLayout.UsedFlags(_usedWrap) | FlagWrite)
            || BinaryPrimitives.ReadUInt16LittleEndian(d[PackedRingLayout.IdOffset..]) != Id
            || BinaryPrimitives.ReadUInt32LittleEndian(d[PackedRingLayout.LengthOffset..]) != _expectedWritten)
        {
            RoundTripChecks.Fail("wrong used descriptor");
        }

        int next = _lastUsed + _flags.Length;
        if (next >= QueueSize)
        {
            next -= QueueSize;
            _usedWrap = !_usedWrap;
        }

        _lastUsed = (ushort)next;
        if (EventIdx)
        {
            // Callbacks stay enabled: off_wrap follows the driver (as Linux stores it in get_buf).
            Volatile.Write(ref Unsafe.As<byte, ushort>(ref ring[DriverEventOffset + PackedRingLayout.EventOffWrapOffset]), PackedRingLayout.OffWrap(_lastUsed, _usedWrap));
        }
    }

    // One span over the descriptor ring and the driver event structure that follows it.
    private Span<byte> Ring() =>
        _memory.TryGetSpan(new GuestAddress(RingBase), DriverEventOffset + PackedRingLayout.EventSuppressionSize, out Span<byte> ring) ? ring : throw new InvalidOperationException("The ring is not guest memory.");

    private static ulong BlockAddress(int block) => HeapBase + ((ulong)block * DataLength);

    private static void WriteDescriptor(Span<byte> d, ulong address, uint length, ushort flags)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(d, address);
        BinaryPrimitives.WriteUInt32LittleEndian(d[PackedRingLayout.LengthOffset..], length);
        BinaryPrimitives.WriteUInt16LittleEndian(d[PackedRingLayout.IdOffset..], Id);
        BinaryPrimitives.WriteUInt16LittleEndian(d[PackedRingLayout.FlagsOffset..], flags);
    }

    // A virtio-blk read: readable header, writable data buffers, a writable status byte; in the ring
    // (flags with NEXT) or written once into an indirect table at block 0 (only WRITE counts there).
    private void BuildBlockRequest(int buffers, int firstBlock, bool inRing)
    {
        _addresses = new ulong[buffers];
        _lengths = new uint[buffers];
        _flags = new ushort[buffers];
        for (int i = 0; i < buffers; i++)
        {
            bool last = i == buffers - 1;
            _addresses[i] = BlockAddress(firstBlock + i);
            _lengths[i] = (uint)(i == 0 ? HeaderLength : last ? StatusLength : DataLength);
            _flags[i] = (ushort)((i == 0 ? 0 : FlagWrite) | (last || !inRing ? 0 : FlagNext));
            if (!inRing && _memory.TryGetSpan(new GuestAddress(BlockAddress(0) + (16u * (uint)i)), PackedRingLayout.DescriptorSize, out Span<byte> entry))
            {
                WriteDescriptor(entry, _addresses[i], _lengths[i], _flags[i]);
            }
        }

        _expectedWritten = (uint)(((buffers - 2) * DataLength) + StatusLength);
    }
}
