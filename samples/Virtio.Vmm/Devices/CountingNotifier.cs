using System.Threading;
using Virtio.Core.Notifications;

namespace Virtio.Vmm.Devices;

/// <summary>Counts the notifies it passes on: how often a PCI function asserted its INTx line.</summary>
internal sealed class CountingNotifier : IGuestNotifier
{
    private readonly IGuestNotifier _inner;
    private long _count;

    public CountingNotifier(IGuestNotifier inner) => _inner = inner;

    /// <summary>Notifies so far.</summary>
    public long Count => Interlocked.Read(ref _count);

    public void Notify(InterruptReason reason, ushort queueIndex)
    {
        Interlocked.Increment(ref _count);
        _inner.Notify(reason, queueIndex);
    }
}
