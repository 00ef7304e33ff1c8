using System;
using System.Net.NetworkInformation;
using Virtio.Core.Devices;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

public sealed class NetDeviceLifecycleTests
{
    [Fact]
    public void Reset_ThenReinitialize_MovesFramesAgain_WithStateBackToDefaults()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions { MacAddress = new PhysicalAddress(Frames.GuestMac) });
        Assert.Equal(0, rig.Command(0, 0, [0]));
        Assert.Equal(0, rig.Command(1, 1, [0x02, 0, 0, 0, 0, 1]));
        Assert.False(rig.Device.Promiscuous);

        rig.Mmio.Status = DeviceStatus.None;
        Assert.False(rig.Device.IsLive);
        Assert.True(rig.Device.Promiscuous);
        Assert.Equal(Frames.GuestMac, rig.ReadConfig(0, 6).ToArray());

        // The guest starts over with fresh rings, as a driver does after reset.
        var queues = new GuestDriver[rig.Queues.Length];
        for (int i = 0; i < queues.Length; i++)
        {
            queues[i] = new GuestDriver(rig.Memory, rig.Queues[i].DescriptorTable, rig.Queues[i].QueueSize, (2UL << 20) + ((ulong)i * (4UL << 20)), 4096, eventIdx: false, indirect: false, heapSize: 4UL << 20);
        }

        rig.Mmio.Initialize(~(VirtioFeatures.EventIdx | VirtioFeatures.IndirectDescriptors), queues);
        Array.Copy(queues, rig.Queues, queues.Length);
        rig.AddRxBuffers(2, 2048);
        byte[] frame = Frames.Make(90, Frames.GuestMac);
        pipe.Write(frame);
        Assert.Equal(frame, rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        byte[] sent = Frames.Make(70);
        rig.Send(sent);
        Assert.Equal(sent, pipe.Read().Frame);
    }

    [Fact]
    public void RxChain_WithoutWritableBytes_IsReturnedEmpty_AndTheNextChainTakesTheFrame()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions());
        ushort readOnly = rig.Rx.AddChain(BufferSpec.Readable(64));
        rig.AddRxBuffers(1, 2048);
        byte[] frame = Frames.Make(100);
        pipe.Write(frame);

        var first = rig.WaitUsed(0);
        Assert.Equal(readOnly, first.Head);
        Assert.Equal(0u, first.Length);
        Assert.Equal(frame, rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void FeaturesOk_IsRefused_WhenADependencyIsMissing()
    {
        var pipe = new PipeFrames(vnetHeaders: true);
        Assert.Throws<InvalidOperationException>(() => new NetRig([pipe.Backend], new NetDeviceOptions(), wanted: ~NetFeatures.GuestCsum));
        Assert.Throws<InvalidOperationException>(() => new NetRig([pipe.Backend], new NetDeviceOptions(), wanted: ~NetFeatures.CtrlVq));
        Assert.Throws<InvalidOperationException>(() => new NetRig([pipe.Backend], new NetDeviceOptions(), wanted: ~NetFeatures.Csum)); // HOST_TSO4/6 without CSUM
    }

    [Fact]
    public void PairsSetBackToOne_AKickOnTheSecondPairsTransmitQueue_SendsNothing_UntilThePairIsActiveAgain()
    {
        var first = new PipeFrames();
        var second = new PipeFrames();
        using var rig = new NetRig([first.Backend, second.Backend], new NetDeviceOptions());
        Assert.Equal(0, rig.Command(4, 0, [2, 0]));
        Assert.Equal(0, rig.Command(4, 0, [1, 0]));
        Assert.Equal(1, rig.Device.ActiveQueuePairs);

        // The second pair is inactive: the kick of its transmit queue is ignored, the chain stays available.
        byte[] frame = Frames.Make(70);
        ushort head = rig.Send(frame, txQueue: 3);
        Assert.False(rig.TryTakeUsed(3, out _, out _, out _));
        Assert.False(second.TryReadNow(out _));
        Assert.Equal(0, rig.Device.Counters.TxFrames);

        Assert.Equal(0, rig.Command(4, 0, [2, 0]));
        rig.Mmio.Notify(3);
        Assert.Equal(frame, second.Read().Frame);
        Assert.True(rig.TryTakeUsed(3, out ushort used, out _, out _));
        Assert.Equal(head, used);
    }
}
