using Virtio.Core.Notifications;

namespace Virtio.Benchmarks.Net;

/// <summary>An interrupt line that drops every interrupt: the benchmarks poll the used rings.</summary>
internal sealed class NullGuestNotifier : IGuestNotifier
{
    public void Notify(InterruptReason reason, ushort queueIndex)
    {
    }
}
