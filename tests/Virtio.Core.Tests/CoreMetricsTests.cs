using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Linq;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests;

/// <summary>
/// The "Virtio.Core" instruments (docs/metrics.md) as a MeterListener sees them: device and queue
/// events tagged with the device's name and the queue's index, and the per-queue in-flight gauge.
/// Each test names its device and looks only at measurements tagged with that name, so the tests
/// run in parallel with every other device in the process.
/// </summary>
public sealed class CoreMetricsTests
{
    [Fact]
    public void QueueError_AndNeedsReset_CarryTheDeviceAndTheQueue()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory, queues: 2) { MetricsName = "core-metrics-broken" };
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        using var measurements = new CoreMeasurements();
        var queue0 = new GuestDriver(guest.Memory, new GuestAddress(0x80000), 16, 8 << 20, 4096, eventIdx: false, indirect: false);
        mmio.Initialize(VirtioFeatures.CoreDefaults, queue0, guest);

        // Queue 1's avail idx more than a ring ahead: the queue breaks, the device needs a reset.
        guest.SetAvailIndex((ushort)(guest.AvailIndex + 17));
        mmio.Notify(1);
        Assert.True((device.Status & DeviceStatus.DeviceNeedsReset) != 0);

        var error = Assert.Single(measurements.Of("virtio.queue.errors", "core-metrics-broken"));
        Assert.Equal(1, error.Value);
        Assert.Equal(1, error.Tags["virtio.queue"]);
        var reset = Assert.Single(measurements.Of("virtio.device.needs_reset", "core-metrics-broken"));
        Assert.Equal(1, reset.Value);
        Assert.False(reset.Tags.ContainsKey("virtio.queue"));
    }

    [Fact]
    public void StaleCompletion_CarriesTheDeviceAndTheQueue()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory) { MetricsName = "core-metrics-stale", HoldCompletions = true };
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        using var measurements = new CoreMeasurements();
        guest.AddChain(BufferSpec.Write(8));
        guest.Kick();
        mmio.Notify(0);
        var (_, head, _) = Assert.Single(device.Held);

        // Restored while the chain is in flight: its late completion is dropped and counted.
        SplitVirtqueue queue = device.Queues[0];
        Assert.True(queue.TryRestoreState(queue.SaveState(), out _));
        Assert.False(queue.AddUsed(head, 8));

        var stale = Assert.Single(measurements.Of("virtio.queue.completions.stale", "core-metrics-stale"));
        Assert.Equal(0, stale.Tags["virtio.queue"]);
    }

    [Fact]
    public void IgnoredRegisterAccess_CarriesTheDevice()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory) { MetricsName = "core-metrics-mmio" };
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        using var measurements = new CoreMeasurements();

        mmio.Write(VirtioMmioRegister.MagicValue, 0); // read-only

        var ignored = Assert.Single(measurements.Of("virtio.mmio.ignored_accesses", "core-metrics-mmio"));
        Assert.Equal(1, ignored.Value);
    }

    [Fact]
    public void QueueWithoutADevice_CarriesTheQueueAlone()
    {
        using var guest = new GuestDriver();
        SplitVirtqueue queue = guest.CreateDeviceQueue();
        using var measurements = new CoreMeasurements();

        guest.SetAvailIndex((ushort)(guest.AvailIndex + 17));
        Assert.False(queue.TryPopChain(out _));
        Assert.Equal(QueueError.AvailIndexTooFar, queue.Error);

        // Other tests break device-less queues in parallel: at least this one is there, none has a device tag.
        var errors = measurements.All("virtio.queue.errors").Where(m => !m.Tags.ContainsKey("virtio.device")).ToList();
        Assert.NotEmpty(errors);
        Assert.All(errors, m => Assert.Equal(0, m.Tags["virtio.queue"]));
    }

    [Fact]
    public void InFlightGauge_CountsChainsPoppedAndNotReturned_PerQueue()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory, queues: 2) { MetricsName = "core-metrics-in-flight", HoldCompletions = true };
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        using var measurements = new CoreMeasurements();
        Assert.Equal(new[] { 0, 0 }, measurements.Observe("virtio.queue.in_flight", "core-metrics-in-flight"));

        for (int i = 0; i < 4; i++)
        {
            guest.AddChain(BufferSpec.Write(8));
        }

        guest.Kick();
        mmio.Notify(0);
        Assert.Equal(4, device.Held.Count);
        Assert.Equal(new[] { 4, 0 }, measurements.Observe("virtio.queue.in_flight", "core-metrics-in-flight"));

        guest.AddChain(BufferSpec.Write(8)); // made available, not popped (no notify): not counted
        guest.Kick();
        Assert.Equal(new[] { 4, 0 }, measurements.Observe("virtio.queue.in_flight", "core-metrics-in-flight"));

        device.CompleteHeld();
        Assert.Equal(new[] { 0, 0 }, measurements.Observe("virtio.queue.in_flight", "core-metrics-in-flight"));
    }

    [Fact]
    public void AvailableGauge_CountsChainsMadeAvailableAndNotPopped_AsTheDeviceLastSawThem()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory, queues: 2) { MetricsName = "core-metrics-available", MaxPopsPerPass = 2 };
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        using var measurements = new CoreMeasurements();
        Assert.Equal(new[] { 0, 0 }, measurements.Observe("virtio.queue.available", "core-metrics-available"));

        for (int i = 0; i < 5; i++)
        {
            guest.AddChain(BufferSpec.Write(8));
        }

        guest.Kick();
        // Not looked at yet: the gauge reads the device's last look, never guest memory.
        Assert.Equal(new[] { 0, 0 }, measurements.Observe("virtio.queue.available", "core-metrics-available"));

        mmio.Notify(0); // two popped, three left
        Assert.Equal(new[] { 3, 0 }, measurements.Observe("virtio.queue.available", "core-metrics-available"));

        mmio.Notify(0);
        mmio.Notify(0);
        Assert.Equal(5, device.Completed.Count);
        Assert.Equal(new[] { 0, 0 }, measurements.Observe("virtio.queue.available", "core-metrics-available"));
    }

    [Fact]
    public void UnnamedDevices_GetDistinctNames()
    {
        using var guest = new GuestDriver();
        var first = new RecordingDevice(guest.Memory);
        var second = new RecordingDevice(guest.Memory);
        Assert.StartsWith("device", first.MetricsName, StringComparison.Ordinal);
        Assert.NotEqual(first.MetricsName, second.MetricsName);
        Assert.Equal(first.MetricsName, first.MetricsName);
    }

    private readonly record struct Recorded(string Instrument, long Value, Dictionary<string, object?> Tags);

    /// <summary>Every Virtio.Core measurement while it lives.</summary>
    private sealed class CoreMeasurements : IDisposable
    {
        private readonly MeterListener _listener;
        private readonly ConcurrentQueue<Recorded> _recorded = new();

        public CoreMeasurements()
        {
            _listener = new MeterListener
            {
                InstrumentPublished = static (instrument, listener) =>
                {
                    if (instrument.Meter.Name == "Virtio.Core")
                    {
                        listener.EnableMeasurementEvents(instrument);
                    }
                },
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
            _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
            _listener.Start();
        }

        public IEnumerable<Recorded> All(string instrument) => _recorded.Where(m => m.Instrument == instrument);

        public List<Recorded> Of(string instrument, string device) =>
            All(instrument).Where(m => m.Tags.TryGetValue("virtio.device", out object? d) && (string?)d == device).ToList();

        /// <summary>An observable instrument's values now, one per queue of <paramref name="device"/> in queue order.</summary>
        public int[] Observe(string instrument, string device)
        {
            _recorded.Clear();
            _listener.RecordObservableInstruments();
            return Of(instrument, device).OrderBy(m => (int)m.Tags["virtio.queue"]!).Select(m => (int)m.Value).ToArray();
        }

        public void Dispose() => _listener.Dispose();

        private void Add(string instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var copy = new Dictionary<string, object?>();
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                copy[tag.Key] = tag.Value;
            }

            _recorded.Enqueue(new Recorded(instrument, value, copy));
        }
    }
}
