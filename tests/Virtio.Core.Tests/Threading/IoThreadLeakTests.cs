using System;
using System.Threading;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Core.Tests.Threading;

[Collection(FdCountingGroup.Name)]
public sealed class IoThreadLeakTests
{
    [Fact]
    public void StopAndDispose_LeaveNoFdOpen()
    {
        int before = ProcFs.OpenFdCount();
        for (int i = 0; i < 20; i++)
        {
            using var eventFd = EventFd.Create();
            var io = new IoThread("io-leak-test");
            io.Start();
            using var called = new ManualResetEventSlim();
            IDisposable registration = io.Register(eventFd, _ =>
            {
                eventFd.TryConsume(out ulong _);
                called.Set();
            }, null);
            eventFd.Signal();
            Assert.True(called.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

            // Leave every other registration for Dispose to release.
            if (i % 2 == 0)
            {
                registration.Dispose();
            }

            io.Stop();
            io.Dispose();
        }

        Assert.Equal(before, ProcFs.OpenFdCount());
    }
}
