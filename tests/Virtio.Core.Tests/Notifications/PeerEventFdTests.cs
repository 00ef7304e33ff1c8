using System;
using System.Threading;
using System.Threading.Tasks;
using Tmds.Linux;
using Virtio.Core.Notifications;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

/// <summary>
/// An eventfd a peer sends us (a vhost-user call or kick fd) is hostile: made blocking, made blocking
/// again after we wrapped it (the peer shares the open file description), filled or drained. No
/// Signal or TryConsume may block the calling thread, which is usually a shared I/O thread.
/// </summary>
public sealed class PeerEventFdTests
{
    private const ulong Full = ulong.MaxValue - 1; // an eventfd counter's maximum
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5);

    [Fact]
    public void FromOwnedHandle_MakesABlockingDescriptorNonBlocking()
    {
        using EventFd peer = EventFd.FromOwnedHandle(BlockingEventFd(0));

        Assert.NotEqual(0, LibC.fcntl(peer.Fd, LibC.F_GETFL) & LibC.O_NONBLOCK);
    }

    [Fact]
    public async Task Signal_OnAFullCounter_TheyMadeBlockingAgain_ReturnsAtOnce()
    {
        using EventFd peer = EventFd.FromOwnedHandle(BlockingEventFd(0));
        Fill(peer.Fd);
        ClearNonBlock(peer.Fd); // the peer's half of the shared description

        Task signal = OnItsOwnThread(peer.Signal);
        bool returned = await Returns(signal);
        if (!returned)
        {
            Drain(peer.Fd); // unblock the stuck write so the test host can exit
        }

        Assert.True(returned, "Signal blocked in write(2) on a full counter of a descriptor the peer made blocking");
        Assert.Equal(Full, ReadCounter(peer.Fd));
    }

    [Fact]
    public async Task TryConsume_OnAZeroCounter_TheyMadeBlockingAgain_ReturnsFalseAtOnce()
    {
        using EventFd peer = EventFd.FromOwnedHandle(BlockingEventFd(0));
        ClearNonBlock(peer.Fd);

        bool consumed = true;
        Task consume = OnItsOwnThread(() => consumed = peer.TryConsume(out _));
        bool returned = await Returns(consume);
        if (!returned)
        {
            WriteOne(peer.Fd); // unblock the stuck read
        }

        Assert.True(returned, "TryConsume blocked in read(2) on a zero counter of a descriptor the peer made blocking");
        Assert.False(consumed);
    }

    [Fact]
    public void PeerDescriptor_StillSignalsAndConsumes()
    {
        using EventFd peer = EventFd.FromOwnedHandle(BlockingEventFd(2));
        ClearNonBlock(peer.Fd);

        peer.Signal();

        Assert.True(peer.TryConsume(out ulong count));
        Assert.Equal(3UL, count);
        Assert.False(peer.TryConsume(out _));
    }

    // A thread of its own: a call that blocks in the kernel must not take a pool thread with it.
    private static Task OnItsOwnThread(Action action) =>
        Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private static async Task<bool> Returns(Task task) =>
        await Task.WhenAny(task, Task.Delay(Bound, TestContext.Current.CancellationToken)) == task;

    private static int BlockingEventFd(uint initial)
    {
        int fd = LibC.eventfd(initial, LibC.EFD_CLOEXEC); // no EFD_NONBLOCK: as a hostile front end makes it
        Assert.True(fd >= 0, $"eventfd failed: errno {LibC.errno}");
        return fd;
    }

    private static void ClearNonBlock(int fd) =>
        Assert.Equal(0, LibC.fcntl(fd, LibC.F_SETFL, LibC.fcntl(fd, LibC.F_GETFL) & ~LibC.O_NONBLOCK));

    private static unsafe void Fill(int fd)
    {
        ulong value = Full;
        Assert.Equal(8, (long)LibC.write(fd, &value, 8));
    }

    private static unsafe void WriteOne(int fd)
    {
        ulong value = 1;
        _ = LibC.write(fd, &value, 8);
    }

    private static unsafe void Drain(int fd)
    {
        ulong value;
        _ = LibC.read(fd, &value, 8);
    }

    private static unsafe ulong ReadCounter(int fd)
    {
        ulong value = 0;
        Assert.Equal(8, (long)LibC.read(fd, &value, 8));
        return value;
    }
}
