using System;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Core.Transport.Pci;
using Virtio.Kvm;
using Virtio.Kvm.Notifications;
using Virtio.Vmm.Hosting;
using Virtio.Vmm.Pci;

namespace Virtio.Vmm.Devices;

/// <summary>
/// A virtio-pci function at device <see cref="PciSlot"/> of bus 0: its BARs placed in the MMIO hole, its
/// configuration space on the host bridge, its MSI-X vectors as irqfds on MSI routes (none with
/// <c>--no-msix</c>: the function then has no MSI-X capability), its INTx line a level-triggered irqfd
/// on its GSI with a resample watch (the GSI written into Interrupt Line), and its doorbells on
/// ioeventfds that follow BAR 0 when the guest moves it (unless <c>--no-ioeventfd</c>).
/// </summary>
internal sealed class PciDeviceSlot : DeviceSlot
{
    private readonly VirtioPciFunction _function;
    private readonly KvmIrqFdNotifier _intx;
    private readonly CountingNotifier _intxCount;
    private readonly IDisposable _resample;
    private readonly KvmMsiXVectors? _msiX;
    private readonly KvmIoEventFdBinding? _doorbells;
    private bool _unbound;

    private PciDeviceSlot(int index, string name, VirtioDevice device, IoThread ioThread, VirtioPciFunction function, KvmIrqFdNotifier intx, CountingNotifier intxCount, IDisposable resample, KvmMsiXVectors? msiX, KvmIoEventFdBinding? doorbells, HostNotifierController? controller, IDisposable? owned, ILogger logger)
        : base(index, name, device, ioThread, controller, owned, logger)
    {
        _function = function;
        _intx = intx;
        _intxCount = intxCount;
        _resample = resample;
        _msiX = msiX;
        _doorbells = doorbells;
        _function.BarsChanged += OnBarsChanged;
    }

    /// <summary>The PCI device number on bus 0: device 0 is the host bridge, so slot i is device i + 1.</summary>
    public int PciSlot => Index + 1;

    /// <summary>The function.</summary>
    public VirtioPciFunction Function => _function;

    /// <summary>
    /// Wires a device as a PCI function: the INTx irqfd, the MSI-X vectors (one per queue plus one for
    /// configuration changes, unless <see cref="VmmOptions.MsiX"/> is off), the function, its BARs
    /// (placed by <paramref name="bars"/> and reached through <paramref name="hole"/>), its configuration
    /// space at device <paramref name="index"/> + 1 of <paramref name="bridge"/>, and with
    /// <see cref="VmmOptions.IoEventFd"/> a host-notifier controller on ioeventfds at the doorbells.
    /// </summary>
    public static PciDeviceSlot Create(
        int index,
        string name,
        KvmVm vm,
        KvmGsiRouting routing,
        PciHostBridge bridge,
        PciBarAllocator bars,
        PciMmioHole hole,
        VmmOptions options,
        Func<IoThread, VirtioDevice> createDevice,
        IDisposable? owned,
        ILoggerFactory loggers)
    {
        ILogger logger = loggers.CreateLogger("Virtio.Vmm." + name);
        IoThread? ioThread = null;
        KvmIrqFdNotifier? intx = null;
        IDisposable? resample = null;
        KvmMsiXVectors? msiX = null;
        try
        {
            ioThread = StartIoThread(name, logger);
            uint gsi = GsiOf(index);
            intx = KvmIrqFdNotifier.Create(vm, gsi, levelTriggered: true);
            VirtioDevice device = createDevice(ioThread);
            var intxCount = new CountingNotifier(options.IrqBatching ? intx : new UnbatchedIrqNotifier(intx.EventFd));
            int vectors = device.Queues.Count + 1;
            msiX = options.MsiX ? new KvmMsiXVectors(routing, vectors, logger) : null;
            var function = new VirtioPciFunction(device, intxCount, msiX, new VirtioPciFunctionOptions { MsiXVectorCount = options.MsiX ? vectors : null }, logger)
            {
                InterruptLine = (byte)gsi,
            };
            resample = intx.WatchResample(ioThread, () => function.IsIntxAsserted);
            bars.Place(function);
            hole.Add(function);
            int slot = index + 1;
            bridge.Attach(slot, new VirtioFunctionConfig(function));

            KvmIoEventFdBinding? doorbells = null;
            HostNotifierController? controller = null;
            if (options.IoEventFd && function.TryGetNotifyAddress(0, out ulong notify))
            {
                doorbells = KvmIoEventFdBinding.ForVirtioPci(vm, notify, function.NotifyOffMultiplier);
                controller = new HostNotifierController(device, doorbells, [ioThread], logger);
                // A kick that reaches user space (its queue's ioeventfd refused at a moved BAR) still goes to the I/O thread.
                function.QueueNotifyHandler = doorbells.TryForward;
            }

            function.TryGetBarAddress(VirtioPciFunction.CapabilityBar, out ulong bar0);
            string msiXText = options.MsiX ? $"MSI-X {vectors} vectors" : "no MSI-X (INTx only)";
            Log.PciDeviceWired(logger, name, slot, bar0, gsi, msiXText,
                doorbells is null ? "MMIO exit" : $"ioeventfd at 0x{doorbells.Address:x} stride {doorbells.Stride}");
            return new PciDeviceSlot(index, name, device, ioThread, function, intx, intxCount, resample, msiX, doorbells, controller, owned, logger);
        }
        catch
        {
            resample?.Dispose();
            msiX?.Dispose();
            intx?.Dispose();
            ioThread?.Dispose();
            owned?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The guest moved BAR 0 or turned Memory Space Enable off or on (a driver sizing its BARs does both):
    /// the doorbells' ioeventfds leave while BAR 0 does not decode and come back, at its new address,
    /// when it does. Called on the vCPU thread that wrote the configuration space.
    /// </summary>
    private void OnBarsChanged(VirtioPciFunction function)
    {
        if (_doorbells is null)
        {
            return;
        }

        if (!function.TryGetNotifyAddress(0, out ulong notify))
        {
            if (!_unbound)
            {
                _doorbells.Unbind();
                _unbound = true;
                Log.DoorbellsUnbound(Logger, Name, _doorbells.Address);
            }

            return;
        }

        ulong from = _doorbells.Address;
        if (notify == from && !_unbound)
        {
            return;
        }

        bool bound = _doorbells.Rebind(notify, out string? refusal);
        _unbound = false;
        string outcome = bound ? "every queue's ioeventfd is there" : "kicks exit to the VMM and are forwarded: " + refusal;
        if (notify == from)
        {
            Log.DoorbellsRebound(Logger, Name, notify, outcome);
        }
        else
        {
            Log.DoorbellsMoved(Logger, Name, from, notify, outcome);
        }
    }

    protected override void CloseInterrupts()
    {
        _function.BarsChanged -= OnBarsChanged;
        if (_msiX is not null)
        {
            var fired = new StringBuilder();
            for (ushort v = 0; v < _msiX.Count; v++)
            {
                long count = _msiX.Delivered(v);
                if (count > 0)
                {
                    fired.Append(CultureInfo.InvariantCulture, $" {v}={count}");
                }
            }

            Log.MsiXFired(Logger, Name, _msiX.Count, fired.Length == 0 ? " none" : fired.ToString(), _msiX.DroppedRaises);
        }

        _resample.Dispose();
        Log.IntxCount(Logger, Name, _intxCount.Count, _intx.Reassertions);
        _msiX?.Dispose();
        _intx.Dispose();
    }
}
