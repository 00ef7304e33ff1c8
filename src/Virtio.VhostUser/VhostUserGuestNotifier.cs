using System.Threading;
using Virtio.Core.Notifications;

namespace Virtio.VhostUser;

/// <summary>
/// The served device's <see cref="IGuestNotifier"/>: a used-buffer notification of queue i is a
/// write to the call fd the front end gave for ring i (<see cref="EventFdGuestNotifier"/>, which
/// defers the write to the end of the current deferred-call section, so one wake-up of an I/O
/// thread makes one write). Without a call fd the notification is dropped, as the protocol says.
/// A configuration change (DEVICE_NEEDS_RESET included) is a CONFIG_CHANGE_MSG on the back-end
/// request channel when the front end gave one (<see cref="BackendChannel"/>, never blocking).
/// </summary>
internal sealed class VhostUserGuestNotifier : IGuestNotifier
{
    private readonly EventFdGuestNotifier?[] _calls;
    private BackendChannel? _backendChannel;

    public VhostUserGuestNotifier(int queueCount) => _calls = new EventFdGuestNotifier?[queueCount];

    /// <summary>Sets or clears the connection's back-end request channel (SET_BACKEND_REQ_FD). The connection's thread.</summary>
    public void SetBackendChannel(BackendChannel? channel) => Volatile.Write(ref _backendChannel, channel);

    /// <summary>Sets or clears the call fd of ring <paramref name="queueIndex"/>. The connection's thread.</summary>
    public void SetCall(ushort queueIndex, EventFdGuestNotifier? call) => Volatile.Write(ref _calls[queueIndex], call);

    public void Notify(InterruptReason reason, ushort queueIndex)
    {
        if (reason == InterruptReason.ConfigurationChange)
        {
            // Without a back-end request channel (BACKEND_REQ not negotiated, or no fd yet) the
            // change is not signalled: the front end reads the configuration with GET_CONFIG.
            _ = Volatile.Read(ref _backendChannel)?.TrySendConfigChange();
            return;
        }

        if (reason == InterruptReason.UsedBuffer && queueIndex < _calls.Length)
        {
            Volatile.Read(ref _calls[queueIndex])?.Notify(reason, queueIndex);
        }
    }
}
