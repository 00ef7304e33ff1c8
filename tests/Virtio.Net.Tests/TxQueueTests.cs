using System;
using System.Net.NetworkInformation;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// The transmit queue under a hostile or busy peer: the pass budget against a guest that refills the
/// ring as fast as it drains, a backend that refuses frames, a chain that breaks the ring, and GSO
/// headers the guest did not negotiate.
/// </summary>
public sealed class TxQueueTests
{
    private static NetDeviceOptions Options() => new() { MacAddress = new PhysicalAddress(Frames.GuestMac) };

    [Fact]
    public void GuestRefillingTheRingDuringThePass_StopsThePassAtItsBudget_AndTheIoThreadSendsTheRest()
    {
        // Two one-descriptor chains (header and frame in one buffer), each put back on the avail ring
        // as soon as the device has used it: the guest never lets the ring run dry.
        const int total = 40;
        var pipe = new PipeFrames();
        var backend = new TxHookBackend(pipe.Backend);
        using var rig = new NetRig([backend], Options());
        GuestDriver tx = rig.Tx;
        for (ushort head = 0; head < 2; head++)
        {
            tx.WriteDescriptor(head, tx.BlockAddress(head).Value, VirtioNetHeader.Size + 60, 0, 0);
            Span<byte> buffer = tx.Span(tx.BlockAddress(head), VirtioNetHeader.Size + 60);
            buffer[..VirtioNetHeader.Size].Clear();
            Frames.Make(60).CopyTo(buffer[VirtioNetHeader.Size..]);
        }

        int onTestThread = 0;
        int onIoThread = 0;
        backend.BeforeTransmit = index =>
        {
            // The chain being sent is head index % 2; the other one was used by the frame before.
            if (index + 1 < total)
            {
                tx.PutOnAvailRing((ushort)((index + 1) % 2));
                tx.Kick();
            }

            if (rig.IoThread.IsCurrentThread)
            {
                Interlocked.Increment(ref onIoThread);
            }
            else
            {
                Interlocked.Increment(ref onTestThread);
            }

            return true;
        };

        tx.PutOnAvailRing(0);
        tx.Kick();
        rig.Mmio.Notify(1);

        // One pass takes at most 2 x queue size chains; the kick it schedules on the I/O thread sends the rest.
        Assert.Equal(2 * 16, Volatile.Read(ref onTestThread));
        NetRig.WaitUntil(() => rig.Device.Counters.TxFrames == total, $"{total} frames are sent");
        Assert.Equal(total - (2 * 16), Volatile.Read(ref onIoThread));
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void BackendRefusingAFrame_DropsItAsBackendBusy_TheChainReturns_AndTheNextFrameIsSent()
    {
        var pipe = new PipeFrames();
        var backend = new TxHookBackend(pipe.Backend) { BeforeTransmit = index => index != 0 };
        using var rig = new NetRig([backend], Options());

        ushort refused = rig.Send(Frames.Make(60));
        Assert.True(rig.TryTakeUsed(1, out ushort head, out uint length, out _));
        Assert.Equal(refused, head);
        Assert.Equal(0u, length);
        Assert.Equal(1, rig.Device.Counters.Drops(NetDropReason.BackendBusy));
        Assert.Equal(0, rig.Device.Counters.TxFrames);

        byte[] frame = Frames.Make(61);
        rig.Send(frame);
        Assert.Equal(frame, pipe.Read().Frame);
        Assert.Equal(1, rig.Device.Counters.TxFrames);
    }

    [Fact]
    public void ChainWithANextIndexPastTheRing_BreaksTheQueue_NothingIsSentOrCounted()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        GuestDriver tx = rig.Tx;

        // Descriptor 0: the header, NEXT to descriptor 16 of a 16-entry table.
        tx.WriteDescriptor(0, tx.BlockAddress(0).Value, VirtioNetHeader.Size, (ushort)DescriptorFlags.Next, 16);
        tx.PutOnAvailRing(0);
        tx.Kick();
        rig.Mmio.Notify(1);

        SplitVirtqueue queue = rig.Device.Queues[1];
        Assert.Equal(QueueError.InvalidNextIndex, queue.Error);
        Assert.NotEqual(DeviceStatus.None, rig.Device.Status & DeviceStatus.DeviceNeedsReset);
        Assert.False(rig.TryTakeUsed(1, out _, out _, out _));
        Assert.Equal(0, rig.Device.Counters.Drops(NetDropReason.MalformedHeader));
        Assert.Equal(0, rig.Device.Counters.Drops(NetDropReason.BadLength));
        Assert.False(pipe.TryReadNow(out _));
    }

