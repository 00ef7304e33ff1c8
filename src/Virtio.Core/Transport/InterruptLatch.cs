using System.Threading;
using Virtio.Core.Notifications;

namespace Virtio.Core.Transport;

/// <summary>Keeps InterruptStatus: bits set by the device (any thread), cleared by the driver's ACK.</summary>
internal sealed class InterruptLatch(IGuestNotifier line) : IGuestNotifier
{
    private int _status;

    public uint Status => (uint)Volatile.Read(ref _status);

    public void Notify(InterruptReason reason, ushort queueIndex)
    {
        // The bit is visible before the line is raised, so the guest's handler sees it.
        Interlocked.Or(ref _status, (int)reason);
        line.Notify(reason, queueIndex);
    }

    public void Acknowledge(uint bits) => Interlocked.And(ref _status, ~(int)bits);

    public void Clear() => Volatile.Write(ref _status, 0);
}
