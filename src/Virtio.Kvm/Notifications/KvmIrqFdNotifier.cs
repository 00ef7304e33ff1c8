using System;
using System.Threading;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm.Notifications;

/// <summary>
/// An interrupt line of the in-kernel irqchip driven by an eventfd (KVM_IRQFD): signalling it raises
/// GSI <see cref="Gsi"/> without a system call on a vCPU thread. It is an <see cref="IGuestNotifier"/>
/// for a device transport; inside a deferred-call section notifies coalesce into one eventfd write.
/// </summary>
/// <remarks>
/// Thread-safe. Owns its eventfds: <see cref="Dispose"/> deassigns the irqfd, then closes them. For a
/// level-triggered line (<see cref="Create"/> with resample), KVM lowers the line when the guest
/// signals end of interrupt and then signals <see cref="ResampleFd"/>; <see cref="WatchResample"/>
/// raises the line again while the device still has an interrupt pending, as a level line would stay
/// high.
/// </remarks>
public sealed class KvmIrqFdNotifier : IGuestNotifier, IDisposable
{
    private readonly KvmVm _vm;
    private readonly EventFdGuestNotifier _notifier;
    private readonly object _gate = new();
    private bool _disposed;
    private long _reassertions;

    private KvmIrqFdNotifier(KvmVm vm, uint gsi, EventFd eventFd, EventFd? resampleFd)
    {
        _vm = vm;
        Gsi = gsi;
        ResampleFd = resampleFd;
        _notifier = new EventFdGuestNotifier(eventFd);
    }

    /// <summary>The GSI the irqfd raises.</summary>
    public uint Gsi { get; }

    /// <summary>The eventfd KVM watches.</summary>
    public EventFd EventFd => _notifier.EventFd;

    /// <summary>For a level-triggered line, the eventfd KVM signals when the guest acknowledges the interrupt; otherwise null.</summary>
    public EventFd? ResampleFd { get; }

    /// <summary>Creates an eventfd (and a resample eventfd for a level-triggered line) and registers it as an irqfd for <paramref name="gsi"/>.</summary>
    /// <param name="vm">The VM; it needs an in-kernel irqchip.</param>
    /// <param name="gsi">The interrupt line.</param>
    /// <param name="levelTriggered">Register with KVM_IRQFD_FLAG_RESAMPLE (needs KVM_CAP_IRQFD_RESAMPLE).</param>
    /// <returns>The registered notifier.</returns>
    /// <exception cref="KvmException">KVM_IRQFD failed (EINVAL without an irqchip, EBUSY when the eventfd is already an irqfd).</exception>
    public static KvmIrqFdNotifier Create(KvmVm vm, uint gsi, bool levelTriggered = false)
    {
        ArgumentNullException.ThrowIfNull(vm);
        EventFd eventFd = EventFd.Create();
        EventFd? resample = null;
        try
        {
            resample = levelTriggered ? EventFd.Create() : null;
            var request = new KvmIrqFdRequest
            {
                Fd = (uint)eventFd.Fd,
                Gsi = gsi,
                Flags = levelTriggered ? KvmIoctl.IrqFdFlagResample : 0,
                ResampleFd = resample is null ? 0 : (uint)resample.Fd,
            };
            int errno = vm.IrqFd(ref request);
            if (errno != 0)
            {
                throw new KvmException($"KVM_IRQFD (gsi {gsi})", errno);
            }

            return new KvmIrqFdNotifier(vm, gsi, eventFd, resample);
        }
        catch
        {
            resample?.Dispose();
            eventFd.Dispose();
            throw;
        }
    }

    /// <summary>How often <see cref="WatchResample"/> raised the line again after an end of interrupt.</summary>
    public long Reassertions => Interlocked.Read(ref _reassertions);

    /// <summary>
    /// Serves <see cref="ResampleFd"/> on <paramref name="ioThread"/>: each time KVM reports the
    /// guest's end of interrupt (and has lowered the line), the line is raised again if
    /// <paramref name="isPending"/> says the device still has an interrupt pending. For a virtio-mmio
    /// device that is <c>transport.InterruptStatus != 0</c>: an interrupt the guest did not
    /// acknowledge, or one that arrived between its InterruptStatus read and its end of interrupt, is
    /// delivered instead of lost.
    /// </summary>
    /// <param name="ioThread">A started I/O thread; <paramref name="isPending"/> runs there.</param>
    /// <param name="isPending">Whether the device's interrupt is still pending.</param>
    /// <returns>Disposing it stops the watch; dispose it before this notifier.</returns>
    /// <exception cref="InvalidOperationException">The line is edge-triggered: there is no resample fd.</exception>
    public IDisposable WatchResample(IoThread ioThread, Func<bool> isPending)
    {
        ArgumentNullException.ThrowIfNull(ioThread);
        ArgumentNullException.ThrowIfNull(isPending);
        EventFd resample = ResampleFd ?? throw new InvalidOperationException($"GSI {Gsi} is edge-triggered; create it with levelTriggered: true.");
        return ioThread.Register(resample, static state =>
        {
            var (self, pending) = ((KvmIrqFdNotifier, Func<bool>))state!;
            if (self.ResampleFd!.TryConsume(out _) && pending())
            {
                Interlocked.Increment(ref self._reassertions);
                self.EventFd.Signal();
            }
        }, (this, isPending));
    }

    /// <inheritdoc />
    public void Notify(InterruptReason reason, ushort queueIndex) => _notifier.Notify(reason, queueIndex);

    /// <summary>Deassigns the irqfd (KVM_IRQFD_FLAG_DEASSIGN) and closes the eventfds.</summary>
    /// <exception cref="KvmException">The deassign failed; the eventfds are closed anyway.</exception>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
        }

        try
        {
            var request = new KvmIrqFdRequest { Fd = (uint)EventFd.Fd, Gsi = Gsi, Flags = KvmIoctl.IrqFdFlagDeassign };
            int errno = _vm.IrqFd(ref request);
            if (errno != 0)
            {
                throw new KvmException($"KVM_IRQFD deassign (gsi {Gsi})", errno);
            }
        }
        finally
        {
            ResampleFd?.Dispose();
            EventFd.Dispose();
        }
    }
}
