using System;
using System.Diagnostics;
using System.IO;
using Virtio.Blk.Backends;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>The io_uring backend: the contract every file backend meets, and its own cases (a line of requests beyond the ring, long chains). Skipped, with the reason, where io_uring is not allowed.</summary>
public sealed class IoUringBlockBackendTests : FileBackendContract<IoUringBlockBackend>
{
    public IoUringBlockBackendTests()
    {
        Assert.SkipUnless(IoUringBlockBackend.IsSupported(out string? reason), reason ?? string.Empty);
    }

    protected override IoUringBlockBackend Open(string path, bool readOnlyFile = false, bool direct = false) =>
        new(path, readOnlyFile, direct);

    [Fact]
    public void MoreRequestsThanTheRing_WaitInLineAndAllComplete()
    {
        // A ring of 4 under 32 requests at one kick: 28 wait for a slot, in order, none is lost.
        const int depth = 32;
        string path = TestFiles.NewImage(Directory, 1 << 20);
        using var backend = new IoUringBlockBackend(path, queueDepth: 4);
        Assert.Equal(4, backend.QueueDepth);
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 128 }, queueSize: 128);

        var writes = new Pending[depth];
        for (int i = 0; i < depth; i++)
        {
            writes[i] = rig.Post(0, (uint)BlockRequestType.Out, (ulong)i * 8, BlkRig.Pattern(4096, i), kick: false);
        }

        rig.Kick(0);
        foreach (Pending write in writes)
        {
            Assert.Equal(BlockStatus.Ok, rig.Wait(write).BlockStatus);
        }

        var reads = new Pending[depth];
        for (int i = 0; i < depth; i++)
        {
            reads[i] = rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false);
        }

        rig.Kick(0);
        for (int i = 0; i < depth; i++)
        {
            Completion read = rig.Wait(reads[i]);
            Assert.Equal(BlockStatus.Ok, read.BlockStatus);
            Assert.Equal(BlkRig.Pattern(4096, i), read.Data);
        }

        Assert.Equal(0, rig.Device.InFlight);
    }

    [Fact]
    public void ChainOfManySmallSegments_RoundTrips()
    {
        // 512-byte segments: a 256 KiB request is 512 iovecs in one readv.
        string path = TestFiles.NewImage(Directory, 1 << 20);
        using var backend = new IoUringBlockBackend(path);
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 1024, MaxSegments = 1022 }, queueSize: 1024);
        byte[] data = BlkRig.Pattern(256 << 10, 9);

        Assert.Equal(BlockStatus.Ok, rig.Write(0, data, segment: 512).BlockStatus);
        Completion read = rig.Read(0, data.Length, segment: 512);

        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.Equal(data, read.Data);
        Assert.Equal(data, TestFiles.Bytes(path, 0, data.Length));
    }

    [Fact]
    public void Dispose_WaitsForRequestsInFlight_AndLaterSubmitsFail()
    {
        // 32 reads at one kick on a ring of 4: when Dispose starts, requests are in the ring and in
        // line behind it. Dispose must return only once each of them has completed, with its data.
        const int depth = 32;
        string path = TestFiles.NewImage(Directory, 1 << 20, fill: 0x11);
        var backend = new IoUringBlockBackend(path, queueDepth: 4);
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 128 }, queueSize: 128);
        var reads = new Pending[depth];
        for (int i = 0; i < depth; i++)
        {
            reads[i] = rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false);
        }

        rig.Kick(0);
        backend.Dispose();

        Assert.Equal(0, rig.Device.InFlight);
        foreach (Pending read in reads)
        {
            Completion done = rig.Wait(read);
            Assert.Equal(BlockStatus.Ok, done.BlockStatus);
            Assert.All(done.Data, b => Assert.Equal(0x11, b));
        }

        // A request after Dispose fails at once (the ring is gone), and a second Dispose is harmless.
        Assert.Equal(BlockStatus.IoError, rig.Read(0, 4096).BlockStatus);
        backend.Dispose();
        Assert.Equal(BlockStatus.IoError, rig.Read(0, 512).BlockStatus);
    }
}
