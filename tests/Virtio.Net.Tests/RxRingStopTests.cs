using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// Receive chains the device reserved for a frame that needs more buffers (VIRTIO_NET_F_MRG_RXBUF)
/// across a ring stop and restart: they go back to the driver, length 0, and the frame lands in the
/// buffers of the restarted ring only.
/// </summary>
public sealed class RxRingStopTests
{
    [Fact]
    public void QueueReadyZero_ReturnsReservedChainsUnused_AndTheRestartedRingTakesTheFrame()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions());
        Assert.True(rig.Device.IsNegotiated(NetFeatures.MrgRxBuf));

        // Two 1 KiB buffers for a 3000-byte frame: the device reserves both and waits for a third.
        rig.AddRxBuffers(2, 1024);
        byte[] frame = Frames.Make(3000);
        pipe.Write(frame);
        NetRig.WaitUntil(() => rig.Device.Queues[0].InFlightCount == 2, "both receive chains are reserved");
        var reserved = new HashSet<ushort>();
        Assert.False(rig.TryTakeUsed(0, out _, out _, out _));

        // QueueReady = 0: the reserved chains come back unused at once; nothing stays in flight.
        rig.Mmio.Write(VirtioMmioRegister.QueueSel, 0);
        rig.Mmio.Write(VirtioMmioRegister.QueueReady, 0);
        Assert.Equal(0, rig.Device.Queues[0].InFlightCount);
        for (int i = 0; i < 2; i++)
        {
            Assert.True(rig.TryTakeUsed(0, out ushort head, out uint length, out _), "a reserved chain was not returned");
            Assert.Equal(0u, length);
            reserved.Add(head);
        }

        Assert.Equal(2, reserved.Count);

        // The driver starts the ring again and posts three new buffers: the frame goes there only.
        rig.Mmio.SetUpQueue(0, rig.Rx);
        var posted = new HashSet<ushort>();
        for (int i = 0; i < 3; i++)
        {
            posted.Add(rig.Rx.AddChain(BufferSpec.Write(1024)));
        }

        rig.Rx.Kick();
        rig.Mmio.Notify(0);
        var received = new List<byte>();
        var first = rig.WaitUsed(0);
        Assert.Contains(first.Head, posted);
        ushort buffers = BinaryPrimitives.ReadUInt16LittleEndian(first.Data.AsSpan(10));
        Assert.Equal(3, buffers);
        received.AddRange(first.Data[VirtioNetHeader.Size..]);
        for (int i = 1; i < buffers; i++)
        {
            var next = rig.WaitUsed(0);
            Assert.Contains(next.Head, posted);
            received.AddRange(next.Data);
        }

        Assert.Equal(frame, received.ToArray());
        Assert.Equal(0, rig.Device.Queues[0].InFlightCount);
        Assert.Equal(0, rig.Device.Queues[0].StaleCount);
        Assert.True(rig.Device.IsLive);
    }
}
