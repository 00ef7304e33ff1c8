using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.IO;
using System.Runtime.CompilerServices;
using System.Threading;

namespace Virtio.VhostUserDaemon;

/// <summary>
/// Per-device totals for the summary table (at exit and on SIGUSR1): listens to the Virtio.Blk and
/// Virtio.Net meters and sums each counter by the measurement's <c>virtio.device</c> tag.
/// </summary>
internal sealed class DeviceSummary : IDisposable
{
    private static readonly (string Column, string Blk, string Net)[] s_columns =
    [
        ("requests", "virtio.blk.requests.completed", "virtio.net.frames"),
        ("errors", "virtio.blk.requests.failed", "virtio.net.drops"),
        ("bytes to backend", "virtio.blk.bytes.written", "virtio.net.bytes|tx"),
        ("bytes to guest", "virtio.blk.bytes.read", "virtio.net.bytes|rx"),
    ];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<(string Device, string Instrument), StrongBox<long>> _totals = new();
    private readonly List<(string Device, string Kind, string Socket)> _devices = [];

    public DeviceSummary()
    {
        _listener.InstrumentPublished = static (instrument, listener) =>
        {
            if (instrument.Meter.Name is "Virtio.Blk" or "Virtio.Net" && instrument is Counter<long>)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument.Name, value, tags));
        _listener.Start();
    }

    /// <summary>A row of the table, in the order given.</summary>
    public void AddDevice(string device, string kind, string socket) => _devices.Add((device, kind, socket));

    /// <summary>
    /// Writes the table: one row per device; for blk requests completed, failed, bytes written and
    /// read; for net frames, drops, bytes sent (tx) and received (rx).
    /// </summary>
    public void Write(TextWriter writer)
    {
        writer.WriteLine($"{"device",-8} {"kind",-4} {"requests",12} {"errors",8} {"bytes to backend",16} {"bytes to guest",16}  socket");
        foreach (var (device, kind, socket) in _devices)
        {
            long Get(int column) => _totals.TryGetValue((device, kind == "blk" ? s_columns[column].Blk : s_columns[column].Net), out StrongBox<long>? box) ? Interlocked.Read(ref box.Value) : 0;
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{device,-8} {kind,-4} {Get(0),12} {Get(1),8} {Get(2),16} {Get(3),16}  {socket}"));
        }

        writer.Flush();
    }

    public void Dispose() => _listener.Dispose();

    private void Add(string instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        string? device = null;
        string? direction = null;
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            if (tag.Key == "virtio.device")
            {
                device = tag.Value as string;
            }
            else if (tag.Key == "direction")
            {
                direction = tag.Value as string;
            }
        }

        if (device is null)
        {
            return;
        }

        // Bytes per direction; every key is a literal, so a measurement allocates nothing once its row exists.
        string key = instrument != "virtio.net.bytes" ? instrument : direction == "tx" ? "virtio.net.bytes|tx" : "virtio.net.bytes|rx";
        StrongBox<long> box = _totals.GetOrAdd((device, key), static _ => new StrongBox<long>());
        Interlocked.Add(ref box.Value, value);
    }
}