    [Fact]
    public void GsoHeaders_OnlyAsNegotiated_EcnUdpAndGsoWithoutPartialChecksumAreDropped()
    {
        // The pipe with headers offers CSUM, HOST_TSO4 and HOST_TSO6; the guest takes all but HOST_TSO6.
        // HOST_ECN and HOST_UFO are never offered.
        var pipe = new PipeFrames(vnetHeaders: true);
        using var rig = new NetRig([pipe.Backend], Options(), wanted: ~NetFeatures.HostTso6);
        Assert.Equal(NetFeatures.Csum | NetFeatures.HostTso4, rig.Features & (NetFeatures.Csum | NetFeatures.HostTso4 | NetFeatures.HostTso6));

        const byte csum = VirtioNetHeader.FlagNeedsCsum;
        rig.Send(Frames.Make(200), new VirtioNetHeader(csum, VirtioNetHeader.GsoTcpV6, 74, 1400, 54, 16, 0));                       // HOST_TSO6 not negotiated
        rig.Send(Frames.Make(200), new VirtioNetHeader(csum, VirtioNetHeader.GsoUdp, 42, 1400, 34, 6, 0));                          // HOST_UFO never offered
        rig.Send(Frames.Make(200), new VirtioNetHeader(csum, VirtioNetHeader.GsoTcpV4 | VirtioNetHeader.GsoEcn, 54, 1400, 34, 16, 0)); // HOST_ECN never offered
        rig.Send(Frames.Make(200), new VirtioNetHeader(0, VirtioNetHeader.GsoTcpV4, 54, 1400, 0, 0, 0));                            // GSO without NEEDS_CSUM
        for (int i = 0; i < 4; i++)
        {
            Assert.True(rig.TryTakeUsed(1, out _, out uint length, out _));
            Assert.Equal(0u, length);
        }

        Assert.Equal(4, rig.Device.Counters.Drops(NetDropReason.MalformedHeader));
        Assert.False(pipe.TryReadNow(out _));

        var tso4 = new VirtioNetHeader(csum, VirtioNetHeader.GsoTcpV4, 54, 1400, 34, 16, 0);
        byte[] frame = Frames.Make(200);
        rig.Send(frame, tso4);
        var (header, sent) = pipe.Read();
        Assert.Equal(frame, sent);
        Assert.Equal(VirtioNetHeader.GsoTcpV4, header.GsoType);
    }

    [Fact]
    public void GsoTcpV6_IsSent_WhenHostTso6IsNegotiated()
    {
        var pipe = new PipeFrames(vnetHeaders: true);
        using var rig = new NetRig([pipe.Backend], Options());
        Assert.NotEqual(0UL, rig.Features & NetFeatures.HostTso6);

        byte[] frame = Frames.Make(300);
        rig.Send(frame, new VirtioNetHeader(VirtioNetHeader.FlagNeedsCsum, VirtioNetHeader.GsoTcpV6, 74, 1400, 54, 16, 0));
        var (header, sent) = pipe.Read();
        Assert.Equal(frame, sent);
        Assert.Equal(VirtioNetHeader.GsoTcpV6, header.GsoType);
        Assert.Equal(0, rig.Device.Counters.Drops(NetDropReason.MalformedHeader));
    }
}
