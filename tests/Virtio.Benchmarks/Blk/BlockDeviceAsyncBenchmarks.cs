using System;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.IO;
using System.Runtime.CompilerServices;
using System.Threading;
using BenchmarkDotNet.Attributes;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Testing;

namespace Virtio.Benchmarks.Blk;

/// <summary>
/// The data-plane path of a virtio-blk read on a real file: QueueNotify signals an event fd, the
/// I/O thread processes the queue and submits either to <see cref="FileBlockBackend"/>'s workers
/// (preadv into the guest buffers; the completion hops back to the I/O thread) or, for
/// <see cref="BlockEngine.IoUring"/>, into the I/O thread's own io_uring (one enter per pass,
/// completions reaped on the same thread from the ring's eventfd); the completion is pushed and
/// interrupts the guest, whose handler wakes the benchmark thread. The image lives on /dev/shm
/// when it exists, so the numbers are the device's threading cost, not a disk's.
/// </summary>
/// <remarks>Not sealed: BenchmarkDotNet derives its generated runner from this class.</remarks>
[MemoryDiagnoser]
[OperationsPerSecond]
[SuppressMessage("Design", "CA1001", Justification = "BenchmarkDotNet owns the lifetime: GlobalCleanup disposes everything.")]
public class BlockDeviceAsyncBenchmarks
{
    private const int Batch = 64;
    private const ushort QueueSize = 256;

    // static readonly: the tier-1 JIT folds its fields to constants, as it folds QueueSize.
    private static readonly SplitRingLayout Layout = new(QueueSize);
    private const int Size = 4096;
    private const ushort FlagNext = (ushort)DescriptorFlags.Next;
    private const ushort FlagWrite = (ushort)DescriptorFlags.Write;

    private readonly SemaphoreSlim _interrupt = new(0);
    private string _image = null!;
    private GuestDriver _driver = null!;
    private IDisposable _backend = null!;
    private IoThread _ioThread = null!;
    private HostNotifierController _controller = null!;
    private MmioDriver _mmio = null!;
    private GuestAddress _ringsBase;
    private int _ringsLength;
    private int _usedEventOffset;
    private int _usedIdxOffset;
    private ushort _availIdx;
    private ushort _lastUsed;

    /// <summary>Requests made available per notify (queue depth).</summary>
    [Params(1, 32)]
    public int Depth { get; set; }

    /// <summary>The file engine: worker threads, or io_uring on the I/O thread.</summary>
    [Params(BlockEngine.Threads, BlockEngine.IoUring)]
    public BlockEngine Engine { get; set; }

    /// <summary>Creates the image, the I/O thread and the device, and writes the chains once.</summary>
    [GlobalSetup]
    public void GlobalSetup()
    {
        string dir = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        _image = Path.Combine(dir, $"virtio-blk-bench-{Environment.ProcessId}.img");
        using (FileStream stream = File.Create(_image))
        {
            stream.SetLength(16 << 20);
        }

        _ioThread = new IoThread("blk-bench");
        _ioThread.Start();

        // The constructors, not BlockBackends.OpenFile: a run where io_uring is refused fails instead of measuring threads twice.
        IBlockBackend backend = Engine == BlockEngine.IoUring ? new IoUringBlockBackend(_image, ioThreads: [_ioThread]) : new FileBlockBackend(_image);
        _backend = (IDisposable)backend;
        _driver = new GuestDriver(queueSize: QueueSize, memorySize: 16 << 20, blockSize: Size, eventIdx: true, indirect: false);
        var device = new BlockDevice(_driver.Memory, backend, new BlockDeviceOptions { QueueSize = QueueSize, IoThreads = [_ioThread] });
        var transport = new VirtioMmioTransport(device, new CallbackGuestNotifier((_, _) => _interrupt.Release()));
        _mmio = new MmioDriver(transport);
        _mmio.Initialize(VirtioFeatures.CoreDefaults | BlockFeatures.Flush, _driver);
        _controller = new HostNotifierController(device, new InProcessNotifierBinding(transport), [_ioThread]);

        _ringsBase = _driver.AvailRing;
        _ringsLength = checked((int)(_driver.UsedRing.Value + (uint)Layout.UsedRingSize - _driver.AvailRing.Value));
        _usedEventOffset = Layout.UsedEventOffset;
        _usedIdxOffset = checked((int)(_driver.UsedRing.Value - _driver.AvailRing.Value)) + 2;
        _availIdx = _driver.AvailIndex;
        _lastUsed = _driver.LastUsedIndex;
        for (int k = 0; k < Depth; k++)
        {
            GuestAddress meta = _driver.BlockAddress(2 * k);
            Span<byte> header = _driver.Span(meta, 16);
            BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)BlockRequestType.In);
            BinaryPrimitives.WriteUInt64LittleEndian(header[8..], (ulong)(k * Size / 512));
            ushort d = (ushort)(3 * k);
            _driver.WriteDescriptor(d, meta.Value, 16, FlagNext, (ushort)(d + 1));
            _driver.WriteDescriptor((ushort)(d + 1), _driver.BlockAddress((2 * k) + 1).Value, Size, FlagWrite | FlagNext, (ushort)(d + 2));
            _driver.WriteDescriptor((ushort)(d + 2), meta.Value + 64, 1, FlagWrite, 0);
        }

        ReadBatch();
    }

    /// <summary>Stops everything and deletes the image.</summary>
    [GlobalCleanup]
    public void GlobalCleanup()
    {
        _controller.Dispose();
        _backend.Dispose();
        _ioThread.Dispose();
        _driver.Dispose();
        File.Delete(_image);
    }

    /// <summary><see cref="Batch"/> reads, <see cref="Depth"/> per kick, waiting on the interrupt.</summary>
    /// <returns>Used elements consumed.</returns>
    [Benchmark(OperationsPerInvoke = Batch)]
    public int ReadBatch()
    {
        int consumed = 0;
        for (int round = 0; round < Batch / Depth; round++)
        {
            Span<byte> rings = Rings();
            for (int k = 0; k < Depth; k++)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(rings[Layout.AvailEntryOffset(_availIdx)..], (ushort)(3 * k));
                _availIdx++;
            }

            Volatile.Write(ref Unsafe.As<byte, ushort>(ref rings[2]), _availIdx);
            _mmio.Notify(0);

            ushort target = (ushort)(_lastUsed + Depth);
            while (true)
            {
                ushort usedIdx = Volatile.Read(ref Unsafe.As<byte, ushort>(ref Rings()[_usedIdxOffset]));
                if (usedIdx == target)
                {
                    break;
                }

                // Interrupt when the whole batch is in (used_event = last - 1 of the batch).
                Volatile.Write(ref Unsafe.As<byte, ushort>(ref Rings()[_usedEventOffset]), (ushort)(target - 1));
                Interlocked.MemoryBarrier();
                if (Volatile.Read(ref Unsafe.As<byte, ushort>(ref Rings()[_usedIdxOffset])) == target)
                {
                    break;
                }

                if (!_interrupt.Wait(TimeSpan.FromSeconds(10)))
                {
                    throw new InvalidOperationException("The device did not complete the batch.");
                }
            }

            _lastUsed = target;
            consumed += Depth;
        }

        return consumed;
    }

    private Span<byte> Rings() =>
        _driver.Memory.TryGetSpan(_ringsBase, _ringsLength, out Span<byte> span) ? span : throw new InvalidOperationException("The rings are not guest memory.");
}
