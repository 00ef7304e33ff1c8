using System.Threading.Tasks;
using System.Threading;
using System;
using Virtio.Blk.Backends;
using Virtio.Blk;
using Xunit;

namespace Virtio.VhostUser.Tests;

public sealed class BlkRoundTripTests
{
    private const uint In = 0;
    private const uint Out = 1;
    private const uint Flush = 4;

    [Fact]
    public void WriteFlushRead_ThroughTheServer_RoundTrips()
    {
        using var rig = new BlkServerRig();
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));
        byte[] data = BlkServerRig.Pattern(4096, 3);

        ushort write = BlkServerRig.Post(frontEnd, 0, Out, 8, writeData: data);
        Assert.Equal(0, BlkServerRig.Complete(frontEnd, 0, write).Status);
        ushort flush = BlkServerRig.Post(frontEnd, 0, Flush, 0);
        Assert.Equal(0, BlkServerRig.Complete(frontEnd, 0, flush).Status);
        ushort read = BlkServerRig.Post(frontEnd, 0, In, 8, readLength: 4096);
        (byte status, byte[] readBack) = BlkServerRig.Complete(frontEnd, 0, read, 4096);

        Assert.Equal(0, status);
        Assert.Equal(data, readBack);
        Assert.True(frontEnd.Calls[0].TryConsume(out _), "no call-fd interrupt");
    }

    [Fact]
    public void GetConfig_ReturnsTheDeviceConfiguration()
    {
        using var rig = new BlkServerRig();
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Send64(16, TestFrontEnd.AllProtocolFeatures);
        byte[] request = new byte[12 + 8];
        request[4] = 8; // size 8: the capacity field
        frontEnd.Send(24, request);
        byte[] reply = frontEnd.Receive(24);

        Assert.Equal(20, reply.Length);
        Assert.Equal((8ul << 20) / 512, BitConverter.ToUInt64(reply, 12));
    }

    [Fact]
    public void GetVringBase_ThenSetVringBaseOnANewConnection_ContinuesWhereItStopped()
    {
        using var rig = new BlkServerRig();
        var drivers = TestFrontEnd.CreateDrivers(rig.Memory, 1);
        uint stoppedAt;
        using (TestFrontEnd first = rig.Connect())
        {
            first.Start(drivers);
            for (int i = 0; i < 3; i++)
            {
                ushort head = BlkServerRig.Post(first, 0, Out, (ulong)i * 8, writeData: BlkServerRig.Pattern(4096, (byte)i));
                Assert.Equal(0, BlkServerRig.Complete(first, 0, head).Status);
            }

            stoppedAt = first.GetVringBase(0);
        }

        Assert.Equal(3u, stoppedAt);
        Assert.True(rig.WaitForLog(4003, "disconnected"));

        using TestFrontEnd second = rig.Connect();
        second.Start(drivers, bases: [(ushort)stoppedAt]);
        ushort read = BlkServerRig.Post(second, 0, In, 16, readLength: 4096);
        (byte status, byte[] data) = BlkServerRig.Complete(second, 0, read, 4096);
        Assert.Equal(0, status);
        Assert.Equal(BlkServerRig.Pattern(4096, 2), data);
    }

    [Fact]
    public void Disconnect_MidRequest_FinishesTheRequestAndTheNextFrontEndContinues()
    {
        var slow = new SlowBackend(new MemoryBlockBackend(8 << 20), TimeSpan.FromMilliseconds(300));
        using var rig = new BlkServerRig(backend: slow);
        var drivers = TestFrontEnd.CreateDrivers(rig.Memory, 1);
        byte[] data = BlkServerRig.Pattern(4096, 9);
        using (TestFrontEnd first = rig.Connect())
        {
            first.Start(drivers);
            BlkServerRig.Post(first, 0, Out, 40, writeData: data);
            Assert.True(slow.WaitSubmitted(TimeSpan.FromSeconds(10)));
        }

        // The front end vanished with the write in flight: the server waits for it before it
        // unmaps the memory, so the completion is on the used ring and the data on the disk.
        Assert.True(rig.WaitForLog(4003, "disconnected"));
        (ushort head, _) = DriverUsed(drivers[0]);
        Assert.Equal(0, drivers[0].Span(drivers[0].ChainBuffers(head)[^1].Address, 1)[0]);

        // A reconnecting front end (QEMU restores last_avail_idx from used->idx) resumes there.
        using TestFrontEnd second = rig.Connect();
        second.Start(drivers, bases: [drivers[0].LastUsedIndex]);
        ushort read = BlkServerRig.Post(second, 0, In, 40, readLength: 4096);
        (byte status, byte[] readBack) = BlkServerRig.Complete(second, 0, read, 4096);
        Assert.Equal(0, status);
        Assert.Equal(data, readBack);
    }

    [Fact]
    public void MultiQueue_RequestsOnEveryRing_Complete()
    {
        using var rig = new BlkServerRig(queues: 3);
        using TestFrontEnd frontEnd = rig.Connect();
        Assert.Equal(3ul, frontEnd.Call64(17));
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 3));
        var heads = new ushort[3];
        for (int q = 0; q < 3; q++)
        {
            heads[q] = BlkServerRig.Post(frontEnd, q, Out, (ulong)q * 8, writeData: BlkServerRig.Pattern(4096, (byte)(q + 20)));
        }

        for (int q = 0; q < 3; q++)
        {
            Assert.Equal(0, BlkServerRig.Complete(frontEnd, q, heads[q]).Status);
        }

        for (int q = 0; q < 3; q++)
        {
            ushort read = BlkServerRig.Post(frontEnd, (q + 1) % 3, In, (ulong)q * 8, readLength: 4096);
            Assert.Equal(BlkServerRig.Pattern(4096, (byte)(q + 20)), BlkServerRig.Complete(frontEnd, (q + 1) % 3, read, 4096).Data);
        }
    }

    private static (ushort Head, uint Length) DriverUsed(Virtio.Testing.GuestDriver driver)
    {
        Assert.True(driver.TryGetUsed(out ushort head, out uint length), "the in-flight write was not completed before the disconnect finished");
        return (head, length);
    }
}
