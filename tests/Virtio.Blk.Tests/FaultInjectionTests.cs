using System;
using System.Collections.Generic;
using Virtio.Blk.Backends;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

public sealed class FaultInjectionTests
{
    [Theory]
    [InlineData(Fault.IoError)]
    [InlineData(Fault.NoSpace)]
    [InlineData(Fault.ShortTransfer)]
    [InlineData(Fault.Throw)]
    public void FailedBackendRequest_GetsIoError_OthersComplete(Fault fault)
    {
        var disk = new MemoryBlockBackend(1 << 20);
        var faulty = new FaultInjectingBlockBackend(disk);
        using var rig = new BlkRig(faulty);
        faulty.Rule = io => io.Offset == 4096 ? fault : Fault.None;

        var pending = new List<Pending>();
        for (int i = 0; i < 4; i++)
        {
            pending.Add(rig.Post(0, (uint)BlockRequestType.Out, (ulong)i * 8, BlkRig.Pattern(4096, i)));
            pending.Add(rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096));
        }

        for (int i = 0; i < pending.Count; i++)
        {
            Completion result = rig.Wait(pending[i]);
            bool failed = i / 2 == 1;
            Assert.True((failed ? BlockStatus.IoError : BlockStatus.Ok) == result.BlockStatus, $"request {i}: {result}");
            Assert.Equal(failed || i % 2 == 0 ? 1u : 4097u, result.Length);
        }

        Assert.Equal(0, rig.Device.InFlight);
        faulty.Rule = null;
        Assert.Equal(BlockStatus.Ok, rig.Read(8, 4096).BlockStatus);
    }

    [Fact]
    public void BackendCompletingTwice_CompletesTheRequestOnce()
    {
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(faulty);
        faulty.Rule = io => io.Operation == BlockOperation.Write ? Fault.CompleteTwice : Fault.None;

        Completion write = rig.Write(0, BlkRig.Pattern(512, 1));
        Assert.Equal(BlockStatus.Ok, write.BlockStatus);
        Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
        Assert.False(rig.TryCollect(0));
        Assert.Equal(0, rig.Guests[0].Outstanding);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AsyncCompletions_RandomFaults_EveryRequestCompletesOnce_NothingHangs(bool withIoThread)
    {
        using var ioThread = new IoThread("blk-test");
        ioThread.Start();
        var disk = new MemoryBlockBackend(1 << 20);
        var faulty = new FaultInjectingBlockBackend(disk);
        var options = new BlockDeviceOptions { QueueSize = 64, MaxInFlightPerQueue = 8, IoThreads = withIoThread ? [ioThread] : null };
        using var rig = new BlkRig(faulty, options);
        faulty.Rule = io => (io.Offset / 512) % 5 == 3 ? Fault.IoError : Fault.Async;

        for (int round = 0; round < 20; round++)
        {
            var pending = new List<(Pending Request, ulong Sector)>();
            for (int i = 0; i < 20; i++)
            {
                ulong sector = (ulong)((round * 20) + i);
                pending.Add((rig.Post(0, (uint)BlockRequestType.Out, sector, BlkRig.Pattern(512, i)), sector));
            }

            foreach (var (request, sector) in pending)
            {
                Assert.Equal(sector % 5 == 3 ? BlockStatus.IoError : BlockStatus.Ok, rig.Wait(request).BlockStatus);
            }
        }

        Assert.Equal(0, rig.Device.InFlight);
        Assert.Equal(0, rig.Guests[0].Outstanding);
    }

    [Fact]
    public void CompletionsOnTheIoThreadInsideASection_ArePushedAtOnce_WithOneInterrupt()
    {
        using var ioThread = new IoThread("blk-section");
        ioThread.Start();
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, IoThreads = [ioThread] });
        faulty.Rule = _ => Fault.Hold;
        var pending = new List<Pending>();
        for (int i = 0; i < 8; i++)
        {
            pending.Add(rig.Post(0, (uint)BlockRequestType.In, (ulong)i, inLength: 512));
        }

        faulty.WaitHeld(8);
        faulty.Rule = null;
        int interruptsBefore = rig.Line.UsedBuffer;
        ushort usedAfterRelease = 0;
        using var done = new System.Threading.ManualResetEventSlim();
        ioThread.Schedule(
            _ =>
            {
                using (DeferredCalls.Section())
                {
                    faulty.ReleaseHeld();

                    // Pushed already (not scheduled behind this work item), but not yet published.
                    usedAfterRelease = (ushort)rig.Device.Queues[0].NextUsed;
                }

                done.Set();
            },
            null);
        Assert.True(done.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

        Assert.Equal(8, usedAfterRelease);
        foreach (Pending request in pending)
        {
            Assert.Equal(BlockStatus.Ok, rig.Wait(request).BlockStatus);
        }

        Assert.Equal(interruptsBefore + 1, rig.Line.UsedBuffer);
    }

    [Fact]
    public void AllSlotsInFlight_QueueStopsPopping_AndResumesOnCompletionWithoutAKick()
    {
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, MaxInFlightPerQueue = 2 });
        faulty.Rule = _ => Fault.Hold;

        var pending = new List<Pending>();
        for (int i = 0; i < 6; i++)
        {
            pending.Add(rig.Post(0, (uint)BlockRequestType.In, (ulong)i, inLength: 512));
        }

        faulty.WaitHeld(2);
        Assert.Equal(2, faulty.Submitted);
        Assert.Equal(2, rig.Device.InFlight);

        // Each release completes inline and the device pops the next chains itself.
        faulty.Rule = _ => Fault.None;
        Assert.Equal(2, faulty.ReleaseHeld());
        foreach (Pending request in pending)
        {
            Assert.Equal(BlockStatus.Ok, rig.Wait(request).BlockStatus);
        }

        Assert.Equal(6, faulty.Submitted);
        Assert.Equal(0, rig.Device.InFlight);

        // Notifications are back on: a new request is kicked and served as usual.
        Assert.Equal(BlockStatus.Ok, rig.Read(0, 512).BlockStatus);
    }
}
