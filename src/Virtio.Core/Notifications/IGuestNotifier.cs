namespace Virtio.Core.Notifications;

/// <summary>
/// Raises an interrupt in the guest: the device-to-driver notification of virtio 1.2 §2.3.
/// Implementations are an irqfd the hypervisor watches, a vhost-user call fd, or a plain callback.
/// </summary>
/// <remarks>
/// Devices call <see cref="Notify"/> from their queue-processing thread (usually an I/O thread);
/// implementations must be safe to call from any thread and must not block.
/// </remarks>
public interface IGuestNotifier
{
    /// <summary>Signals the guest that <paramref name="reason"/> happened on <paramref name="queueIndex"/>.</summary>
    /// <param name="reason">Used buffer or configuration change.</param>
    /// <param name="queueIndex">The virtqueue whose buffers were used; 0 and meaningless for a configuration change.</param>
    void Notify(InterruptReason reason, ushort queueIndex);
}
