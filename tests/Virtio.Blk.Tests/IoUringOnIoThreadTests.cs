using System;
using System.IO;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// The io_uring backend driven from the device's I/O thread: one io_uring_enter per drain pass,
/// completions reaped there (no reaper thread), no allocation per request. Skipped, with the
/// reason, where io_uring is not allowed.
/// </summary>
public sealed class IoUringOnIoThreadTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("virtio-blk-uring-io-");
    private readonly IoThread _ioThread = new("blk-uring-io");

    public IoUringOnIoThreadTests()
    {
        Assert.SkipUnless(IoUringBlockBackend.IsSupported(out string? reason), reason ?? string.Empty);
        _ioThread.Start();
    }

    public void Dispose()
    {
        _ioThread.Dispose();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public void OnePassOfReads_IsOneEnter_AndCompletesWithoutAReaperThread()
    {
        string path = TestFiles.NewImage(_directory, 1 << 20, fill: 0x6B);
        using var backend = new IoUringBlockBackend(path, ioThreads: [_ioThread]);
        using var rig = NewRig(backend);
        using HostNotifierController controller = Attach(rig);
        Assert.False(backend.HasReaperThread);
        AssertSixteenReadsInOnePass_AreOneEnter(rig, backend, queue: 0, fill: 0x6B);
    }

    [Fact]
    public void TwoQueuesOnTwoIoThreads_EachSubmitsToItsOwnRing_OnePassIsOneEnter()
    {
        // Queue 1 is served by the second I/O thread: its requests go into that thread's ring, whose
        // enter waits for the end of the pass. Put into the first ring from the second thread, each
        // would enter at once (a foreign thread cannot defer the first ring's enter).
        using var second = new IoThread("blk-uring-io-2");
        second.Start();
        string path = TestFiles.NewImage(_directory, 1 << 20, fill: 0x2D);
        using var backend = new IoUringBlockBackend(path, ioThreads: [_ioThread, second]);
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueCount = 2, QueueSize = 128, IoThreads = [_ioThread, second] }, queueSize: 128);
        using var controller = new HostNotifierController(rig.Device, new InProcessNotifierBinding(rig.Transport), [_ioThread, second]);
        AssertSixteenReadsInOnePass_AreOneEnter(rig, backend, queue: 1, fill: 0x2D);
    }

    [Fact]
    public void WritethroughWrite_ItsFlushIsSubmittedFromTheCompletion_AndRoundTrips()
    {
        // Without FLUSH negotiated each write is followed by a flush, submitted from the write's
        // completion on the I/O thread: the enter is deferred to the end of that reaping section.
        string path = TestFiles.NewImage(_directory, 1 << 20);
        using var backend = new IoUringBlockBackend(path, ioThreads: [_ioThread]);
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 128, IoThreads = [_ioThread] }, wanted: ~BlockFeatures.Flush, queueSize: 128);
        using HostNotifierController controller = Attach(rig);
        Assert.False(rig.Device.IsWritebackActive);

        byte[] data = BlkRig.Pattern(8192, 4);
        Assert.Equal(BlockStatus.Ok, rig.Write(8, data).BlockStatus);
        Assert.Equal(data, TestFiles.Bytes(path, 8 * 512, data.Length));
        Assert.Equal(data, rig.Read(8, data.Length).Data);
    }

    [Fact]
    public void Dispose_WithRequestsInFlightOnTheIoThread_WaitsForThem()
    {
        const int depth = 32;
        string path = TestFiles.NewImage(_directory, 1 << 20, fill: 0x11);
        var backend = new IoUringBlockBackend(path, queueDepth: 4, ioThreads: [_ioThread]);
        using var rig = NewRig(backend);
        var reads = new Pending[depth];
        for (int i = 0; i < depth; i++)
        {
            reads[i] = rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false);
        }

        // No host notifier: the kick processes the queue here, so all 32 are at the backend (4 in
        // the ring, 28 in line) when Dispose starts; their completions are reaped on the I/O thread.
        rig.Kick(0);
        backend.Dispose();

        // Each has completed (those Dispose reaped are pushed on the I/O thread, so wait for them).
        foreach (Pending read in reads)
        {
            Completion done = rig.Wait(read);
            Assert.Equal(BlockStatus.Ok, done.BlockStatus);
            Assert.All(done.Data, b => Assert.Equal(0x11, b));
        }

        Assert.Equal(0, rig.Device.InFlight);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SteadyState_AllocatesNothingOnTheIoThread(bool polling)
    {
        const int batch = 16;
        const int rounds = 200;
        _ioThread.PollingDuration = polling ? TimeSpan.FromMilliseconds(50) : TimeSpan.Zero;
        string path = TestFiles.NewImage(_directory, 1 << 20);
        using var backend = new IoUringBlockBackend(path, ioThreads: [_ioThread]);
        using var rig = NewRig(backend);
        using HostNotifierController controller = Attach(rig);
        var pending = new Pending[batch];
        void Round()
        {
            for (int i = 0; i < batch; i++)
            {
                pending[i] = rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false);
            }

            rig.Kick(0);
            foreach (Pending p in pending)
            {
                Assert.Equal(BlockStatus.Ok, rig.Wait(p).BlockStatus);
            }

            // The test's interrupt recorder logs each interrupt in a ConcurrentQueue, on the I/O thread:
            // emptied here, it stays in its first segment instead of growing one (the harness's allocation, not the device's).
            while (rig.Line.Raised.TryDequeue(out _))
            {
            }
        }

        for (int i = 0; i < 50; i++)
        {
            Round(); // warm-up: slots and vectors grow to their size, methods are compiled
        }

        _ = AllocatedOnIoThread(); // and the measuring call itself has run once on the I/O thread

        long before = AllocatedOnIoThread();
        for (int i = 0; i < rounds; i++)
        {
            Round();
        }

        long allocated = AllocatedOnIoThread() - before;

        // Pop, parse, submit, enter, reap, complete, publish and interrupt for 3200 requests on the I/O thread: 0 B.
        Assert.Equal(0, allocated);
        Assert.Equal(polling, _ioThread.PollingTime > TimeSpan.Zero);
    }

    [Fact]
    public void PollingIoThread_ServesARequestMadeAvailableWithoutANotify_AndDisposesWhilePolling()
    {
        // A ceiling far above the test's pace: once grown, the window covers the gap between requests.
        _ioThread.PollingDuration = TimeSpan.FromSeconds(2);
        string path = TestFiles.NewImage(_directory, 1 << 20, fill: 0x3C);
        var backend = new IoUringBlockBackend(path, ioThreads: [_ioThread]);
        using var rig = NewRig(backend);
        using HostNotifierController controller = Attach(rig);

        // Notified requests 20 ms apart: the thread's waits, far below the ceiling, grow the window
        // from 4 us until it covers them (it grows only as far as the gaps need).
        for (int i = 0; i < 40; i++)
        {
            Thread.Sleep(20); // pacing, not waiting for anything: the window grows past 20 ms, so a loaded machine's scheduling delays stay inside it
            Assert.Equal(BlockStatus.Ok, rig.Read(8, 4096).BlockStatus);
        }

        Assert.NotEqual(TimeSpan.Zero, _ioThread.PollingTime);

        // Right after the last completion, while the thread polls: avail->idx moves, and no notify
        // follows, so only the queue's poller can find the request.
        Pending quiet = rig.Post(0, (uint)BlockRequestType.In, 16, inLength: 4096, kick: false);
        _ = rig.Guests[0].Kick();
        Completion done = rig.Wait(quiet);
        Assert.Equal(BlockStatus.Ok, done.BlockStatus);
        Assert.True(done.Data.AsSpan().IndexOfAnyExcept((byte)0x3C) < 0);

        // The I/O thread is still polling the ring's completion queue: closing the ring stops that first.
        // A poll of the unmapped ring would kill the process; the thread goes on serving.
        backend.Dispose();
        Assert.Equal(IoThreadRunResult.Ran, _ioThread.RunAndWait(static _ => { }, null, Bound));
    }

    /// <summary>Posts 16 reads on <paramref name="queue"/>, kicks once, checks each against <paramref name="fill"/>: the chains were popped in one pass, so their entries went to the kernel in one io_uring_enter.</summary>
    private static void AssertSixteenReadsInOnePass_AreOneEnter(BlkRig rig, IoUringBlockBackend backend, int queue, byte fill)
    {
        var reads = new Pending[16];
        for (int i = 0; i < reads.Length; i++)
        {
            reads[i] = rig.Post(queue, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false);
        }

        long before = backend.SubmitCalls;
        rig.Kick(queue);
        foreach (Pending read in reads)
        {
            Completion done = rig.Wait(read);
            Assert.Equal(BlockStatus.Ok, done.BlockStatus);
            Assert.True(done.Data.AsSpan().IndexOfAnyExcept(fill) < 0);
        }

        Assert.Equal(1, backend.SubmitCalls - before);
        Assert.Equal(0, rig.Device.InFlight);
    }

    private BlkRig NewRig(IBlockBackend backend) => new(backend, new BlockDeviceOptions { QueueSize = 128, IoThreads = [_ioThread] }, queueSize: 128);

    private HostNotifierController Attach(BlkRig rig) => new(rig.Device, new InProcessNotifierBinding(rig.Transport), [_ioThread]);

    private long AllocatedOnIoThread()
    {
        var box = new long[1];
        Assert.Equal(IoThreadRunResult.Ran, _ioThread.RunAndWait(static state => ((long[])state!)[0] = GC.GetAllocatedBytesForCurrentThread(), box, Bound));
        return box[0];
    }
}
