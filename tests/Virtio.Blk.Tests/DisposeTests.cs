using System;
using System.Diagnostics;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// Disposing a block device while the driver still uses it, with requests held in flight at a real
/// file backend (<see cref="FaultInjectingBlockBackend"/> in front of <see cref="FileBlockBackend"/>),
/// and the bounded reset waits.
/// </summary>
public sealed class DisposeTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("virtio-blk-dispose-");

    public void Dispose() => _directory.Delete(recursive: true);

    private (FaultInjectingBlockBackend Faulty, FileBlockBackend File, string Path) SlowFileDisk()
    {
        string path = TestFiles.NewImage(_directory, 1 << 20, fill: 0x5A);
        var file = new FileBlockBackend(path, workers: 2);
        return (new FaultInjectingBlockBackend(file) { Rule = _ => Fault.Hold }, file, path);
    }

    [Fact]
    public async Task Dispose_Twice_WithRequestsInFlight_DoesNotThrow()
    {
        var (faulty, file, _) = SlowFileDisk();
        using (file)
        using (var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromMilliseconds(50) }))
        {
            rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 4096);
            rig.Post(0, (uint)BlockRequestType.Out, 8, BlkRig.Pattern(4096, 3));
            faulty.WaitHeld(2);

            rig.Device.Dispose();
            rig.Device.Dispose();
            await rig.Device.DisposeAsync();
            Assert.True(rig.Device.IsDisposed);
            Assert.Equal(DeviceStatus.None, rig.Device.Status);

            faulty.Rule = null;
            Assert.Equal(2, faulty.ReleaseHeld());
            WaitUntil(() => rig.Device.InFlight == 0);
        }
    }

    [Fact]
    public void Dispose_WaitsForRequestsInFlight_AndTheirCompletionsWriteNothing()
    {
        var (faulty, file, _) = SlowFileDisk();
        using (file)
        using (var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromSeconds(10) }))
        {
            Pending first = rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 4096);
            Pending second = rig.Post(0, (uint)BlockRequestType.In, 8, inLength: 4096);
            faulty.WaitHeld(2);

            // The reads are let go only once Dispose has begun (it marks the device disposed first), so a
            // Dispose that did not wait for them returns before they are released.
            int released = 0;
            var releaser = new Thread(() =>
            {
                Assert.True(SpinWait.SpinUntil(() => rig.Device.IsDisposed, BlkRig.Bound));
                Volatile.Write(ref released, 1);
                faulty.Rule = null;
                faulty.ReleaseHeld();
            });
            releaser.Start();
            rig.Device.Dispose();
            bool releasedBeforeReturn = Volatile.Read(ref released) == 1;
            releaser.Join();

            // The file backend ran both reads on its workers while Dispose waited (the data may land:
            // the driver has not got its buffers back yet); neither a status byte nor a used element did.
            Assert.True(releasedBeforeReturn, "Dispose returned before the held reads were released: it did not wait for them");
            Assert.Equal(0, rig.Device.InFlight);
            Assert.Equal(BlkRig.StatusSentinel, StatusByte(rig, first));
            Assert.Equal(BlkRig.StatusSentinel, StatusByte(rig, second));
            Assert.False(rig.Guests[0].TryGetUsed(out _, out _));

            // And from here on nothing is written at all.
            byte[] after = ResetTests.Snapshot(rig);
            Assert.False(SpinWait.SpinUntil(() => !ResetTests.IsUnchanged(rig, after), TimeSpan.FromMilliseconds(50)), "guest memory was written after Dispose returned");
            ResetTests.AssertUnchanged(rig, after);
            Assert.DoesNotContain(rig.Logger.Entries, e => e.Message.Contains("still in flight", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void CompletionAfterDispose_WritesNoGuestByte_NorTheDisk()
    {
        var (faulty, file, path) = SlowFileDisk();
        using (file)
        using (var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromMilliseconds(50) }))
        {
            rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 4096);
            rig.Post(0, (uint)BlockRequestType.Out, 16, BlkRig.Pattern(4096, 7));
            faulty.WaitHeld(2);
            byte[] before = ResetTests.Snapshot(rig);

            rig.Device.Dispose(); // gives up after 50 ms: both requests outlive the device
            Assert.Equal(2, rig.Device.InFlight);
            Assert.Contains(rig.Logger.Entries, e => e.Message.Contains("still in flight", StringComparison.Ordinal));

            faulty.Rule = null;
            Assert.Equal(2, faulty.ReleaseHeld());
            WaitUntil(() => rig.Device.InFlight == 0);

            ResetTests.AssertUnchanged(rig, before);
            Assert.True(TestFiles.Bytes(path, 16 * 512, 4096).AsSpan().IndexOfAnyExcept((byte)0x5A) < 0, "the abandoned write reached the disk");
        }
    }

    [Fact]
    public void DisposedDevice_TakesNoNewRequest()
    {
        var (faulty, file, _) = SlowFileDisk();
        using (file)
        using (var rig = new BlkRig(faulty))
        {
            faulty.Rule = null;
            Assert.Equal(BlockStatus.Ok, rig.Read(0, 512).BlockStatus);
            int submitted = faulty.Submitted;

            rig.Device.Dispose();
            byte[] before = ResetTests.Snapshot(rig);
            rig.Mmio.Notify(0); // the guest's kick of a queue it set up before
            Assert.Equal(submitted, faulty.Submitted);
            ResetTests.AssertUnchanged(rig, before);
        }
    }

    [Fact]
    public void Reset_WithAShortTimeout_ReturnsFalse_AndTheDeviceIsReset()
    {
        var (faulty, file, _) = SlowFileDisk();
        using (file)
        using (var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromSeconds(30) }))
        {
            rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 4096);
            faulty.WaitHeld(1);
            byte[] before = ResetTests.Snapshot(rig);

            var stopwatch = Stopwatch.StartNew();
            Assert.False(rig.Device.Reset(TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken));
            Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"the reset took {stopwatch.Elapsed}");
            Assert.Equal(DeviceStatus.None, rig.Device.Status);
            Assert.Equal(1, rig.Device.InFlight);

            faulty.Rule = null;
            Assert.Equal(1, faulty.ReleaseHeld());
            WaitUntil(() => rig.Device.InFlight == 0);
            ResetTests.AssertUnchanged(rig, before);

            // Nothing left: the same call now reports a clean reset, and the device serves again.
            Assert.True(rig.Device.Reset(TimeSpan.FromMilliseconds(50), TestContext.Current.CancellationToken));
            rig.Probe();
            Assert.Equal(BlockStatus.Ok, rig.Read(0, 512).BlockStatus);
        }
    }

    [Fact]
    public async Task Reset_WithACancelledToken_ReturnsFalse_WithoutWaitingTheTimeout()
    {
        var (faulty, file, _) = SlowFileDisk();
        using (file)
        using (var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64 }))
        {
            rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 4096);
            faulty.WaitHeld(1);
            using var cancel = new CancellationTokenSource();

            Task<bool> reset = Task.Factory.StartNew(() => rig.Device.Reset(Timeout.InfiniteTimeSpan, cancel.Token), TestContext.Current.CancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            // It waits for the held request: not done within a bounded wait on the reset itself.
            await Assert.ThrowsAsync<TimeoutException>(() => reset.WaitAsync(TimeSpan.FromMilliseconds(100), TestContext.Current.CancellationToken));
            cancel.Cancel();
            Task first = await Task.WhenAny(reset, Task.Delay(BlkRig.Bound, TestContext.Current.CancellationToken));
            bool returned = first == reset;
            faulty.Rule = null;
            faulty.ReleaseHeld(); // lets a reset that ignored the token end, so a failure does not hang
            Assert.True(returned, "the reset did not return when its token was cancelled");
            Assert.False(await reset);
            Assert.Equal(DeviceStatus.None, rig.Device.Status);
            WaitUntil(() => rig.Device.InFlight == 0);

            using var cancelled = new CancellationTokenSource();
            cancelled.Cancel();
            Assert.True(rig.Device.Reset(Timeout.InfiniteTimeSpan, cancelled.Token)); // nothing in flight: true at once
        }
    }

    private static byte StatusByte(BlkRig rig, Pending pending)
    {
        var last = rig.Guests[pending.Queue].ChainBuffers(pending.Head)[^1];
        return rig.Guests[pending.Queue].Span(new GuestAddress(last.Address.Value + (ulong)last.Length - 1), 1)[0];
    }

    private static void WaitUntil(Func<bool> condition) =>
        Assert.True(SpinWait.SpinUntil(condition, BlkRig.Bound), "timed out waiting");
}
