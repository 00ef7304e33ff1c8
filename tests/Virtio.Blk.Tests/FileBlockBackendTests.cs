using System;
using System.Diagnostics;
using System.IO;
using Virtio.Blk.Backends;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>The thread-pool file backend: the contract every file backend meets, and its workers.</summary>
public sealed class FileBlockBackendTests : FileBackendContract<FileBlockBackend>
{
    protected override FileBlockBackend Open(string path, bool readOnlyFile = false, bool direct = false) =>
        new(path, readOnlyFile, direct);

    [Fact]
    public void QueueDepth32_ThirtyTwoRequestsReachTheFileAtOnce()
    {
        // fio iodepth=32 in a guest: 32 requests available at one kick must all be at the file
        // together. Each worker waits at a 32-party barrier right before its preadv: with fewer
        // than 32 in flight, the barrier times out and the test fails.
        const int depth = 32;
        string path = TestFiles.NewImage(Directory, 1 << 20, fill: 0x42);
        using var backend = new FileBlockBackend(path);
        using var barrier = new System.Threading.Barrier(depth);
        int current = 0, peak = 0, timeouts = 0;
        backend.BeforeExecute = _ =>
        {
            int now = System.Threading.Interlocked.Increment(ref current);
            int seen;
            while (now > (seen = System.Threading.Volatile.Read(ref peak)) && System.Threading.Interlocked.CompareExchange(ref peak, now, seen) != seen)
            {
            }

            if (!barrier.SignalAndWait(TimeSpan.FromSeconds(10)))
            {
                System.Threading.Interlocked.Increment(ref timeouts);
            }

            System.Threading.Interlocked.Decrement(ref current);
        };
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 128 }, queueSize: 128);

        var pending = new Pending[depth];
        for (int i = 0; i < depth; i++)
        {
            pending[i] = rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false);
        }

        rig.Kick(0);
        foreach (Pending request in pending)
        {
            Completion done = rig.Wait(request);
            Assert.Equal(BlockStatus.Ok, done.BlockStatus);
            Assert.True(done.Data.AsSpan().IndexOfAnyExcept((byte)0x42) < 0);
        }

        Assert.Equal(0, timeouts);
        Assert.Equal(depth, peak);
        Assert.Equal(depth, backend.WorkerCount);
    }

    [Fact]
    public async System.Threading.Tasks.Task StartingAWorker_DoesNotHoldUpTheKick()
    {
        // Thread.Start waits until the new thread runs: on a loaded 2-CPU host that took up to
        // 150 ms, and the device submits while it holds back the completions of the same wake-up.
        // Here a worker start is held at the seam; the kick that needs the worker must still
        // return, and the request completes once the start goes on.
        string path = TestFiles.NewImage(Directory, 1 << 20, fill: 0x42);
        using var backend = new FileBlockBackend(path);
        using var release = new System.Threading.ManualResetEventSlim();
        backend.BeforeWorkerStart = () => release.Wait(TimeSpan.FromSeconds(10));
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 64 });
        Pending request = rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 4096, kick: false);

        var kick = System.Threading.Tasks.Task.Run(() => rig.Kick(0), TestContext.Current.CancellationToken);
        bool returned = await System.Threading.Tasks.Task.WhenAny(kick, System.Threading.Tasks.Task.Delay(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken)) == kick;
        release.Set();
        await kick;
        Completion done = rig.Wait(request);
        Assert.True(returned, "the kick waited for a worker thread to start");
        Assert.Equal(BlockStatus.Ok, done.BlockStatus);
        Assert.True(done.Data.AsSpan().IndexOfAnyExcept((byte)0x42) < 0);
    }

    [Fact]
    public void ResetGaveUpOnARequestNotYetStarted_TheWorkerSkipsItsRead()
    {
        string path = TestFiles.NewImage(Directory, 1 << 20, fill: 0x42);
        using var backend = new FileBlockBackend(path);
        using var gate = new System.Threading.ManualResetEventSlim();
        using var entered = new System.Threading.ManualResetEventSlim();
        backend.BeforeExecute = _ =>
        {
            entered.Set();
            gate.Wait(TimeSpan.FromSeconds(10));
        };
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromMilliseconds(50) });
        rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 4096);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

        rig.Reset();
        rig.Probe();
        byte[] before = ResetTests.Snapshot(rig);
        backend.BeforeExecute = null;
        gate.Set();
        WaitUntil(() => rig.Device.InFlight == 0);
        ResetTests.AssertUnchanged(rig, before);
        Assert.Equal(BlockStatus.Ok, rig.Read(0, 512).BlockStatus);
    }

    private static void WaitUntil(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "timed out");
            System.Threading.Thread.Sleep(1);
        }
    }

}
