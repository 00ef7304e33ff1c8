using System;
using System.Diagnostics.Metrics;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport.Pci;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>
/// Interrupts raised from an I/O thread while a vCPU masks, unmasks and reads: the embedder is never asked to
/// raise a vector it was last told is masked, nothing is left pending once everything is unmasked, and the
/// ignored accesses are counted in virtio.pci.ignored_accesses.
/// </summary>
public sealed class PciConcurrencyTests
{
    [Fact]
    public void RaisesFromAnIoThread_WhileTheVcpuMasksAndUnmasks_NeverReachAMaskedVector()
    {
        using var rig = new PciRig(queues: 1);
        rig.Driver.Probe();
        rig.Driver.EnableMsiX(v => new MsiMessage(0xFEE0_0000, 0x60u + v));
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        Assert.True(rig.Function.TryGetBarAddress(1, out ulong table));
        const int Raises = 20_000;
        using var go = new Barrier(2);
        int done = 0;
        var io = new Thread(() =>
        {
            go.SignalAndWait(TestContext.Current.CancellationToken);
            for (int i = 0; i < Raises; i++)
            {
                rig.Function.Device.GuestNotifier!.Notify(InterruptReason.UsedBuffer, 0);
            }

            Volatile.Write(ref done, 1);
        });
        io.Start();
        go.SignalAndWait(TestContext.Current.CancellationToken);
        for (uint step = 0; Volatile.Read(ref done) == 0; step++)
        {
            rig.Driver.WriteMemory(table + 16 + 12, 4, step & 1); // vector 1's Mask
            if (step % 7 == 0)
            {
                rig.Driver.SetMsiXFunctionMask(step % 14 == 0);
            }
        }

        Assert.True(io.Join(TimeSpan.FromSeconds(30)));
        rig.Driver.SetMsiXFunctionMask(false);
        rig.Driver.WriteMemory(table + 16 + 12, 4, 0);
        Assert.Equal(0, rig.MsiX.RaisedWhileMasked);
        Assert.False(rig.Driver.IsMsiXPending(1));
        Assert.InRange(rig.MsiX.RaisedCount(1), 1, Raises);
    }

    [Fact]
    public void IgnoredAccesses_AreCounted_WithTheDevicesName()
    {
        using var rig = new PciRig();
        rig.Device.MetricsName = "pci-ignored-accesses";
        long counted = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = static (instrument, l) =>
            {
                if (instrument.Meter.Name == "Virtio.Core" && instrument.Name == "virtio.pci.ignored_accesses")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "virtio.device" && (string?)tag.Value == "pci-ignored-accesses")
                {
                    Interlocked.Add(ref counted, value);
                }
            }
        });
        listener.Start();
        rig.Function.WriteConfigSpace(0x01, new byte[2]); // misaligned
        rig.Function.ReadConfigSpace(0x1000, new byte[4]); // out of range
        rig.Function.ReadConfigSpace(0x01, new byte[2]); // the same kind again: logged once, counted twice
        Assert.Equal(3, Interlocked.Read(ref counted));
        Assert.Equal(1, rig.Logged("ConfigWrongWidth"));
    }
}
