using System;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;

namespace Virtio.Vmm.Devices;

/// <summary>
/// One virtio device of the VMM and what every transport gives it: its position (which fixes its GSI),
/// its I/O thread, the host-notifier controller that puts its doorbells on ioeventfds (unless
/// <c>--no-ioeventfd</c>), whatever the device itself needs closed (a file, a tap), and the shutdown
/// order. <see cref="MmioDeviceSlot"/> and <see cref="PciDeviceSlot"/> add the transport and its
/// interrupts.
/// </summary>
internal abstract class DeviceSlot : IDisposable
{
    /// <summary>Device i's interrupt line (virtio-mmio's, or PCI INTx) is GSI <see cref="FirstGsi"/> + i.</summary>
    public const uint FirstGsi = 5;

    private readonly IoThread _ioThread;
    private readonly HostNotifierController? _controller;
    private readonly IDisposable? _owned;

    protected DeviceSlot(int index, string name, VirtioDevice device, IoThread ioThread, HostNotifierController? controller, IDisposable? owned, ILogger logger)
    {
        Index = index;
        Name = name;
        Device = device;
        _ioThread = ioThread;
        _controller = controller;
        _owned = owned;
        Logger = logger;
    }

    /// <summary>The device's position on its bus: its window or PCI device number and its GSI follow from it.</summary>
    public int Index { get; }

    /// <summary>A short name for logs ("disk0", "net0").</summary>
    public string Name { get; }

    /// <summary>The device.</summary>
    public VirtioDevice Device { get; }

    /// <summary>The interrupt line.</summary>
    public uint Gsi => FirstGsi + (uint)Index;

    /// <summary>The slot's logger.</summary>
    protected ILogger Logger { get; }

    /// <summary>GSI <see cref="FirstGsi"/> + <paramref name="index"/>.</summary>
    public static uint GsiOf(int index) => FirstGsi + (uint)index;

    /// <summary>Makes and starts the I/O thread a slot's device runs on.</summary>
    protected static IoThread StartIoThread(string name, ILogger logger)
    {
        var ioThread = new IoThread("vmm-" + name, logger);
        try
        {
            ioThread.Start();
            return ioThread;
        }
        catch
        {
            ioThread.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Shuts the device down with the vCPU stopped, in the library's order (docs/architecture.md,
    /// "Ownership and shutdown order"): disposes the device (a reset that waits for in-flight requests
    /// while the I/O thread still reaps and pushes their completions; the controller, still attached,
    /// takes the queues off their ioeventfds), detaches the controller, closes the transport's
    /// interrupts (<see cref="CloseInterrupts"/>) and what the device owned (its backend), and stops the
    /// I/O thread last.
    /// </summary>
    public void Dispose()
    {
        try
        {
            Device.Dispose();
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            Log.ResetFailed(Logger, Name, e);
        }

        _controller?.Dispose();
        CloseInterrupts();
        _owned?.Dispose();
        _ioThread.Dispose();
        Log.DeviceClosed(Logger, Name);
    }

    /// <summary>Logs what the interrupts did and closes them (irqfds, resample watches, MSI-X vectors); the device is reset by then.</summary>
    protected abstract void CloseInterrupts();
}
