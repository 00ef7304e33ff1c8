using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// The "Virtio.Blk" instruments (docs/metrics.md) as a MeterListener sees them. Each test names its
/// device and counts only the measurements tagged with that name, so the tests run in parallel
/// with every other device in the process.
/// </summary>
public sealed class BlockMetricsTests
{
    private const ulong Capacity = 1 << 20;

    [Theory]
    [InlineData(true)]   // FLUSH negotiated, writeback: the write completes as a write
    [InlineData(false)]  // FLUSH not negotiated: writethrough, each write completes through its flush
    public void BytesWritten_CountsEveryWrittenByte_InWritebackAndWritethrough(bool flush)
    {
        using var rig = NewRig(out MeterTotals totals, new MemoryBlockBackend(Capacity), wanted: flush ? ulong.MaxValue : ~BlockFeatures.Flush);
        using (totals)
        {
            Assert.Equal(flush, rig.Device.IsWritebackActive);

            Assert.Equal(BlockStatus.Ok, rig.Write(8, BlkRig.Pattern(16384, 1)).BlockStatus);
            Assert.Equal(BlockStatus.Ok, rig.Write(64, BlkRig.Pattern(512, 2)).BlockStatus);
            Assert.Equal(BlockStatus.Ok, rig.Read(8, 4096).BlockStatus);

            Assert.Equal(16384 + 512, totals.Sum("virtio.blk.bytes.written"));
            Assert.Equal(4096, totals.Sum("virtio.blk.bytes.read"));
            Assert.Equal(3, totals.Sum("virtio.blk.requests.completed"));
            Assert.Equal(0, totals.Sum("virtio.blk.requests.failed"));
        }
    }

    [Fact]
    public void BytesWritten_DriverSwitchedToWritethrough_CountsEveryWrittenByte()
    {
        using var rig = NewRig(out MeterTotals totals, new MemoryBlockBackend(Capacity));
        using (totals)
        {
            rig.WriteConfig(32, 0); // writeback = 0 (CONFIG_WCE)
            Assert.False(rig.Device.IsWritebackActive);

            Assert.Equal(BlockStatus.Ok, rig.Write(8, BlkRig.Pattern(8192, 3)).BlockStatus);

            Assert.Equal(8192, totals.Sum("virtio.blk.bytes.written"));
        }
    }

    [Fact]
    public void Failed_OutOfRangeRead_CountsOneFailedAndOneCompleted_AndNoBytes()
    {
        using var rig = NewRig(out MeterTotals totals, new MemoryBlockBackend(Capacity));
        using (totals)
        {
            Assert.Equal(BlockStatus.IoError, rig.Read(Capacity / 512, 512).BlockStatus);

            Assert.Equal(1, totals.Sum("virtio.blk.requests.completed"));
            Assert.Equal(1, totals.Sum("virtio.blk.requests.failed"));
            Assert.Equal(0, totals.Sum("virtio.blk.bytes.read"));
            Assert.Equal(0, totals.Count("virtio.blk.request.duration")); // refused by the parser: never at the backend
        }
    }

    [Fact]
    public void Measurements_CarryTheQueueTheRequestCameThrough()
    {
        var options = new BlockDeviceOptions { QueueCount = 2, QueueSize = 64, Name = NewName() };
        using var rig = NewRig(out MeterTotals totals, new MemoryBlockBackend(Capacity), options);
        using (totals)
        {
            Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(4096, 4), queue: 1).BlockStatus);
            Assert.Equal(BlockStatus.Ok, rig.Read(0, 512, queue: 0).BlockStatus);

