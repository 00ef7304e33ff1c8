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
/// One virtio-mmio device of the VMM and everything it owns: its window on the bus, its I/O thread, the
/// irqfd on its GSI, the host-notifier controller that puts QueueNotify on ioeventfds (unless
/// <c>--no-ioeventfd</c>), and whatever the device itself needs closed (a file, a tap).
/// </summary>
internal sealed class MmioDeviceSlot : IDisposable
{
    /// <summary>The first device window; device i is at <see cref="FirstWindow"/> + i * <see cref="WindowSize"/>.</summary>
    public const ulong FirstWindow = 0xD0000000;

    /// <summary>The size of one window.</summary>
    public const ulong WindowSize = 0x1000;

    /// <summary>Device i interrupts on GSI <see cref="FirstGsi"/> + i.</summary>
    public const uint FirstGsi = 5;

    private readonly IoThread _ioThread;
    private readonly KvmIrqFdNotifier _irq;
    private readonly IDisposable? _resample;
    private readonly HostNotifierController? _controller;
    private readonly IDisposable? _owned;
    private readonly ILogger _logger;

    private MmioDeviceSlot(int index, string name, VirtioDevice device, IoThread ioThread, KvmIrqFdNotifier irq, IDisposable? resample, HostNotifierController? controller, IDisposable? owned, ILogger logger)
    {
        _resample = resample;
        Index = index;
        Name = name;
        Device = device;
        _ioThread = ioThread;
        _irq = irq;
        _controller = controller;
        _owned = owned;
        _logger = logger;
    }

    /// <summary>The device's position: its window and GSI follow from it.</summary>
    public int Index { get; }

    /// <summary>A short name for logs ("disk0", "net0").</summary>
    public string Name { get; }

    /// <summary>The device.</summary>
    public VirtioDevice Device { get; }

    /// <summary>The window's guest physical address.</summary>
    public ulong MmioBase => FirstWindow + ((ulong)Index * WindowSize);

    /// <summary>The interrupt line.</summary>
    public uint Gsi => FirstGsi + (uint)Index;

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
        var ioThread = new IoThread("vmm-" + name, logger);
        KvmIrqFdNotifier? irq = null;
        IDisposable? resample = null;
        try
        {
            ioThread.Start();
            uint gsi = FirstGsi + (uint)index;
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
            ioThread.Dispose();
            owned?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Shuts the device down with the vCPU stopped, in the library's order (docs/architecture.md,
    /// "Ownership and shutdown order"): disposes the device (a reset that waits for in-flight requests
    /// while the I/O thread still reaps and pushes their completions; the controller, still attached,
    /// takes the queues off their ioeventfds), detaches the controller, closes the irqfd and what the
    /// device owned (its backend), and stops the I/O thread last.
    /// </summary>
    public void Dispose()
    {
        try
        {
            Device.Dispose();
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            Log.ResetFailed(_logger, Name, e);
        }

        _controller?.Dispose();
        if (_resample is not null)
        {
            _resample.Dispose();
            Log.LineReasserted(_logger, Name, _irq.Reassertions);
        }

        _irq.Dispose();
        _owned?.Dispose();
        _ioThread.Dispose();
        Log.DeviceClosed(_logger, Name);
    }
}
