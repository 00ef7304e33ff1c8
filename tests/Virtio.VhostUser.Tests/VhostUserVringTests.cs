using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Testing;
using Virtio.VhostUser.Memory;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// A ring's hand-overs to its I/O thread: stopping the kick handler and closing an old call fd
/// wait for the thread's next turn, and do not throw once the thread has stopped (Schedule does).
/// </summary>
public sealed class VhostUserVringTests
{
    [Theory]
    [InlineData(false, IoThreadRunResult.Ran)]
    [InlineData(true, IoThreadRunResult.Stopped)]
    public void StopServing_WaitsForTheIoThreadsTurn_AndDoesNotThrowOnceItStopped(bool stopThreadFirst, IoThreadRunResult expected)
    {
        using var io = new IoThread("vring-test");
        io.Start();
        var vring = new VhostUserVring(new RecordingDevice(new VhostUserMemory()), 0, io);
        vring.SetKick(EventFd.Create());
        vring.StartServing();
        Assert.True(vring.Started);
        if (stopThreadFirst)
        {
            io.Stop();
        }

        Assert.Equal(expected, vring.StopServing());
        Assert.False(vring.Started);
        vring.DisposeFds();
    }

    [Fact]
    public void ReplaceCall_AfterTheIoThreadStopped_ClosesTheOldFdAtOnce()
    {
        using var io = new IoThread("vring-test");
        io.Start();
        var vring = new VhostUserVring(new RecordingDevice(new VhostUserMemory()), 0, io);
        var notifier = new VhostUserGuestNotifier(1);
        EventFd first = EventFd.Create();
        Assert.Equal(IoThreadRunResult.Ran, vring.ReplaceCall(first, notifier));
        io.Stop();

        EventFd second = EventFd.Create();
        Assert.Equal(IoThreadRunResult.Stopped, vring.ReplaceCall(second, notifier));
        Assert.True(first.IsClosed);
        Assert.Same(second, vring.Call?.EventFd);
        vring.DisposeFds();
        Assert.True(second.IsClosed);
    }
}
