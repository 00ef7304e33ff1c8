using System;
using System.Buffers.Binary;
using System.Linq;
using System.Net.NetworkInformation;
using Virtio.Core.Devices;
using Virtio.Net.Backends;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

public sealed class NetDeviceTests
{
    private static NetDeviceOptions Options(ushort? mtu = null, bool mergeable = true) => new()
    {
        MacAddress = new PhysicalAddress(Frames.GuestMac),
        Mtu = mtu,
        MergeableRxBuffers = mergeable,
    };

    [Fact]
    public void Config_ShowsMacLinkPairsAndMtu()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options(mtu: 1500));
        Assert.Equal(NetDevice.NetDeviceId, rig.Device.DeviceId);
        Assert.Equal(Frames.GuestMac, rig.ReadConfig(0, 6).ToArray());
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(rig.ReadConfig(6, 2)));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(rig.ReadConfig(8, 2)));
        Assert.Equal(1500, BinaryPrimitives.ReadUInt16LittleEndian(rig.ReadConfig(10, 2)));
        ulong expected = NetFeatures.Mac | NetFeatures.Status | NetFeatures.Mtu | NetFeatures.MrgRxBuf | NetFeatures.CtrlVq | NetFeatures.CtrlRx | NetFeatures.CtrlMacAddr;
        Assert.Equal(expected, rig.Features & expected);

        // A pipe without headers claims no offloads, so none are offered.
        Assert.Equal(0UL, rig.Device.DeviceFeatures & (NetFeatures.Csum | NetFeatures.GuestCsum | NetFeatures.HostTso4 | NetFeatures.GuestTso4 | NetFeatures.Mq));
    }

    [Fact]
    public void Transmit_FrameReachesBackend_AndChainReturnsWithLengthZero()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        byte[] frame = Frames.Make(60);
        ushort head = rig.Send(frame);

        var (_, sent) = pipe.Read();
        Assert.Equal(frame, sent);
        Assert.True(rig.TryTakeUsed(1, out ushort usedHead, out uint length, out _));
        Assert.Equal(head, usedHead);
        Assert.Equal(0u, length);
        Assert.Equal(1, rig.Device.Counters.TxFrames);
        Assert.Equal(60, rig.Device.Counters.TxBytes);
    }

    [Fact]
    public void Receive_FrameFillsGuestBuffer_WithHeaderAndNumBuffersOne()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        rig.AddRxBuffers(4, 2048);
        byte[] frame = Frames.Make(100, Frames.GuestMac);
        pipe.Write(frame);

        var (_, length, data) = rig.WaitUsed(0);
        Assert.Equal((uint)(VirtioNetHeader.Size + frame.Length), length);
        VirtioNetHeader header = VirtioNetHeader.Read(data);
        Assert.Equal(new VirtioNetHeader(0, 0, 0, 0, 0, 0, 1), header);
        Assert.Equal(frame, data[VirtioNetHeader.Size..]);
        Assert.Equal(1, rig.Device.Counters.RxFrames);
    }

    [Fact]
    public void LoopbackPair_FramesRoundTripBothWays()
    {
        using var pair = new LoopbackPair();
        using var a = new NetRig([pair.First], Options());
        using var b = new NetRig([pair.Second], Options());
        b.AddRxBuffers(8, 2048);
        a.AddRxBuffers(8, 2048);

        byte[] ab = Frames.Make(1514, Frames.GuestMac, seed: 1);
        byte[] ba = Frames.Make(64, Frames.GuestMac, seed: 2);
        a.Send(ab);
        b.Send(ba);

        Assert.Equal(ab, b.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        Assert.Equal(ba, a.WaitUsed(0).Data[VirtioNetHeader.Size..]);
    }

    [Fact]
    public void OffloadHeader_PassesThrough_TransmitAndReceive()
    {
        var pipe = new PipeFrames(vnetHeaders: true);
        using var rig = new NetRig([pipe.Backend], Options());
        Assert.True((rig.Features & NetFeatures.HostTso4) != 0 && (rig.Features & NetFeatures.GuestTso4) != 0);
        byte[] frame = Frames.Make(3000);
        var tso = new VirtioNetHeader(VirtioNetHeader.FlagNeedsCsum, VirtioNetHeader.GsoTcpV4, 54, 1448, 34, 16, 0);
        rig.Send(frame, tso);
        var (header, sent) = pipe.Read();
        Assert.Equal(tso, header);
        Assert.Equal(frame, sent);

        rig.AddRxBuffers(8, 4096);
        var incoming = new VirtioNetHeader(VirtioNetHeader.FlagNeedsCsum, VirtioNetHeader.GsoTcpV6, 74, 1428, 54, 16, 0);
        pipe.Write(frame, incoming);
        var (_, _, data) = rig.WaitUsed(0);
        Assert.Equal(incoming with { NumBuffers = 1 }, VirtioNetHeader.Read(data));
        Assert.Equal(frame, data[VirtioNetHeader.Size..]);
    }

    [Fact]
    public void MergeableRxBuffers_FrameLargerThanOneBuffer_SpansSeveralChains()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        Assert.True((rig.Features & NetFeatures.MrgRxBuf) != 0);
        rig.AddRxBuffers(8, 1024);
        byte[] frame = Frames.Make(3000, Frames.GuestMac);
        pipe.Write(frame);

        var first = rig.WaitUsed(0);
        var second = rig.WaitUsed(0);
        var third = rig.WaitUsed(0);
        Assert.Equal(1024u, first.Length);
        Assert.Equal(1024u, second.Length);
        Assert.Equal((uint)(VirtioNetHeader.Size + 3000 - 2048), third.Length);
        Assert.Equal(3, VirtioNetHeader.Read(first.Data).NumBuffers);
        byte[] joined = [.. first.Data, .. second.Data, .. third.Data];
        Assert.Equal(frame, joined[VirtioNetHeader.Size..]);
    }

    [Fact]
    public void WithoutMergeableBuffers_AFrameTooLargeForTheBuffer_IsDroppedAndCounted_AndTheBufferServesTheNext()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options(mergeable: false));
        Assert.Equal(0UL, rig.Features & NetFeatures.MrgRxBuf);
        rig.AddRxBuffers(1, 1024);
        pipe.Write(Frames.Make(2000, Frames.GuestMac));
        byte[] small = Frames.Make(200, Frames.GuestMac);
        pipe.Write(small);

        var used = rig.WaitUsed(0);
        Assert.Equal(small, used.Data[VirtioNetHeader.Size..]);
        Assert.Equal(1, rig.Device.Counters.Drops(NetDropReason.RxBufferTooSmall));
    }

    [Fact]
    public void Receive_WithNoGuestBuffers_StallsWithoutLoss_AndResumesOnTheRxKick()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        byte[][] frames = Enumerable.Range(0, 5).Select(i => Frames.Make(100 + i, Frames.GuestMac, seed: (byte)i)).ToArray();
        foreach (byte[] frame in frames)
        {
            pipe.Write(frame);
        }

        NetRig.WaitUntil(() => rig.Device.Counters.RxStalls > 0, "the device stopped for lack of buffers");
        Assert.Equal(0, rig.Device.Counters.RxFrames);

        rig.AddRxBuffers(2, 2048);
        Assert.Equal(frames[0], rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        Assert.Equal(frames[1], rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);

        rig.AddRxBuffers(8, 2048);
        for (int i = 2; i < frames.Length; i++)
        {
            Assert.Equal(frames[i], rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        }

        Assert.Equal(5, rig.Device.Counters.RxFrames);
        foreach (NetDropReason reason in Enum.GetValues<NetDropReason>())
        {
            Assert.Equal(0, rig.Device.Counters.Drops(reason));
        }
    }

    [Fact]
    public void ControlQueue_CommandsAreAcked_AndTakeEffect()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        Assert.True(rig.Device.Promiscuous);

        Assert.Equal(0, rig.Command(0, 0, [0]));          // RX PROMISC off
        Assert.False(rig.Device.Promiscuous);
        Assert.Equal(0, rig.Command(0, 1, [1]));          // RX ALLMULTI on
        Assert.True(rig.Device.AllMulticast);
        Assert.Equal(1, rig.Command(0, 0, [1, 2]));       // wrong length
        Assert.Equal(1, rig.Command(0, 7, [1]));          // unknown RX command

        byte[] newMac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        Assert.Equal(0, rig.Command(1, 1, newMac));       // MAC ADDR_SET
        Assert.Equal(newMac, rig.ReadConfig(0, 6).ToArray());

        byte[] table = [1, 0, 0, 0, .. Frames.PeerMac, 1, 0, 0, 0, 0x01, 0x00, 0x5E, 0x00, 0x00, 0x01];
        Assert.Equal(0, rig.Command(1, 0, table));        // MAC TABLE_SET
        Assert.Equal(1, rig.Device.UnicastFilterEntries);
        Assert.Equal(1, rig.Device.MulticastFilterEntries);
        Assert.Equal(1, rig.Command(1, 0, [5, 0, 0, 0])); // entries beyond the data

        Assert.Equal(1, rig.Command(4, 0, [1, 0]));       // MQ not negotiated
        Assert.Equal(1, rig.Command(9, 0, []));           // unknown class
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void ReceiveFilter_WithPromiscuousOff_DropsFramesForOthers()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        Assert.Equal(0, rig.Command(0, 0, [0]));
        rig.AddRxBuffers(4, 2048);
        pipe.Write(Frames.Make(80, Frames.PeerMac, Frames.GuestMac)); // not for us
        byte[] mine = Frames.Make(81, Frames.GuestMac);
        byte[] broadcast = Frames.Make(82, Frames.Broadcast);
        pipe.Write(mine);
        pipe.Write(broadcast);

        Assert.Equal(mine, rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        Assert.Equal(broadcast, rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        Assert.Equal(1, rig.Device.Counters.Drops(NetDropReason.Filtered));
    }

    [Fact]
    public void Link_DownAndUp_ChangesStatusWithConfigInterrupts_AndDropsTransmitWhileDown()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        uint generation = rig.Device.ConfigGeneration;

        rig.Device.SetLinkUp(false);
        Assert.Equal(1, rig.Interrupts.ConfigurationChange);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(rig.ReadConfig(6, 2)));
        Assert.NotEqual(generation, rig.Device.ConfigGeneration);
        Assert.Equal(2u, rig.Mmio.AcknowledgeInterrupts() & 2u);

        rig.Send(Frames.Make(60));
        Assert.True(rig.TryTakeUsed(1, out _, out uint length, out _));
        Assert.Equal(0u, length);
        Assert.Equal(1, rig.Device.Counters.Drops(NetDropReason.LinkDown));
        Assert.False(pipe.TryReadNow(out _));

        rig.Device.SetLinkUp(true);
        Assert.Equal(2, rig.Interrupts.ConfigurationChange);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(rig.ReadConfig(6, 2)));
        byte[] frame = Frames.Make(61);
        rig.Send(frame);
        Assert.Equal(frame, pipe.Read().Frame);
    }

    [Fact]
    public void Transmit_MalformedHeadersAndBadLengths_AreDroppedAndCounted_AndChainsStillReturn()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options(mtu: 1500));
        Assert.Equal(0UL, rig.Features & (NetFeatures.Csum | NetFeatures.HostTso4));

        // A chain shorter than the header.
        ushort shortHead = rig.Tx.AddChain(BufferSpec.Readable(8));
        rig.Tx.Kick();
        rig.Mmio.Notify(1);

        rig.Send(Frames.Make(100), new VirtioNetHeader(0, VirtioNetHeader.GsoTcpV4, 0, 1448, 0, 0, 0));        // TSO not negotiated
        rig.Send(Frames.Make(100), new VirtioNetHeader(VirtioNetHeader.FlagNeedsCsum, 0, 0, 0, 34, 16, 0));     // CSUM not negotiated
        rig.Send(Frames.Make(100), new VirtioNetHeader(0, 9, 0, 0, 0, 0, 0));                                   // unknown GSO type
        rig.Send(Frames.Make(1500 + 18 + 1));                                                                    // over MTU
        rig.Send(Frames.Make(20).AsSpan(0, 10));                                                                 // runt

        for (int i = 0; i < 6; i++)
        {
            Assert.True(rig.TryTakeUsed(1, out ushort head, out uint length, out _));
            Assert.Equal(0u, length);
            if (i == 0)
            {
                Assert.Equal(shortHead, head);
            }
        }

        Assert.Equal(4, rig.Device.Counters.Drops(NetDropReason.MalformedHeader));
        Assert.Equal(2, rig.Device.Counters.Drops(NetDropReason.BadLength));
        Assert.Equal(0, rig.Device.Counters.TxFrames);
        Assert.True(rig.Device.IsLive);

        byte[] good = Frames.Make(1518);
        rig.Send(good);
        Assert.Equal(good, pipe.Read().Frame);
    }

    [Fact]
    public void Receive_PartialChecksum_IsCompleted_ForAGuestWithoutGuestCsum()
    {
        var pipe = new PipeFrames(vnetHeaders: true);
        using var rig = new NetRig([pipe.Backend], Options(), wanted: ~NetFeatures.GuestCsum & ~NetFeatures.GuestTso4 & ~NetFeatures.GuestTso6);
        rig.AddRxBuffers(2, 2048);

        // A UDP-like payload: checksum over bytes 34.. stored at 34 + 6, seeded with 0 (a pseudo-header sum of 0).
        byte[] frame = Frames.Make(100, Frames.GuestMac);
        frame[40] = 0;
        frame[41] = 0;
        pipe.Write(frame, new VirtioNetHeader(VirtioNetHeader.FlagNeedsCsum, 0, 0, 0, 34, 6, 0));
        byte[] data = rig.WaitUsed(0).Data;
        Assert.Equal(0, VirtioNetHeader.Read(data).Flags);
        byte[] received = data[VirtioNetHeader.Size..];

        // Summing the covered bytes including the stored checksum gives 0xFFFF.
        uint sum = 0;
        for (int i = 34; i + 1 < received.Length; i += 2)
        {
            sum += (uint)((received[i] << 8) | received[i + 1]);
        }

        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        Assert.Equal(0xFFFFu, sum);
    }

    [Fact]
    public void MultiQueue_PairsSet_ActivatesTheSecondPair()
    {
        var first = new PipeFrames();
        var second = new PipeFrames();
        using var rig = new NetRig([first.Backend, second.Backend], Options());
        Assert.True((rig.Features & NetFeatures.Mq) != 0);
        Assert.Equal(5, rig.Device.Queues.Count);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(rig.ReadConfig(8, 2)));

        Assert.Equal(1, rig.Command(4, 0, [3, 0])); // more pairs than the device has
        Assert.Equal(0, rig.Command(4, 0, [2, 0]));
        Assert.Equal(2, rig.Device.ActiveQueuePairs);

        byte[] frame = Frames.Make(70);
        rig.Send(frame, txQueue: 3);
        Assert.Equal(frame, second.Read().Frame);

        rig.AddRxBuffers(2, 2048, rxQueue: 2);
        byte[] incoming = Frames.Make(90, Frames.GuestMac);
        second.Write(incoming);
        Assert.Equal(incoming, rig.WaitUsed(2).Data[VirtioNetHeader.Size..]);
    }

    [Fact]
    public void MultiQueue_EachPairIsServedByItsOwnIoThread()
    {
        using var thread0 = new Virtio.Core.Threading.IoThread("net-pair-0");
        using var thread1 = new Virtio.Core.Threading.IoThread("net-pair-1");
        thread0.Start();
        thread1.Start();
        Virtio.Core.Threading.IoThread[] threads = [thread0, thread1];
        var first = new PipeFrames();
        var second = new PipeFrames();
        var recordFirst = new RecordingBackend(first.Backend, threads);
        var recordSecond = new RecordingBackend(second.Backend, threads);
        NetDeviceOptions options = Options();
        options.IoThreads = threads;
        using var rig = new NetRig([recordFirst, recordSecond], options);
        Assert.Equal(0, rig.Command(4, 0, [2, 0]));

        rig.AddRxBuffers(2, 2048, rxQueue: 0);
        rig.AddRxBuffers(2, 2048, rxQueue: 2);
        byte[] one = Frames.Make(80, Frames.GuestMac, seed: 1);
        byte[] two = Frames.Make(90, Frames.GuestMac, seed: 2);
        first.Write(one);
        second.Write(two);
        Assert.Equal(one, rig.WaitUsed(0).Data[VirtioNetHeader.Size..]);
        Assert.Equal(two, rig.WaitUsed(2).Data[VirtioNetHeader.Size..]);

        // Frames arriving from each backend were taken by that pair's I/O thread, not a shared one.
        Assert.Equal(0, recordFirst.ReceivedOn);
        Assert.Equal(1, recordSecond.ReceivedOn);
    }

    [Fact]
    public void Transmit_FrameOverTheDeviceLimit_WithoutMtu_IsDroppedAsBadLength_AndTheChainReturns()
    {
        // Without VIRTIO_NET_F_MTU the limit is NetDevice.MaxFrameLength (64 KiB + 256): a 17 x 4 KiB frame is over it.
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options(), queueSize: 32);
        Assert.Equal(0UL, rig.Features & NetFeatures.Mtu);
        var specs = new BufferSpec[18];
        specs[0] = BufferSpec.Readable(VirtioNetHeader.Size);
        for (int i = 1; i < specs.Length; i++)
        {
            specs[i] = BufferSpec.Readable(4096);
        }

        Assert.True(17 * 4096 > NetDevice.MaxFrameLength);
        ushort head = rig.Tx.AddChain(specs);
        rig.Tx.Span(rig.Tx.ChainBuffers(head)[0].Address, VirtioNetHeader.Size).Clear();
        rig.Tx.Kick();
        rig.Mmio.Notify(1);

        Assert.True(rig.TryTakeUsed(1, out ushort used, out uint length, out _));
        Assert.Equal(head, used);
        Assert.Equal(0u, length);
        Assert.Equal(1, rig.Device.Counters.Drops(NetDropReason.BadLength));
        Assert.Equal(0, rig.Device.Counters.TxFrames);

        byte[] good = Frames.Make(1514);
        rig.Send(good);
        Assert.Equal(good, pipe.Read().Frame);
    }
}
