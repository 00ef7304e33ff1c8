using System;
using System.Linq;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Net.Tests;

/// <summary>
/// A guest decides how long its receive chains are; the device's receive state must not grow with
/// them (review finding 9). A chain over <see cref="NetDeviceOptions.MaxRxChainBuffers"/> is given
/// back unused, counted and logged once, and the next chain takes the frame.
/// </summary>
public sealed class RxChainBoundTests
{
    [Fact]
    public void RxChain_OverTheBufferBound_IsGivenBackUnused_LoggedOnce_AndTheNextChainTakesTheFrame()
    {
        var pipe = new PipeFrames();
        using var rig = new NetRig([pipe.Backend], new NetDeviceOptions { MaxRxChainBuffers = 8 }, queueSize: 64);
        ushort tooLong = rig.Rx.AddChain(Enumerable.Repeat(BufferSpec.Write(256), 9).ToArray());
        ushort alsoTooLong = rig.Rx.AddChain(Enumerable.Repeat(BufferSpec.Write(256), 9).ToArray());
        ushort atTheBound = rig.Rx.AddChain(Enumerable.Repeat(BufferSpec.Write(256), 8).ToArray());
        byte[] frame = Frames.Make(1000);
        pipe.Write(frame);
        rig.Rx.Kick();
        rig.Mmio.Notify(0);

        var first = rig.WaitUsed(0);
        var second = rig.WaitUsed(0);
        var third = rig.WaitUsed(0);

        Assert.Equal((tooLong, 0u), (first.Head, first.Length));
        Assert.Equal((alsoTooLong, 0u), (second.Head, second.Length));
        Assert.Equal(atTheBound, third.Head);
        Assert.Equal(frame, third.Data[VirtioNetHeader.Size..]);
        Assert.True(rig.Device.IsLive);
        Assert.Single(rig.Logger.Entries, e => e.EventId.Id == 3007);
    }

    [Fact]
    public void Reservation_OfIndirectChainsLongerThanTheRing_NeverGrowsPastItsBound()
    {
        // Chains of 64 buffers through indirect tables, held two at a time: without the bound the
        // segment array grew to fit them and kept that size.
        const ushort size = 128;
        const int maxChains = 2;
        const int bound = 4;
        using var driver = new GuestDriver(size, indirect: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var reservation = new NetRxReservation(maxChains, bound);
        for (int i = 0; i < 8; i++)
        {
            Assert.True(driver.TryAddChain(Enumerable.Repeat(BufferSpec.Write(64), 64).ToArray(), useIndirect: true) >= 0);
        }

        Assert.True(driver.TryAddChain([BufferSpec.Write(64), BufferSpec.Write(64)], useIndirect: true) >= 0);
        driver.Kick();

        Assert.True(reservation.TryReserve(queue));
        Assert.Equal(8, reservation.RefusedChains);
        Assert.Equal(1, reservation.ChainCount);
        Assert.Equal(128, reservation.TotalCapacity);
        Assert.True(reservation.SegmentCapacity <= maxChains * bound, $"{reservation.SegmentCapacity} segments held");
        Assert.Equal(QueueError.None, queue.Error);
    }

    [Fact]
    public void Reservation_OfAChainPastItsSegmentArray_GrowsWithinTheBound_AndTheFrameFillsBothChains()
    {
        // Two chains held at once start with room for 4 segments: a 3-buffer chain, then a 6-buffer
        // indirect one, which does not fit after it. The array grows (to 9, within 2 x 8), the chain
        // is walked again into it, and a frame scattered over both lands in their buffers in order.
        using var driver = new GuestDriver(16, indirect: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var reservation = new NetRxReservation(maxChains: 2, maxChainBuffers: 8);
        Assert.Equal(4, reservation.SegmentCapacity);
        ushort first = (ushort)driver.TryAddChain(Enumerable.Repeat(BufferSpec.Write(64), 3).ToArray(), useIndirect: false);
        ushort second = (ushort)driver.TryAddChain(Enumerable.Repeat(BufferSpec.Write(64), 6).ToArray(), useIndirect: true);
        driver.Kick();

        Assert.True(reservation.TryReserve(queue));
        Assert.True(reservation.TryReserve(queue));
        Assert.Equal(2, reservation.ChainCount);
        Assert.Equal(9 * 64, reservation.TotalCapacity);
        Assert.InRange(reservation.SegmentCapacity, 9, 2 * 8);

        byte[] header = Enumerable.Range(0, VirtioNetHeader.Size).Select(i => (byte)(0xC0 + i)).ToArray();
        byte[] frame = Enumerable.Range(0, (9 * 64) - VirtioNetHeader.Size).Select(i => (byte)i).ToArray();
        Assert.Equal(2, reservation.ChainsFor(header.Length + frame.Length));
        reservation.Complete(queue, header, frame, 2);
        Assert.Equal(0, reservation.ChainCount);
        queue.PublishUsed();

        byte[] written = driver.ChainBuffers(first).Concat(driver.ChainBuffers(second))
            .SelectMany(b => driver.Span(b.Address, b.Length).ToArray()).ToArray();
        Assert.Equal(header.Concat(frame).ToArray(), written);
        Assert.True(driver.TryGetUsed(out ushort head, out uint length));
        Assert.Equal((first, 3u * 64), (head, length));
        Assert.True(driver.TryGetUsed(out head, out length));
        Assert.Equal((second, 6u * 64), (head, length));
        Assert.Equal(QueueError.None, queue.Error);
    }
}
