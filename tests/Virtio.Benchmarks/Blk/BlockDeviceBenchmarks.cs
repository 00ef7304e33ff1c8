using System;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading;
using BenchmarkDotNet.Attributes;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;

namespace Virtio.Benchmarks.Blk;

/// <summary>
/// virtio-blk reads through the whole device: the guest makes <see cref="Depth"/> requests
/// available, notifies the queue once, and consumes the used elements; the device pops, parses
/// and validates each request, submits it to the backend with the guest buffers as I/O vectors,
/// writes the status byte, and publishes the batch. Chains are written once in
/// <see cref="GlobalSetup"/>; per request the guest side is only raw ring stores, so the
/// Allocated column is the device's (goal: 0 B).
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet derives its generated runner from this class.</remarks>
[MemoryDiagnoser]
[OperationsPerSecond]
[SuppressMessage("Design", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: GlobalCleanup disposes everything.")]
public class BlockDeviceBenchmarks
{
    /// <summary>Requests per benchmark invocation; the reported time is per request.</summary>
    private const int Batch = 64;

    private const ushort QueueSize = 256;

    // static readonly: the tier-1 JIT folds its fields to constants, as it folds QueueSize.
    private static readonly SplitRingLayout Layout = new(QueueSize);
    private const ushort FlagNext = (ushort)DescriptorFlags.Next;
    private const ushort FlagWrite = (ushort)DescriptorFlags.Write;

    private GuestDriver _driver = null!;
    private BlockDevice _device = null!;
    private IBlockBackend _backend = null!;
    private GuestAddress _ringsBase;
    private int _ringsLength;
    private int _availIdxOffset;
    private int _usedEventOffset;
    private int _usedIdxOffset;
    private ushort _availIdx;
    private ushort _lastUsed;

    /// <summary>The storage behind the device.</summary>
    [ParamsAllValues]
    public BlockBackendKind Backend { get; set; }

    /// <summary>Requests made available per notify (queue depth).</summary>
    [Params(1, 32)]
    public int Depth { get; set; }

    /// <summary>Bytes read per request.</summary>
    [Params(4096, 65536)]
    public int Size { get; set; }

    /// <summary>Brings the device up through virtio-mmio and writes <see cref="Depth"/> read requests once.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        const ulong capacity = 64 << 20;
        _backend = Backend == BlockBackendKind.Null ? new NullBlockBackend(capacity) : new MemoryBlockBackend(capacity);
        _driver = new GuestDriver(queueSize: QueueSize, memorySize: 32 << 20, blockSize: 65536, eventIdx: true, indirect: false);
        _device = new BlockDevice(_driver.Memory, _backend, new BlockDeviceOptions { QueueSize = QueueSize });
        var transport = new VirtioMmioTransport(_device, new CallbackGuestNotifier(static (_, _) => { }));
        new MmioDriver(transport).Initialize(VirtioFeatures.CoreDefaults | BlockFeatures.Flush, _driver);

        ulong availBase = _driver.AvailRing.Value;
        _ringsBase = _driver.AvailRing;
        _ringsLength = checked((int)(_driver.UsedRing.Value + (uint)Layout.UsedRingSize - availBase));
        _availIdxOffset = SplitRingLayout.AvailIdxOffset;
        _usedEventOffset = Layout.UsedEventOffset;
        _usedIdxOffset = checked((int)(_driver.UsedRing.Value - availBase)) + SplitRingLayout.UsedIdxOffset;
        _availIdx = _driver.AvailIndex;
        _lastUsed = _driver.LastUsedIndex;

        // Chain k: descriptors 3k (header), 3k+1 (data), 3k+2 (status); block 2k holds header and
        // status, block 2k+1 the data. Reads of distinct sectors.
        for (int k = 0; k < Depth; k++)
        {
            GuestAddress meta = _driver.BlockAddress(2 * k);
            GuestAddress data = _driver.BlockAddress((2 * k) + 1);
            Span<byte> header = _driver.Span(meta, 16);
            BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)BlockRequestType.In);
            BinaryPrimitives.WriteUInt64LittleEndian(header[8..], (ulong)(k * Size / 512));
            ushort d = (ushort)(3 * k);
            _driver.WriteDescriptor(d, meta.Value, 16, FlagNext, (ushort)(d + 1));
            _driver.WriteDescriptor((ushort)(d + 1), data.Value, (uint)Size, FlagWrite | FlagNext, (ushort)(d + 2));
            _driver.WriteDescriptor((ushort)(d + 2), meta.Value + 64, 1, FlagWrite, 0);
        }

        // One checked round before timing: a broken layout fails here.
        Span<byte> status = _driver.Span(new GuestAddress(_driver.BlockAddress(0).Value + 64), 1);
        status[0] = 0xFF;
        ReadBatch();
        if (status[0] != (byte)BlockStatus.Ok || _device.InFlight != 0)
        {
            throw new InvalidOperationException($"The setup round trip failed: status {status[0]}.");
        }

        ReportAllocations();
    }

    /// <summary>Releases the guest memory and the backend.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _driver.Dispose();
        (_backend as IDisposable)?.Dispose();
    }

    /// <summary><see cref="Batch"/> reads, <see cref="Depth"/> per notify.</summary>
    /// <returns>Used elements consumed.</returns>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int ReadBatch()
    {
        Span<byte> rings = _driver.Memory.TryGetSpan(_ringsBase, _ringsLength, out Span<byte> span) ? span : throw new InvalidOperationException("The rings are not guest memory.");
        int consumed = 0;
        for (int round = 0; round < Batch / Depth; round++)
        {
            for (int k = 0; k < Depth; k++)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(rings[Layout.AvailEntryOffset(_availIdx)..], (ushort)(3 * k));
                _availIdx++;
            }

            Volatile.Write(ref Unsafe.As<byte, ushort>(ref rings[_availIdxOffset]), _availIdx);
            _device.NotifyQueue(0);

            ushort usedIdx = Volatile.Read(ref Unsafe.As<byte, ushort>(ref rings[_usedIdxOffset]));
            if ((ushort)(usedIdx - _lastUsed) != Depth)
            {
                throw new InvalidOperationException("The device did not complete the batch.");
            }

            _lastUsed = usedIdx;
            consumed += Depth;
            Volatile.Write(ref Unsafe.As<byte, ushort>(ref rings[_usedEventOffset]), _lastUsed);
        }

        return consumed;
    }

    private void ReportAllocations()
    {
        const int Rounds = 500;
        for (int i = 0; i < Rounds; i++)
        {
            ReadBatch();
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Rounds; i++)
        {
            ReadBatch();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Console.WriteLine($"AllocationCheck Backend={Backend} Depth={Depth} Size={Size}: {allocated} B over {Rounds * Batch} requests");
    }
}
