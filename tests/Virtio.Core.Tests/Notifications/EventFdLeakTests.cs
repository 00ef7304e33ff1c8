using Virtio.Core.Notifications;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

[Collection(FdCountingGroup.Name)]
public sealed class EventFdLeakTests
{
    [Fact]
    public void Dispose_ClosesTheFd()
    {
        int before = ProcFs.OpenFdCount();
        for (int i = 0; i < 100; i++)
        {
            using var eventFd = EventFd.Create();
            eventFd.Signal();
        }

        Assert.Equal(before, ProcFs.OpenFdCount());
    }
}
