using System;
using System.Net.NetworkInformation;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// Chains laid out other than Linux lays them out: the header or command split across buffers, a
/// receive chain with a device-readable buffer first. Each queue type reads and writes through Core's
/// chain reader and writer; these check what reaches the backend and the guest.
/// </summary>
public sealed class ChainLayoutTests
{
    private static NetDeviceOptions Options() => new() { MacAddress = new PhysicalAddress(Frames.GuestMac) };

    [Fact]
    public void Transmit_HeaderSplitAcrossBuffers_TheBackendGetsTheWholeFrame()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        byte[] frame = Frames.Make(60);

        // 5 header bytes, then the other 7 with the frame's first 3, then the rest of the frame.
        ushort head = rig.Tx.AddChain(BufferSpec.Readable(5), BufferSpec.Readable(10), BufferSpec.Readable(frame.Length - 3));
        FillReadable(rig.Tx, head, [.. new byte[VirtioNetHeader.Size], .. frame]);
        rig.Tx.Kick();
        rig.Mmio.Notify(1);

        var (_, sent) = pipe.Read();
        Assert.Equal(frame, sent);
        Assert.True(rig.TryTakeUsed(1, out ushort usedHead, out uint length, out _));
        Assert.Equal(head, usedHead);
        Assert.Equal(0u, length);
        Assert.Equal(frame.Length, rig.Device.Counters.TxBytes);
    }

    [Fact]
    public void Control_CommandSplitAcrossBuffers_IsAckedInTheFirstWritableByte_AndTakesEffect()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        Assert.True(rig.Device.Promiscuous);

        // class, command and data each in a buffer of its own; an empty writable buffer before the ack.
        GuestDriver control = rig.Control;
        ushort head = control.AddChain(BufferSpec.Readable(1), BufferSpec.Readable(1), BufferSpec.Readable(1), BufferSpec.Write(0), BufferSpec.Write(1));
        FillReadable(control, head, [0, 0, 0]); // VIRTIO_NET_CTRL_RX_PROMISC off
        var buffers = control.ChainBuffers(head);
        control.Span(buffers[^1].Address, 1)[0] = 0xEE;
        control.Kick();
        rig.Mmio.Notify((ushort)(rig.Device.Queues.Count - 1));

        Assert.True(rig.TryTakeUsed(rig.Device.Queues.Count - 1, out _, out uint length, out byte[] ack));
        Assert.Equal(1u, length);
        Assert.Equal([0], ack);
        Assert.False(rig.Device.Promiscuous);
    }

    [Fact]
    public void Receive_ChainWithAReadableBufferFirst_TakesTheFrameInItsWritableBuffers()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], Options());
        rig.Rx.AddChain(BufferSpec.Readable(16), BufferSpec.Write(40), BufferSpec.Write(2048));
        rig.Rx.Kick();
        rig.Mmio.Notify(0);
        byte[] frame = Frames.Make(100, Frames.GuestMac);
        pipe.Write(frame);

        var (_, length, data) = rig.WaitUsed(0);
        Assert.Equal((uint)(VirtioNetHeader.Size + frame.Length), length);
        Assert.Equal(new VirtioNetHeader(0, 0, 0, 0, 0, 0, 1), VirtioNetHeader.Read(data));
        Assert.Equal(frame, data[VirtioNetHeader.Size..]);
    }

    private static void FillReadable(GuestDriver driver, ushort head, ReadOnlySpan<byte> bytes)
    {
        foreach (var (address, length, writable) in driver.ChainBuffers(head))
        {
            if (!writable)
            {
                int take = Math.Min(length, bytes.Length);
                bytes[..take].CopyTo(driver.Span(address, take));
                bytes = bytes[take..];
            }
        }
    }
}
