using System;
using System.Buffers.Binary;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>Hostile control-queue input: oversized commands, absurd descriptor lengths, a ring kept full, no ack byte, data of the wrong length; and the MAC tables it sets.</summary>
public sealed class ControlQueueTests
{
    private const byte Ok = 0;
    private const byte Err = 1;

    [Fact]
    public void Command_WithAReadablePartOver8KiB_GetsErr_AndTheQueueKeepsWorking()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions());

        // RX_PROMISC with 9000 bytes of data: 9002 readable bytes in three buffers, more than the 8 KiB the device copies.
        GuestDriver control = rig.Control;
        ushort head = control.AddChain(BufferSpec.Readable(4096), BufferSpec.Readable(4096), BufferSpec.Readable(810), BufferSpec.Write(1));
        var buffers = control.ChainBuffers(head);
        control.Span(buffers[0].Address, 2).Clear();
        control.Kick();
        rig.Mmio.Notify((ushort)(rig.Device.Queues.Count - 1));
        Assert.True(rig.TryTakeUsed(rig.Device.Queues.Count - 1, out ushort used, out uint length, out byte[] ackByte));
        Assert.Equal(head, used);
        Assert.Equal(1u, length);
        Assert.Equal(Err, ackByte[0]);
        Assert.Equal(Ok, rig.Command(0, 0, [0]));
        Assert.False(rig.Device.Promiscuous);
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void Command_WithA0x7FFFFFFFByteReadableDescriptor_IsRefusedWithoutAThrow_AndTheDeviceNeedsReset()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions());
        GuestDriver control = rig.Control;

        // Descriptor 0: class and command "readable", 2 GiB - 1 long (far past the 32 MiB of guest
        // memory); descriptor 1: the writable ack byte.
        GuestAddress data = control.BlockAddress(0);
        GuestAddress ack = control.BlockAddress(1);
        control.WriteDescriptor(0, data.Value, 0x7FFF_FFFF, 1, 1);
        control.WriteDescriptor(1, ack.Value, 1, 2, 0);
        control.PutOnAvailRing(0);
        control.Kick();
        rig.Mmio.Notify((ushort)(rig.Device.Queues.Count - 1));

        // The walk refuses the buffer: the ring is broken, the device asks for a reset, with a logged reason.
        SplitVirtqueue queue = rig.Device.Queues[^1];
        Assert.Equal(QueueError.AddressOutOfRange, queue.Error);
        Assert.NotEqual(DeviceStatus.None, rig.Device.Status & DeviceStatus.DeviceNeedsReset);
        Assert.Equal(0, queue.InFlightCount);
        Assert.DoesNotContain(rig.Logger.Entries, e => e.Exception is not null);
    }

    [Fact]
    public void APassAnswersAtMostTheBudget_AndTheRestIsAnsweredWithoutAnotherKick()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions { QueueSize = 256 }, queueSize: 256);
        GuestDriver control = rig.Control;
        const int Commands = NetControlQueue.Budget + 36;
        for (int i = 0; i < Commands; i++)
        {
            ushort head = control.AddChain(BufferSpec.Readable(3), BufferSpec.Write(1));
            var buffers = control.ChainBuffers(head);
            byte[] command = [0, 0, (byte)(i & 1)];
            command.CopyTo(control.Span(buffers[0].Address, 3));
        }

        // Hold the I/O thread, so what the synchronous pass answered can be counted.
        using var release = new ManualResetEventSlim();
        using var holding = new ManualResetEventSlim();
        rig.IoThread.Schedule(
            _ =>
            {
                holding.Set();
                release.Wait(NetRig.Timeout);
            },
            null);
        Assert.True(holding.Wait(NetRig.Timeout, TestContext.Current.CancellationToken));
        control.Kick();
        rig.Mmio.Notify((ushort)(rig.Device.Queues.Count - 1));
        Assert.Equal(NetControlQueue.Budget, UsedIdx(control));

        // The rest, requeued on the I/O thread, is answered once it runs again: no command is lost.
        release.Set();
        NetRig.WaitUntil(() => UsedIdx(control) == Commands, "every command is answered");
        int answered = 0;
        while (rig.TryTakeUsed(rig.Device.Queues.Count - 1, out _, out uint length, out byte[] ackByte))
        {
            Assert.Equal(1u, length);
            Assert.Equal(Ok, ackByte[0]);
            answered++;
        }

        Assert.Equal(Commands, answered);
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void Command_WithoutAWritableAckByte_ReturnsWithLengthZero_AndIsNotApplied()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions());
        GuestDriver control = rig.Control;
        ushort controlQueue = (ushort)(rig.Device.Queues.Count - 1);

        // RX_PROMISC off, all readable: there is nowhere to write VIRTIO_NET_OK or ERR.
        ushort head = control.AddChain(BufferSpec.Readable(3));
        control.Span(control.ChainBuffers(head)[0].Address, 3).Clear();
        control.Kick();
        rig.Mmio.Notify(controlQueue);
        Assert.True(rig.TryTakeUsed(controlQueue, out ushort used, out uint length, out _));
        Assert.Equal(head, used);
        Assert.Equal(0u, length);
        Assert.True(rig.Device.Promiscuous);

        Assert.Equal(Ok, rig.Command(0, 0, [0]));
        Assert.False(rig.Device.Promiscuous);
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void Commands_WithDataOfTheWrongLength_GetErr_AndChangeNothing()
    {
        var first = new PipeFrames();
        var second = new PipeFrames();
        using var rig = new NetRig([first.Backend, second.Backend], new NetDeviceOptions());
        Assert.NotEqual(0UL, rig.Features & NetFeatures.Mq);
        byte[] mac = rig.ReadConfig(0, 6).ToArray();

        Assert.Equal(Err, rig.Command(1, 1, [0x02, 0x11, 0x22, 0x33, 0x44]));         // MAC ADDR_SET with 5 bytes
        Assert.Equal(mac, rig.ReadConfig(0, 6).ToArray());
        Assert.Equal(Err, rig.Command(4, 0, [2]));                                   // MQ VQ_PAIRS_SET with 1 byte
        Assert.Equal(Err, rig.Command(4, 0, [2, 0, 0]));                             // ... with 3
        Assert.Equal(Err, rig.Command(4, 0, [0, 0]));                                // ... 0 pairs
        Assert.Equal(1, rig.Device.ActiveQueuePairs);

        byte[] unicast = [1, 0, 0, 0, .. Frames.PeerMac];
        Assert.Equal(Err, rig.Command(1, 0, [1, 0, 0]));                             // MAC TABLE_SET: no room for the entry count
        Assert.Equal(Err, rig.Command(1, 0, unicast));                               // ... the multicast table missing
        Assert.Equal(Err, rig.Command(1, 0, [.. unicast, 0, 0, 0]));                 // ... its entry count cut short
        Assert.Equal(Err, rig.Command(1, 0, [.. unicast, 0, 0, 0, 0, 0xEE]));        // ... a byte after both tables
        Assert.Equal(0, rig.Device.UnicastFilterEntries);
        Assert.Equal(Ok, rig.Command(1, 0, [.. unicast, 0, 0, 0, 0]));
        Assert.Equal(1, rig.Device.UnicastFilterEntries);
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void MacTables_FilterUnicastAndMulticast_AndATableOverItsLimitAcceptsEveryAddressOfItsKind()
    {
        byte[] a = [0x02, 0, 0, 0, 0, 0x0A];
        byte[] b = [0x02, 0, 0, 0, 0, 0x0B];
        byte[] m1 = [0x01, 0x00, 0x5E, 0, 0, 0x01];
        byte[] m2 = [0x01, 0x00, 0x5E, 0, 0, 0x02];
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions { MacAddress = new System.Net.NetworkInformation.PhysicalAddress(Frames.GuestMac) });
        rig.AddRxBuffers(12, 2048);
        Assert.Equal(Ok, rig.Command(0, 0, [0]));                                    // promiscuous off
        Assert.Equal(Ok, rig.Command(1, 0, [1, 0, 0, 0, .. a, 1, 0, 0, 0, .. m1]));

        // In the tables, or our own address: delivered; the others are filtered.
        Assert.Equal([a, m1, Frames.GuestMac], Deliver(rig, pipe, a, b, m1, m2, Frames.GuestMac));
        Assert.Equal(2, rig.Device.Counters.Drops(NetDropReason.Filtered));

        Assert.Equal(Ok, rig.Command(0, 1, [1]));                                    // all-multicast on
        Assert.Equal([m2], Deliver(rig, pipe, m2));
        Assert.Equal(Ok, rig.Command(0, 1, [0]));

        // 65 unicast entries, more than the 64 the device matches: every unicast address is taken.
        byte[] many = new byte[4 + (65 * 6) + 4];
        many[0] = 65;
        Assert.Equal(Ok, rig.Command(1, 0, many));
        Assert.Equal(0, rig.Device.UnicastFilterEntries);
        Assert.Equal([b, Frames.GuestMac], Deliver(rig, pipe, b, m2, Frames.GuestMac));
        Assert.Equal(3, rig.Device.Counters.Drops(NetDropReason.Filtered));
    }

    /// <summary>Writes one frame to each destination, then returns the destinations of the frames the guest got, in order, up to the last one written (which must be delivered).</summary>
    private static byte[][] Deliver(NetRig rig, PipeFrames pipe, params byte[][] destinations)
    {
        foreach (byte[] destination in destinations)
        {
            pipe.Write(Frames.Make(64, destination));
        }

        var delivered = new System.Collections.Generic.List<byte[]>();
        do
        {
            delivered.Add(rig.WaitUsed(0).Data[VirtioNetHeader.Size..(VirtioNetHeader.Size + 6)]);
        }
        while (!delivered[^1].AsSpan().SequenceEqual(destinations[^1]));

        return [.. delivered];
    }

    private static int UsedIdx(GuestDriver driver) =>
        BinaryPrimitives.ReadUInt16LittleEndian(driver.Span(new GuestAddress(driver.UsedRing.Value + SplitRingLayout.UsedIdxOffset), 2));
}
