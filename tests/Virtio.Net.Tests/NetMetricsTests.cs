using System;
using System.Collections.Generic;
using System.Diagnostics.Metrics;
using System.Net.NetworkInformation;
using Xunit;

namespace Virtio.Net.Tests;

[Collection(MeterGroup.Name)]
public sealed class NetMetricsTests
{
    [Fact]
    public void Meter_ReportsFramesAndBytesByDirection_AndDropsByReason()
    {
        var totals = new Dictionary<string, long>();
        using MeterListener listener = Listen("Virtio.Net", totals);

        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions { MacAddress = new PhysicalAddress(Frames.GuestMac), Mtu = 1500, Name = "net-metrics-test" });
        rig.Send(Frames.Make(100));
        rig.Send(Frames.Make(1500 + 18 + 1));                                              // over the MTU
        rig.Send(Frames.Make(100), new VirtioNetHeader(0, 9, 0, 0, 0, 0, 0));             // unknown GSO type
        Assert.Equal(100, pipe.Read().Frame.Length);

        rig.AddRxBuffers(2, 2048);
        pipe.Write(Frames.Make(200, Frames.GuestMac));
        rig.WaitUsed(0);

        long Get(string key)
        {
            lock (totals)
            {
                return totals.GetValueOrDefault(key);
            }
        }

        // Tagged with the device's name and, for frames and bytes, the virtqueue (rx 0, tx 1).
        const string device = "|virtio.device=net-metrics-test";
        Assert.Equal(1, Get("virtio.net.frames" + device + "|virtio.queue=1|direction=tx"));
        Assert.Equal(100, Get("virtio.net.bytes" + device + "|virtio.queue=1|direction=tx"));
        Assert.Equal(1, Get("virtio.net.frames" + device + "|virtio.queue=0|direction=rx"));
        Assert.Equal(200, Get("virtio.net.bytes" + device + "|virtio.queue=0|direction=rx"));
        Assert.Equal(1, Get("virtio.net.drops" + device + "|reason=bad_length"));
        Assert.Equal(1, Get("virtio.net.drops" + device + "|reason=malformed_header"));

        // The per-device counters agree with the meter.
        Assert.Equal(1, rig.Device.Counters.TxFrames);
        Assert.Equal(200, rig.Device.Counters.RxBytes);
        Assert.Equal(1, rig.Device.Counters.Drops(NetDropReason.BadLength));
    }

    [Fact]
    public void CoreInstruments_TagTheDeviceWithItsNetDeviceName()
    {
        var seen = new Dictionary<string, long>();
        using MeterListener listener = Listen("Virtio.Core", seen);

        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions { MacAddress = new PhysicalAddress(Frames.GuestMac), Mtu = 1500, Name = "net-core-metrics-test" });
        listener.RecordObservableInstruments();

        // Virtio.Core's per-queue gauge, under the name Virtio.Net uses: receive queue 0, transmit queue 1.
        lock (seen)
        {
            Assert.Contains("virtio.queue.in_flight|virtio.device=net-core-metrics-test|virtio.queue=0", seen.Keys);
            Assert.Contains("virtio.queue.in_flight|virtio.device=net-core-metrics-test|virtio.queue=1", seen.Keys);
        }
    }

    /// <summary>Sums every measurement of <paramref name="meter"/> into <paramref name="totals"/>, keyed by instrument and tags (lock it to read).</summary>
    private static MeterListener Listen(string meter, Dictionary<string, long> totals)
    {
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == meter)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };

        void Add(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string key = instrument.Name;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                key += $"|{tag.Key}={tag.Value}";
            }

            lock (totals)
            {
                totals[key] = totals.GetValueOrDefault(key) + value;
            }
        }

        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Add(instrument, value, tags));
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => Add(instrument, value, tags));
        listener.Start();
        return listener;
    }
}
