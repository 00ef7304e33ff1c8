using System.Diagnostics.CodeAnalysis;

namespace Virtio.Core.Notifications;

/// <summary>
/// Routes a guest's notify writes for one device to event fds instead of to the transport:
/// a KVM ioeventfd on the QueueNotify register, or <see cref="InProcessNotifierBinding"/> in tests.
/// Assign and Deassign are separate calls; a binding may refuse an assignment (no capacity left).
/// </summary>
/// <remarks>Called by <see cref="HostNotifierController"/> from the vCPU thread or the queue's I/O thread; implementations must be thread-safe.</remarks>
public interface IHostNotifierBinding
{
    /// <summary>Makes the guest's notify of <paramref name="queueIndex"/> signal <paramref name="notifier"/>.</summary>
    /// <param name="queueIndex">The queue.</param>
    /// <param name="notifier">The event fd to signal.</param>
    /// <param name="refusal">Why the binding refused, when it did.</param>
    /// <returns>False when the binding cannot take another notifier; the queue keeps the synchronous path.</returns>
    bool TryAssign(ushort queueIndex, EventFd notifier, [NotNullWhen(false)] out string? refusal);

    /// <summary>Stops signalling <paramref name="notifier"/> for <paramref name="queueIndex"/>; later notifies reach the transport again.</summary>
    /// <param name="queueIndex">The queue.</param>
    /// <param name="notifier">The event fd given to <see cref="TryAssign"/>.</param>
    void Deassign(ushort queueIndex, EventFd notifier);
}
