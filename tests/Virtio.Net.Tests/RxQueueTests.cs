using System.Net.NetworkInformation;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Queues;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// The receive queue's refusals: offloads the guest did not negotiate (GSO, ECN, a partial checksum
/// it cannot complete), a link that is down, and a receive chain that breaks the ring.
/// </summary>
public sealed class RxQueueTests
{
    private static NetDeviceOptions Options(bool mergeable = true) => new()
    {
        MacAddress = new PhysicalAddress(Frames.GuestMac),
        MergeableRxBuffers = mergeable,
    };

    [Fact]
    public void OffloadsTheGuestDidNotNegotiate_AreDropped_AndAnOddLengthPartialChecksumIsCompleted()
    {
        var pipe = new PipeFrames(vnetHeaders: true);
        using var rig = new NetRig([pipe.Backend], Options(), wanted: ~NetFeatures.GuestCsum & ~NetFeatures.GuestTso4 & ~NetFeatures.GuestTso6);
        Assert.Equal(0UL, rig.Features & (NetFeatures.GuestCsum | NetFeatures.GuestTso4 | NetFeatures.GuestTso6 | NetFeatures.GuestEcn));
        rig.AddRxBuffers(8, 2048);

        const byte csum = VirtioNetHeader.FlagNeedsCsum;
        pipe.Write(Frames.Make(200, Frames.GuestMac), new VirtioNetHeader(csum, VirtioNetHeader.GsoTcpV4, 54, 1400, 34, 16, 0)); // GUEST_TSO4 not negotiated
        pipe.Write(Frames.Make(200, Frames.GuestMac), new VirtioNetHeader(csum, VirtioNetHeader.GsoUdp, 42, 1400, 34, 6, 0));    // UDP GSO never offered
        pipe.Write(Frames.Make(200, Frames.GuestMac), new VirtioNetHeader(0, VirtioNetHeader.GsoEcn, 0, 0, 0, 0, 0));            // ECN without GUEST_ECN
        pipe.Write(Frames.Make(100, Frames.GuestMac), new VirtioNetHeader(csum, 0, 0, 0, 200, 6, 0));                            // checksum start past the frame

        // An odd number of covered bytes: the last one is summed as the high byte of a padded word.
        byte[] odd = Frames.Make(101, Frames.GuestMac);
        odd[40] = 0;
        odd[41] = 0;
        pipe.Write(odd, new VirtioNetHeader(csum, 0, 0, 0, 34, 6, 0));
        byte[] data = rig.WaitUsed(0).Data;
        Assert.Equal(0, VirtioNetHeader.Read(data).Flags);
        byte[] received = data[VirtioNetHeader.Size..];
        Assert.Equal(101, received.Length);
        uint sum = 0;
        for (int i = 34; i < received.Length; i += 2)
        {
            sum += (uint)(received[i] << 8) | (i + 1 < received.Length ? received[i + 1] : 0u);
        }

        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        Assert.Equal(0xFFFFu, sum);
        Assert.Equal(4, rig.Device.Counters.Drops(NetDropReason.OffloadNotNegotiated));
        Assert.Equal(1, rig.Device.Counters.RxFrames);
    }

    [Fact]
    public void WhileTheLinkIsDown_AKickDeliversNothing_AndLinkUpDeliversTheFrame()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        rig.Device.SetLinkUp(false);

        // A pass the I/O thread began before the link went down (DRIVER_OK watches the backend) checked
        // the link at its start and may take a frame written now: let it end first.
        WaitForIoThread(rig);
        byte[] frame = Frames.Make(90, Frames.GuestMac);
        pipe.Write(frame);

        // The kick's pass runs on this thread: with the link down it stops watching and takes nothing.
        rig.AddRxBuffers(2, 2048);
        Assert.False(rig.TryTakeUsed(0, out _, out _, out _));
        Assert.Equal(0, rig.Device.Counters.RxFrames);

        rig.Device.SetLinkUp(true);
        Assert.Equal(frame, rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ChainWithANextIndexPastTheRing_BreaksTheQueue_NotCountedAsAStall(bool mergeable)
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options(mergeable));
        Assert.Equal(mergeable, rig.Device.IsNegotiated(NetFeatures.MrgRxBuf));

        // Descriptor 0: 2 KiB writable, NEXT to descriptor 16 of a 16-entry table. The kick finds no
        // frame yet, so the chain is walked only when the frame comes (on the I/O thread).
        var rx = rig.Rx;
        rx.WriteDescriptor(0, rx.BlockAddress(0).Value, 2048, (ushort)(DescriptorFlags.Next | DescriptorFlags.Write), 16);
        rx.PutOnAvailRing(0);
        rx.Kick();
        rig.Mmio.Notify(0);
        pipe.Write(Frames.Make(90, Frames.GuestMac));

        SplitVirtqueue queue = rig.Device.Queues[0];
        NetRig.WaitUntil(() => queue.Error != QueueError.None, "the receive chain breaks the queue");
        WaitForIoThread(rig);
        Assert.Equal(QueueError.InvalidNextIndex, queue.Error);
        Assert.NotEqual(DeviceStatus.None, rig.Device.Status & DeviceStatus.DeviceNeedsReset);
        Assert.False(rig.TryTakeUsed(0, out _, out _, out _));
        Assert.Equal(0, rig.Device.Counters.RxStalls);
        Assert.Equal(0, rig.Device.Counters.RxFrames);
    }

    /// <summary>Returns once the I/O thread has finished what it was running (it runs one callback at a time).</summary>
    private static void WaitForIoThread(NetRig rig)
    {
        using var ran = new ManualResetEventSlim();
        rig.IoThread.Schedule(static state => ((ManualResetEventSlim)state!).Set(), ran);
        Assert.True(ran.Wait(NetRig.Timeout, TestContext.Current.CancellationToken));
    }
}
