using System;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Kvm;
using Virtio.Kvm.Bus;
using Virtio.Kvm.Notifications;
using Virtio.Vmm.Hosting;

namespace Virtio.Vmm.Devices;

/// <summary>
/// A virtio-mmio device: its window on the bus and the irqfd on its GSI (level-triggered with a
/// resample watch under <c>--irq-level</c>); QueueNotify on an ioeventfd unless <c>--no-ioeventfd</c>.
/// </summary>
internal sealed class MmioDeviceSlot : DeviceSlot
{
    /// <summary>The first device window; device i is at <see cref="FirstWindow"/> + i * <see cref="WindowSize"/>.</summary>
    public const ulong FirstWindow = 0xD0000000;

    /// <summary>The size of one window.</summary>
    public const ulong WindowSize = 0x1000;

    private readonly KvmIrqFdNotifier _irq;
    private readonly IDisposable? _resample;

    private MmioDeviceSlot(int index, string name, VirtioDevice device, IoThread ioThread, KvmIrqFdNotifier irq, IDisposable? resample, HostNotifierController? controller, IDisposable? owned, ILogger logger)
        : base(index, name, device, ioThread, controller, owned, logger)
    {
        _irq = irq;
        _resample = resample;
    }

    /// <summary>The window's guest physical address.</summary>
    public ulong MmioBase => FirstWindow + ((ulong)Index * WindowSize);

    /// <summary>
    /// Wires a device: creates its irqfd and transport, puts the window on <paramref name="bus"/>, and
    /// (with <see cref="VmmOptions.IoEventFd"/>) a host-notifier controller whose binding is a KVM ioeventfd on
    /// QueueNotify. With <see cref="VmmOptions.IrqLevel"/> the irqfd is level-triggered and its resample
    /// fd is served on the device's I/O thread, raising the line again while InterruptStatus is set.
    /// <paramref name="createDevice"/> gets the started I/O thread; <paramref name="owned"/> is closed
    /// with the slot.
    /// </summary>
    public static MmioDeviceSlot Create(
        int index,
        string name,
        KvmVm vm,
        KvmBus bus,
        VmmOptions options,
        Func<IoThread, VirtioDevice> createDevice,
        IDisposable? owned,
        ILoggerFactory loggers)
    {
        ILogger logger = loggers.CreateLogger("Virtio.Vmm." + name);
        IoThread? ioThread = null;
        KvmIrqFdNotifier? irq = null;
        IDisposable? resample = null;
        try
        {
            ioThread = StartIoThread(name, logger);
            uint gsi = GsiOf(index);
            ulong mmioBase = FirstWindow + ((ulong)index * WindowSize);
            irq = KvmIrqFdNotifier.Create(vm, gsi, levelTriggered: options.IrqLevel);
            VirtioDevice device = createDevice(ioThread);
            IGuestNotifier line = options.IrqBatching ? irq : new UnbatchedIrqNotifier(irq.EventFd);
            var transport = new VirtioMmioTransport(device, line, logger);
            if (options.IrqLevel)
            {
                resample = irq.WatchResample(ioThread, () => transport.InterruptStatus != 0);
            }

            bus.Add(KvmIoSpace.Mmio, mmioBase, WindowSize, new VirtioMmioIoHandler(transport));
            HostNotifierController? controller = options.IoEventFd
                ? new HostNotifierController(device, KvmIoEventFdBinding.ForVirtioMmio(vm, mmioBase), [ioThread], logger)
                : null;
            Log.DeviceWired(logger, name, mmioBase, gsi, options.IoEventFd ? "ioeventfd" : "MMIO exit",
                (options.IrqBatching ? "batched" : "one per completion") + (options.IrqLevel ? ", level-triggered" : ", edge-triggered"));
            return new MmioDeviceSlot(index, name, device, ioThread, irq, resample, controller, owned, logger);
        }
        catch
        {
            resample?.Dispose();
            irq?.Dispose();
            ioThread?.Dispose();
            owned?.Dispose();
            throw;
        }
    }

    protected override void CloseInterrupts()
    {
        if (_resample is not null)
        {
            _resample.Dispose();
            Log.LineReasserted(Logger, Name, _irq.Reassertions);
        }

        _irq.Dispose();
    }
}
