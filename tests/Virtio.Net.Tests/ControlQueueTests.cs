using System;
using System.Buffers.Binary;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>Hostile control-queue input: oversized commands, absurd descriptor lengths, a ring kept full.</summary>
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

    private static int UsedIdx(GuestDriver driver) =>
        BinaryPrimitives.ReadUInt16LittleEndian(driver.Span(new GuestAddress(driver.UsedRing.Value + SplitRingLayout.UsedIdxOffset), 2));
}
