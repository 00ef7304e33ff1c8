using System;
using Tmds.Linux;
using Virtio.Core.Notifications;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

public sealed class EventFdTests
{
    [Fact]
    public void Consume_ReadsTheSumOfSignals()
    {
        using var eventFd = EventFd.Create();
        eventFd.Signal();
        eventFd.Signal();
        eventFd.Signal();

        Assert.True(eventFd.TryConsume(out ulong count));
        Assert.Equal(3UL, count);
        Assert.False(eventFd.TryConsume(out _));
    }

    [Fact]
    public void Consume_WhenNotSignalled_ReturnsFalse()
    {
        using var eventFd = EventFd.Create();

        Assert.False(eventFd.TryConsume(out ulong count));
        Assert.Equal(0UL, count);
    }

    [Fact]
    public void Create_WithInitialValue_StartsSignalled()
    {
        using var eventFd = EventFd.Create(initialValue: 5);

        Assert.True(eventFd.TryConsume(out ulong count));
        Assert.Equal(5UL, count);
    }

    [Fact]
    public void Create_IsNonBlockingAndCloseOnExec()
    {
        using var eventFd = EventFd.Create();

        int statusFlags = LibC.fcntl(eventFd.Fd, LibC.F_GETFL);
        int descriptorFlags = LibC.fcntl(eventFd.Fd, LibC.F_GETFD);

        Assert.NotEqual(-1, statusFlags);
        Assert.NotEqual(0, statusFlags & LibC.O_NONBLOCK);
        Assert.NotEqual(0, descriptorFlags & LibC.FD_CLOEXEC);
    }

    [Fact]
    public void FromOwnedHandle_SignalsTheSameCounterAndTakesOwnership()
    {
        int fd = LibC.eventfd(0, LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC);
        Assert.True(fd >= 0);

        var eventFd = EventFd.FromOwnedHandle(fd);
        eventFd.Signal();
        Assert.True(eventFd.TryConsume(out ulong count));
        Assert.Equal(1UL, count);
        Assert.Equal(fd, eventFd.Fd);

        eventFd.Dispose();
        Assert.True(eventFd.IsClosed);
        Assert.Throws<ObjectDisposedException>(() => eventFd.Fd);
        Assert.Throws<ObjectDisposedException>(eventFd.Signal);
    }

    [Fact]
    public void FromOwnedHandle_RejectsNegativeFd() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => EventFd.FromOwnedHandle(-1));
}
