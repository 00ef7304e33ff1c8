using System;
using Virtio.Core.Threading;

namespace Virtio.Core.Notifications;

/// <summary>
/// Raises guest interrupts by signalling an <see cref="EventFd"/> that the embedder registered with
/// the hypervisor as an irqfd (or passed to a vhost-user front-end as a call fd).
/// </summary>
/// <remarks>
/// One instance stands for one interrupt line or MSI vector, so <see cref="Notify"/> ignores the reason
/// and queue index: the embedder sets the ISR bits before the signal reaches the guest. Inside a
/// <see cref="DeferredCalls"/> section the signal is deferred and coalesced: any number of notifies on
/// this thread before the outermost <see cref="DeferredCalls.End"/> become a single eventfd write
/// there. Outside a section the eventfd is written at once. The notifier does not own the
/// <see cref="EventFd"/>; the embedder disposes it after the hypervisor has dropped the irqfd.
/// </remarks>
public sealed class EventFdGuestNotifier : IGuestNotifier
{
    // One delegate for every instance: deferring (s_signal, eventFd) allocates nothing and dedupes per fd.
    private static readonly Action<object?> s_signal = static state => ((EventFd)state!).Signal();

    /// <summary>Creates a notifier over <paramref name="eventFd"/>. Any thread may call it.</summary>
    /// <param name="eventFd">The irqfd; it stays owned by the caller.</param>
    /// <exception cref="ArgumentNullException"><paramref name="eventFd"/> is null.</exception>
    public EventFdGuestNotifier(EventFd eventFd)
    {
        ArgumentNullException.ThrowIfNull(eventFd);
        EventFd = eventFd;
    }

    /// <summary>The eventfd this notifier signals. Any thread may read it.</summary>
    public EventFd EventFd { get; }

    /// <summary>
    /// Signals the eventfd now, or at the end of the caller's <see cref="DeferredCalls"/> section. Any
    /// thread may call it, usually the device's I/O thread; it does not allocate or block.
    /// </summary>
    /// <param name="reason">Unused: the eventfd carries no payload.</param>
    /// <param name="queueIndex">Unused: the eventfd carries no payload.</param>
    public void Notify(InterruptReason reason, ushort queueIndex) => DeferredCalls.Defer(s_signal, EventFd);
}