            Assert.Equal(4096, totals.Sum("virtio.blk.bytes.written", queue: 1));
            Assert.Equal(0, totals.Sum("virtio.blk.bytes.written", queue: 0));
            Assert.Equal(512, totals.Sum("virtio.blk.bytes.read", queue: 0));
            Assert.Equal(1, totals.Sum("virtio.blk.requests.completed", queue: 0));
            Assert.Equal(1, totals.Sum("virtio.blk.requests.completed", queue: 1));
        }
    }

    [Fact]
    public void Duration_OneMeasurementPerBackendRequest_TaggedWithTheGuestsOperation()
    {
        // Writethrough: the write reaches the backend as a write and then a flush, and is measured once, as a write.
        using var rig = NewRig(out MeterTotals totals, new MemoryBlockBackend(Capacity), wanted: ~BlockFeatures.Flush);
        using (totals)
        {
            Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(4096, 5)).BlockStatus);
            Assert.Equal(BlockStatus.Ok, rig.Read(0, 4096).BlockStatus);
            Assert.Equal(BlockStatus.Ok, rig.Read(8, 4096).BlockStatus);

            Assert.Equal(1, totals.Count("virtio.blk.request.duration", operation: "write"));
            Assert.Equal(2, totals.Count("virtio.blk.request.duration", operation: "read"));
            Assert.Equal(0, totals.Count("virtio.blk.request.duration", operation: "flush"));
            Assert.True(totals.Sum("virtio.blk.request.duration") > 0);
        }
    }

    [Fact]
    public void InFlightGauge_CountsHeldRequests_AndDropsToZeroWhenTheyComplete()
    {
        var backend = new FaultInjectingBlockBackend(new MemoryBlockBackend(Capacity)) { Rule = static _ => Fault.Hold };
        using var rig = NewRig(out MeterTotals totals, backend);
        using (totals)
        {
            Pending first = rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 512);
            Pending second = rig.Post(0, (uint)BlockRequestType.In, 8, inLength: 512);
            backend.WaitHeld(2);

            Assert.Equal(2, totals.Observe("virtio.blk.queue.in_flight", queue: 0));
            Assert.Equal(0, totals.Observe("virtio.blk.queue.completions_pending", queue: 0));

            // Virtio.Core's per-queue gauge (chains popped, not returned) agrees, under the name Virtio.Blk uses.
            Assert.Equal(2, totals.Observe("virtio.queue.in_flight", queue: 0));

            backend.Rule = null;
            Assert.Equal(2, backend.ReleaseHeld());
            Assert.Equal(BlockStatus.Ok, rig.Wait(first).BlockStatus);
            Assert.Equal(BlockStatus.Ok, rig.Wait(second).BlockStatus);

            Assert.Equal(0, totals.Observe("virtio.blk.queue.in_flight", queue: 0));
            Assert.Equal(0, totals.Observe("virtio.queue.in_flight", queue: 0));
        }
    }

    [Fact]
    public void SteadyState_WithEveryInstrumentListenedTo_AllocatesNothingOnTheIoThread()
    {
        const int batch = 16;
        const int rounds = 200;
        using var ioThread = new IoThread("blk-metrics-io");
        ioThread.Start();
        var options = new BlockDeviceOptions { QueueSize = 128, IoThreads = [ioThread], Name = NewName() };
        using var rig = new BlkRig(new MemoryBlockBackend(Capacity), options, queueSize: 128);
        using var controller = new HostNotifierController(rig.Device, new InProcessNotifierBinding(rig.Transport), [ioThread]);

        // Every instrument on, with callbacks that allocate nothing themselves.
        long measurements = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = static (instrument, l) =>
            {
                if (instrument.Meter.Name == "Virtio.Blk")
                {
                    l.EnableMeasurementEvents(instrument, null);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => Interlocked.Increment(ref measurements));
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => Interlocked.Increment(ref measurements));
        listener.Start();

        var pending = new Pending[batch];
        byte[] data = BlkRig.Pattern(4096, 6);
        void Round()
        {
            for (int i = 0; i < batch; i++)
            {
                pending[i] = (i & 1) == 0
                    ? rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false)
                    : rig.Post(0, (uint)BlockRequestType.Out, (ulong)i * 8, data, kick: false);
            }

            rig.Kick(0);
            foreach (Pending p in pending)
            {
                Assert.Equal(BlockStatus.Ok, rig.Wait(p).BlockStatus);
            }

            // The recorder logs each interrupt in a ConcurrentQueue on the I/O thread: emptied, it stays in its first segment.
            while (rig.Line.Raised.TryDequeue(out _))
            {
            }
        }

        for (int i = 0; i < 50; i++)
        {
            Round(); // warm-up: slots grow, methods compile, the listener's instrument states are made
        }

        _ = AllocatedOnIoThread(ioThread);
        long before = AllocatedOnIoThread(ioThread);
        long measuredBefore = Interlocked.Read(ref measurements);
        for (int i = 0; i < rounds; i++)
        {
            Round();
        }

        long allocated = AllocatedOnIoThread(ioThread) - before;

        // Counters, bytes and the duration histogram with their device and queue tags, for 3200 requests: 0 B.
        Assert.True(Interlocked.Read(ref measurements) - measuredBefore >= 3L * batch * rounds);
        Assert.Equal(0, allocated);
    }

    private static long AllocatedOnIoThread(IoThread ioThread)
    {
        var box = new long[1];
        Assert.Equal(IoThreadRunResult.Ran, ioThread.RunAndWait(static state => ((long[])state!)[0] = GC.GetAllocatedBytesForCurrentThread(), box, BlkRig.Bound));
        return box[0];
    }

    private static string NewName() => "metrics-test-" + Guid.NewGuid().ToString("N");

    private static BlkRig NewRig(out MeterTotals totals, IBlockBackend backend, BlockDeviceOptions? options = null, ulong wanted = ulong.MaxValue)
    {
        options ??= new BlockDeviceOptions { QueueSize = 64, Name = NewName() };
        totals = new MeterTotals(options.Name!);
        return new BlkRig(backend, options, wanted);
    }

    /// <summary>Sums and counts of one device's Virtio.Blk measurements while it lives.</summary>
    private sealed class MeterTotals : IDisposable
    {
        private readonly string _device;
        private readonly MeterListener _listener;
        private readonly Dictionary<string, (double Sum, int Count)> _totals = new();

        public MeterTotals(string device)
        {
            _device = device;
            _listener = new MeterListener
            {
                InstrumentPublished = static (instrument, listener) =>
                {
                    // Virtio.Core too: its device and queue instruments carry the same device name.
                    if (instrument.Meter.Name is "Virtio.Blk" or "Virtio.Core")
                    {
                        listener.EnableMeasurementEvents(instrument);
                    }
                },
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
            _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
            _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
            _listener.Start();
        }

        public double Sum(string instrument, int? queue = null, string? operation = null) => Get(Key(instrument, queue, operation)).Sum;

        public int Count(string instrument, int? queue = null, string? operation = null) => Get(Key(instrument, queue, operation)).Count;

        /// <summary>An observable instrument's value now (its callbacks run once).</summary>
        public double Observe(string instrument, int queue)
        {
            string key = Key(instrument, queue, null);
            lock (_totals)
            {
                _totals.Remove(key);
            }

            _listener.RecordObservableInstruments();
            return Sum(instrument, queue);
        }

        public void Dispose() => _listener.Dispose();

        // Each measurement counts under its instrument, and under instrument|queue and instrument|operation.
        private static string Key(string instrument, int? queue, string? operation) =>
            instrument + (queue is { } q ? $"|queue={q}" : "") + (operation is { } o ? $"|op={o}" : "");

        private (double Sum, int Count) Get(string key)
        {
            lock (_totals)
            {
                return _totals.GetValueOrDefault(key);
            }
        }

        private void Add(string instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? device = null;
            int? queue = null;
            string? operation = null;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                switch (tag.Key)
                {
                    case "virtio.device": device = tag.Value as string; break;
                    case "virtio.queue": queue = (int)tag.Value!; break;
                    case "virtio.blk.operation": operation = tag.Value as string; break;
                }
            }

            if (device != _device)
            {
                return;
            }

            lock (_totals)
            {
                Bump(instrument, value);
                if (queue is { } q)
                {
                    Bump(Key(instrument, q, null), value);
                }

                if (operation is { } o)
                {
                    Bump(Key(instrument, null, o), value);
                }
            }
        }

        private void Bump(string key, double value)
        {
            (double sum, int count) = _totals.GetValueOrDefault(key);
            _totals[key] = (sum + value, count + 1);
        }
    }
}
