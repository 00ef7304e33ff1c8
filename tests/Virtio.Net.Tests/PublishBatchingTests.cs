using System;
using System.Buffers.Binary;
using System.Net.NetworkInformation;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// Passes over a data queue inside one <see cref="DeferredCalls"/> section on the I/O thread (what one
/// kick handler or one wake-up runs) reach the guest with one used->idx publish and one interrupt,
/// not one per pass: the net queues defer their publish to the end of the section, as blk does.
/// </summary>
public sealed class PublishBatchingTests
{
    private const int Passes = 4;
    private const int FramesPerPass = 3;

    [Fact]
    public void Transmit_SeveralKicksInOneSection_OnePublish_OneInterrupt()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options(), queueSize: 64);
        int before = rig.Interrupts.UsedBuffer;

        ushort usedInside = RunInOneSection(rig, static rig =>
        {
            for (int pass = 0; pass < Passes; pass++)
            {
                for (int i = 0; i < FramesPerPass; i++)
                {
                    rig.Send(Frames.Make(60 + i, Frames.GuestMac)); // each Send kicks: a pass of its own
                }
            }

            return UsedIdx(rig.Tx);
        });

        // Nothing was published before the section ended, and then everything, with one interrupt.
        Assert.Equal(0, usedInside);
        Assert.Equal(Passes * FramesPerPass, UsedIdx(rig.Tx));
        Assert.Equal(1, rig.Interrupts.UsedBuffer - before);
        Assert.Equal(Passes * FramesPerPass, rig.Device.Counters.TxFrames);
        for (int i = 0; i < Passes * FramesPerPass; i++)
        {
            Assert.Equal(Frames.Make(60 + (i % FramesPerPass), Frames.GuestMac), pipe.Read().Frame);
        }
    }

    [Fact]
    public void Receive_SeveralKicksInOneSection_OnePublish_OneInterrupt()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options(), queueSize: 64);
        for (int i = 0; i < Passes * FramesPerPass; i++)
        {
            pipe.Write(Frames.Make(100 + i, Frames.GuestMac));
        }

        // The first frame is read as soon as it is ready and held: the guest has no buffers yet.
        NetRig.WaitUntil(() => rig.Device.Counters.RxStalls >= 1, "the receive queue held a frame for want of buffers");
        int before = rig.Interrupts.UsedBuffer;

        ushort usedInside = RunInOneSection(rig, static rig =>
        {
            for (int pass = 0; pass < Passes; pass++)
            {
                rig.AddRxBuffers(FramesPerPass, 2048); // kicks: a pass that fills them all
            }

            return UsedIdx(rig.Rx);
        });

        Assert.Equal(0, usedInside);
        Assert.Equal(Passes * FramesPerPass, UsedIdx(rig.Rx));
        Assert.Equal(1, rig.Interrupts.UsedBuffer - before);
        for (int i = 0; i < Passes * FramesPerPass; i++)
        {
            Assert.Equal(Frames.Make(100 + i, Frames.GuestMac), rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        }
    }

    private static ushort RunInOneSection(NetRig rig, Func<NetRig, ushort> passes)
    {
        ushort used = ushort.MaxValue;
        IoThreadRunResult ran = rig.IoThread.RunAndWait(
            _ =>
            {
                // The mmio rig processes a kick on the notifying thread: here, the I/O thread, in the section.
                using DeferredCallSection section = DeferredCalls.Section();
                used = passes(rig);
            },
            null,
            NetRig.Timeout);
        Assert.Equal(IoThreadRunResult.Ran, ran);
        return used;
    }

    private static ushort UsedIdx(GuestDriver driver) =>
        BinaryPrimitives.ReadUInt16LittleEndian(driver.Span(new(driver.UsedRing.Value + SplitRingLayout.UsedIdxOffset), 2));

    // Without EVENT_IDX (the rig never negotiates it) every publish that moves used->idx raises an
    // interrupt: interrupts count publishes.
    private static NetDeviceOptions Options() => new() { MacAddress = new PhysicalAddress(Frames.GuestMac), ControlQueue = false };
}
