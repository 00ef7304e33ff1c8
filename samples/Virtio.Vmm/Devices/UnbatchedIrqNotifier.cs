using Virtio.Core.Notifications;

namespace Virtio.Vmm.Devices;

/// <summary>
/// The guest notifier of <c>--no-irq-batching</c>: signals the irqfd at once on every notify, even inside
/// a deferred-call section, so each completion the device publishes is its own interrupt. It exists to
/// measure what the batching of <see cref="Virtio.Kvm.Notifications.KvmIrqFdNotifier"/> saves.
/// </summary>
internal sealed class UnbatchedIrqNotifier : IGuestNotifier
{
    private readonly EventFd _irqFd;

    public UnbatchedIrqNotifier(EventFd irqFd) => _irqFd = irqFd;

    public void Notify(InterruptReason reason, ushort queueIndex) => _irqFd.Signal();
}
