using System;
using System.Diagnostics;
using System.IO;
using Virtio.Blk.Backends;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

public sealed class FileBlockBackendTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("virtio-blk-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string NewImage(long size, byte fill = 0)
    {
        string path = Path.Combine(_dir.FullName, $"disk-{Guid.NewGuid():N}.img");
        using (FileStream stream = File.Create(path))
        {
            if (fill == 0)
            {
                stream.SetLength(size);
            }
            else
            {
                byte[] block = new byte[4096];
                Array.Fill(block, fill);
                for (long done = 0; done < size; done += block.Length)
                {
                    stream.Write(block, 0, (int)Math.Min(block.Length, size - done));
                }
            }
        }

        return path;
    }

    private static byte[] FileBytes(string path, long offset, int length)
    {
        using FileStream stream = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        stream.Position = offset;
        var data = new byte[length];
        stream.ReadExactly(data);
        return data;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void WriteFlushRead_RoundTripsThroughTheFile(bool withIoThread)
    {
        string path = NewImage(1 << 20);
        using var ioThread = new IoThread("blk-file-test");
        ioThread.Start();
        using var backend = new FileBlockBackend(path);
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 64, IoThreads = withIoThread ? [ioThread] : null });
        Assert.Equal((ulong)(1 << 20) / 512, rig.Device.CapacitySectors);

        byte[] data = BlkRig.Pattern(64 << 10, 7);
        Completion write = rig.Write(16, data, segment: 1536);
        Assert.Equal(BlockStatus.Ok, write.BlockStatus);
        Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
        Assert.Equal(data, FileBytes(path, 16 * 512, data.Length));

        Completion read = rig.Read(16, data.Length, segment: 3072);
        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.Equal((uint)data.Length + 1, read.Length);
        Assert.Equal(data, read.Data);
    }

    [Fact]
    public void WriteZeroesAndDiscard_ReadBackAsZeroes()
    {
        string path = NewImage(1 << 20, fill: 0x5A);
        using var backend = new FileBlockBackend(path);
        using var rig = new BlkRig(backend);

        Assert.Equal(BlockStatus.Ok, rig.Ranges(BlockRequestType.WriteZeroes, 0, (8, 8, 0), (64, 16, 1)).BlockStatus);
        Assert.All(FileBytes(path, 8 * 512, 4096), b => Assert.Equal(0, b));
        Assert.All(FileBytes(path, 64 * 512, 8192), b => Assert.Equal(0, b));
        Assert.All(FileBytes(path, 16 * 512, 4096), b => Assert.Equal(0x5A, b));

        // Discard succeeds; the file systems used here punch a hole, which reads back as zeroes.
        Assert.Equal(BlockStatus.Ok, rig.Ranges(BlockRequestType.Discard, 0, (128, 8, 0)).BlockStatus);
        Assert.Equal(BlockStatus.Ok, rig.Read(128, 4096).BlockStatus);
    }

    [Fact]
    public void ReadOnlyFile_OffersRo_WritesFail_ReadsWork()
    {
        string path = NewImage(64 << 10, fill: 0x21);
        using var backend = new FileBlockBackend(path, readOnly: true);
        using var rig = new BlkRig(backend);

        Assert.NotEqual(0UL, rig.Negotiated & BlockFeatures.ReadOnly);
        Assert.Equal(BlockStatus.IoError, rig.Write(0, BlkRig.Pattern(512, 1)).BlockStatus);
        Completion read = rig.Read(0, 512);
        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.All(read.Data, b => Assert.Equal(0x21, b));
    }

    [Fact]
    public void Capacity_PartialLastSectorIsNotExposed()
    {
        string path = NewImage(1000);
        using var backend = new FileBlockBackend(path);
        Assert.Equal(512UL, backend.Capacity);
    }

    [Fact]
    public void FileTruncatedUnderTheDevice_ShortReadGetsIoError()
    {
        string path = NewImage(1 << 20, fill: 0x3C);
        using var backend = new FileBlockBackend(path);
        using var rig = new BlkRig(backend);
        using (FileStream stream = new(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(6144);
        }

        // Sectors 8..15 straddle the new end of file: preadv stops short, then returns 0.
        Assert.Equal(BlockStatus.IoError, rig.Read(8, 4096).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Read(64, 512).BlockStatus);
        Completion head = rig.Read(0, 4096);
        Assert.Equal(BlockStatus.Ok, head.BlockStatus);
        Assert.All(head.Data, b => Assert.Equal(0x3C, b));
    }

    [Fact]
    public void QueueDepth32_ThirtyTwoRequestsReachTheFileAtOnce()
    {
        // fio iodepth=32 in a guest: 32 requests available at one kick must all be at the file
        // together. Each worker waits at a 32-party barrier right before its preadv: with fewer
        // than 32 in flight, the barrier times out and the test fails.
        const int depth = 32;
        string path = NewImage(1 << 20, fill: 0x42);
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
        string path = NewImage(1 << 20, fill: 0x42);
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
        string path = NewImage(1 << 20, fill: 0x42);
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

    [Fact]
    public void MissingFile_ThrowsIOException()
    {
        Assert.Throws<IOException>(() => new FileBlockBackend(Path.Combine(_dir.FullName, "missing.img")));
    }

    [Fact]
    public void Direct_AlignedRequestsWork()
    {
        string path = NewImage(1 << 20);
        FileBlockBackend backend;
        try
        {
            backend = new FileBlockBackend(path, direct: true);
        }
        catch (IOException exception) when (exception.HResult == 22)
        {
            Assert.Skip("This file system refuses O_DIRECT.");
            return;
        }

        using (backend)
        {
            using var rig = new BlkRig(backend);
            byte[] data = BlkRig.Pattern(8192, 3);

            // GuestDriver blocks are 4 KiB aligned, so the guest buffers satisfy O_DIRECT.
            Assert.Equal(BlockStatus.Ok, rig.Write(8, data).BlockStatus);
            Assert.Equal(data, rig.Read(8, data.Length).Data);
        }
    }

    [Fact]
    public void FullFileSystem_WriteGetsIoError_DeviceKeepsWorking()
    {
        string mountPoint = Directory.CreateDirectory(Path.Combine(_dir.FullName, "tiny")).FullName;
        if (Run("mount", $"-t tmpfs -o size=64k tmpfs {mountPoint}") != 0)
        {
            Assert.Skip("Cannot mount a tmpfs here (needs root and mount permission).");
        }

        try
        {
            // A sparse 1 MiB image on a 64 KiB file system: writing it all must run out of space.
            string path = Path.Combine(mountPoint, "disk.img");
            using (FileStream stream = File.Create(path))
            {
                stream.SetLength(1 << 20);
            }

            using var backend = new FileBlockBackend(path);
            using var rig = new BlkRig(backend);
            int failed = 0;
            for (ulong sector = 0; sector < 2048; sector += 8)
            {
                Completion write = rig.Write(sector, BlkRig.Pattern(4096, (int)sector));
                if (write.BlockStatus == BlockStatus.IoError)
                {
                    failed++;
                }
                else
                {
                    Assert.Equal(BlockStatus.Ok, write.BlockStatus);
                }
            }

            Assert.True(failed > 0, "no write failed on a full file system");
            Completion read = rig.Read(0, 4096);
            Assert.Equal(BlockStatus.Ok, read.BlockStatus);
            Assert.Equal(BlkRig.Pattern(4096, 0), read.Data);
            Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
        }
        finally
        {
            Run("umount", mountPoint);
        }
    }

    private static int Run(string file, string arguments)
    {
        try
        {
            using Process? process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, RedirectStandardOutput = true });
            if (process is null)
            {
                return -1;
            }

            process.WaitForExit(10_000);
            return process.HasExited ? process.ExitCode : -1;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return -1;
        }
    }
}
