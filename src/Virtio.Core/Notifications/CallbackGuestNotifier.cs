using System;

namespace Virtio.Core.Notifications;

/// <summary>
/// Raises guest interrupts by invoking a delegate: for tests, for transports that inject interrupts
/// themselves (an emulated interrupt controller), or to count notifications.
/// </summary>
/// <remarks>
/// The callback runs synchronously on the thread that calls <see cref="Notify"/>, so it must be safe
/// to call from whatever thread the device uses and must not block. Notifications are not coalesced:
/// to batch them, call <see cref="Notify"/> through <see cref="Threading.DeferredCalls.Defer"/>.
/// </remarks>
public sealed class CallbackGuestNotifier : IGuestNotifier
{
    private readonly Action<InterruptReason, ushort> _callback;

    /// <summary>Creates a notifier that forwards every notification to <paramref name="callback"/>. Any thread may call it.</summary>
    /// <param name="callback">Invoked with the reason and queue index of each notification.</param>
    /// <exception cref="ArgumentNullException"><paramref name="callback"/> is null.</exception>
    public CallbackGuestNotifier(Action<InterruptReason, ushort> callback)
    {
        ArgumentNullException.ThrowIfNull(callback);
        _callback = callback;
    }

    /// <summary>Invokes the callback on the calling thread. Any thread may call it; it allocates nothing itself.</summary>
    /// <param name="reason">Passed to the callback.</param>
    /// <param name="queueIndex">Passed to the callback.</param>
    public void Notify(InterruptReason reason, ushort queueIndex) => _callback(reason, queueIndex);
}
