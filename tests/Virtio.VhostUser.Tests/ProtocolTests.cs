using System;
using System.Buffers.Binary;
using Virtio.Blk.Backends;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.VhostUser.Tests;

public sealed class ProtocolTests
{
    [Fact]
    public void NeedReply_WithReplyAck_IsAnsweredWithZero()
    {
        using var rig = new BlkServerRig();
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Send64(16, TestFrontEnd.ReplyAck);
        frontEnd.Send(3, [], flags: 1 | 8);
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(frontEnd.Receive(3)));
        frontEnd.AddMemReg(flags: 1 | 8);
        Assert.Equal(0ul, BinaryPrimitives.ReadUInt64LittleEndian(frontEnd.Receive(37)));
    }

    [Fact]
    public void AddMemReg_InsteadOfAMemTable_ServesIo_AndRemMemRegOfAnUnknownRegionCloses()
    {
        using var rig = new BlkServerRig();
        using (TestFrontEnd frontEnd = rig.Connect())
        {
            Assert.Equal(32ul, frontEnd.Call64(36));
            frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1), addMemReg: true);
            ushort head = BlkServerRig.Post(frontEnd, 0, 1, 0, writeData: new byte[4096]);
            Assert.Equal(0, BlkServerRig.Complete(frontEnd, 0, head).Status);

            byte[] unknown = frontEnd.SingleRegion();
            BinaryPrimitives.WriteUInt64LittleEndian(unknown.AsSpan(8), 0x4000_0000);
            frontEnd.Send(38, unknown);
            Assert.True(frontEnd.IsClosedByPeer());
        }

        Assert.True(rig.WaitForLog(4004, "REM_MEM_REG: no region"));
    }

    [Fact]
    public void AddMemReg_OverlappingTheTable_Closes()
    {
        using var rig = new BlkServerRig();
        using (TestFrontEnd frontEnd = rig.Connect())
        {
            frontEnd.AddMemReg();
            frontEnd.AddMemReg();
            Assert.True(frontEnd.IsClosedByPeer());
        }

        Assert.True(rig.WaitForLog(4004, "overlaps the region"));
    }

    [Fact]
    public void SharedIoThreads_CompletionsReachTheFrontEnd()
    {
        using var threads = new IoThread("vhost-test-io");
        threads.Start();
        using var rig = new BlkServerRig(queues: 2, ioThreads: [threads]);
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 2));
        for (int q = 0; q < 2; q++)
        {
            byte[] data = BlkServerRig.Pattern(4096, (byte)q);
            ushort write = BlkServerRig.Post(frontEnd, q, 1, 64, writeData: data);
            Assert.Equal(0, BlkServerRig.Complete(frontEnd, q, write).Status);
            ushort read = BlkServerRig.Post(frontEnd, q, 0, 64, readLength: 4096);
            Assert.Equal(data, BlkServerRig.Complete(frontEnd, q, read, 4096).Data);
        }
    }

    [Fact]
    public void Cancel_WithAFrontEndConnectedAndARequestInFlight_StopsAndRemovesTheSocket()
    {
        var slow = new SlowBackend(new MemoryBlockBackend(8 << 20), TimeSpan.FromMilliseconds(300)); // the rig disposes it
        using var rig = new BlkServerRig(backend: slow);
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));
        ushort head = BlkServerRig.Post(frontEnd, 0, 1, 0, writeData: new byte[4096]);
        Assert.True(slow.WaitSubmitted(TimeSpan.FromSeconds(10)));

        rig.Stop();

        Assert.True(frontEnd.IsClosedByPeer());
        Assert.True(frontEnd.Drivers[0].TryGetUsed(out ushort used, out _), "the request was not finished before the stop");
        Assert.Equal(head, used);
    }

    [Fact]
    public void RandomMessages_NeverStopTheServer()
    {
        using var rig = new BlkServerRig();
        var random = new Random(20261123);
        for (int i = 0; i < 100; i++)
        {
            using TestFrontEnd frontEnd = rig.Connect();
            int count = random.Next(1, 6);
            for (int j = 0; j < count; j++)
            {
                byte[] payload = new byte[random.Next(0, 3) switch { 0 => 8, 1 => 40, _ => random.Next(0, 300) }];
                random.NextBytes(payload);
                uint request = (uint)random.Next(0, 42);
                if (request is 1 or 11 or 15 or 17 or 24 or 36)
                {
                    continue; // requests with replies: this test does not read them
                }

                try
                {
                    frontEnd.Send(request, payload, flags: 1);
                }
                catch (System.IO.IOException)
                {
                    break; // the server already closed the connection
                }
            }
        }

        using TestFrontEnd good = rig.Connect();
        good.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));
        ushort head = BlkServerRig.Post(good, 0, 1, 0, writeData: new byte[512]);
        Assert.Equal(0, BlkServerRig.Complete(good, 0, head).Status);
    }
}
