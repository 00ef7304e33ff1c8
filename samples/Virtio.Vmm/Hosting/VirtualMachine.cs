using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Threading;
using Virtio.Kvm;
using Virtio.Kvm.Bus;
using Virtio.Net;
using Virtio.Net.Backends;
using Virtio.Samples;
using Virtio.Vmm.Boot;
using Virtio.Vmm.Devices;
using Virtio.Vmm.Pci;

namespace Virtio.Vmm.Hosting;

/// <summary>
/// Boots the guest once: RAM, the ELF, long mode, the boot info, the serial and exit ports, one
/// virtio-mmio transport per device or (<see cref="VmmTransport.Pci"/>) a PCI host bridge with one
/// virtio-pci function per device; runs the vCPU on the calling thread until the guest writes the
/// exit port (or Ctrl+C), then shuts everything down in order.
/// </summary>
internal sealed class VirtualMachine
{
    private readonly VmmOptions _options;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger _logger;
    private readonly Stream _console;
    private int _interrupted;

    public VirtualMachine(VmmOptions options, ILoggerFactory loggers, Stream console)
    {
        _options = options;
        _loggers = loggers;
        _console = console;
        _logger = loggers.CreateLogger("Virtio.Vmm");
    }

    /// <summary>Boots and runs the guest.</summary>
    /// <returns>The process exit code: the guest's value, or one of <see cref="VmmExitCode"/>.</returns>
    public int Run()
    {
        byte[] image;
        try
        {
            image = File.ReadAllBytes(_options.GuestPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Log.Fatal(_logger, $"cannot read the guest image {_options.GuestPath}: {e.Message}");
            return VmmExitCode.Failure;
        }

        ulong memorySize = (ulong)_options.MemoryMiB << 20;
        using GuestMemory memory = GuestMemory.CreateAnonymous(memorySize);
        ulong entry;
        try
        {
            entry = ElfLoader.Load(image, memory, memorySize);
        }
        catch (GuestImageException e)
        {
            Log.Fatal(_logger, $"refusing the guest image {_options.GuestPath}: {e.Message}");
            return VmmExitCode.Failure;
        }

        KvmSystem kvm;
        try
        {
            kvm = KvmSystem.Open();
        }
        catch (KvmException e)
        {
            Log.Fatal(_logger, $"cannot use KVM: {e.Message}");
            return VmmExitCode.Failure;
        }

        using (kvm)
        {
            try
            {
                return Boot(kvm, memory, memorySize, entry);
            }
            catch (Exception e) when (e is KvmException or IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
            {
                Log.Fatal(_logger, $"VMM error: {e.Message}");
                return VmmExitCode.Failure;
            }
        }
    }

    private int Boot(KvmSystem kvm, GuestMemory memory, ulong memorySize, ulong entry)
    {
        foreach (KvmCapability needed in (ReadOnlySpan<KvmCapability>)[KvmCapability.IrqChip, KvmCapability.IrqFd, KvmCapability.IoEventFd])
        {
            if (kvm.CheckExtension(needed) == 0)
            {
                throw new InvalidOperationException($"this KVM lacks {needed}");
            }
        }

        using KvmVm vm = kvm.CreateVm();
        vm.MapMemory(memory);
        vm.CreateIrqChip();
        using KvmVcpu vcpu = vm.CreateVcpu(0);
        vcpu.SetCpuid(kvm.GetSupportedCpuid());
        uint tscKhz = 0;
        try
        {
            tscKhz = vcpu.GetTscKhz();
        }
        catch (KvmException)
        {
            // Unknown frequency: the boot info says 0 and the guest calibrates or reports cycles.
        }

        var bus = new KvmBus();
        var serial = new SerialPort(_console);
        var exit = new ExitPort(vcpu);
        bus.Add(KvmIoSpace.Pio, SerialPort.Base, SerialPort.Length, serial);
        bus.Add(KvmIoSpace.Pio, ExitPort.Port, 4, exit);

        var slots = new List<DeviceSlot>();
        var namespaces = new List<NetworkNamespace>();
        try
        {
            KvmGsiRouting routing = RouteDeviceInterrupts(vm, _options.Disks.Count + _options.Nets.Count);
            SlotFactory addSlot = _options.Transport == VmmTransport.Pci
                ? PciBus(vm, bus, routing)
                : (index, name, create, owned) => MmioDeviceSlot.Create(index, name, vm, bus, _options, create, owned, _loggers);
            AddDevices(memory, slots, namespaces, addSlot);
            var table = new List<BootDevice>();
            foreach (DeviceSlot slot in slots)
            {
                if (slot is MmioDeviceSlot mmio)
                {
                    table.Add(new BootDevice(mmio.MmioBase, mmio.Gsi, mmio.Device.DeviceId));
                }
            }

            string commandLine = ("workload=" + _options.Workload + " " + _options.GuestArguments).Trim();
            uint flags = BootInfo.FlagInterrupts | (_options.IoEventFd ? BootInfo.FlagIoEventFd : 0) | (_options.IrqLevel ? BootInfo.FlagLevelInterrupts : 0)
                | (_options.Transport == VmmTransport.Pci ? BootInfo.FlagPci : 0);
            BootInfo.Write(memory, memorySize, tscKhz, flags, commandLine, table);
            LongModeSetup.Apply(vcpu, memory, entry, BootInfo.Address);
            Log.Booting(_logger, _options.GuestPath, entry, (ulong)_options.MemoryMiB, slots.Count, tscKhz, commandLine);
            return RunVcpu(vcpu, bus, serial, exit);
        }
        finally
        {
            serial.Flush();
            for (int i = slots.Count - 1; i >= 0; i--)
            {
                slots[i].Dispose();
            }

            foreach (NetworkNamespace ns in namespaces)
            {
                ns.Dispose();
            }
        }
    }

    /// <summary>
    /// Installs the GSI routing table through its one owner: KVM's standard routes, except that each
    /// device's GSI reaches only its IOAPIC pin (the boot contract: IOAPIC pin), not also the 8259 pin
    /// of the same number, which the guest keeps masked. PCI functions add their MSI routes to it.
    /// </summary>
    private static KvmGsiRouting RouteDeviceInterrupts(KvmVm vm, int deviceCount)
    {
        var deviceGsis = new HashSet<uint>();
        for (int i = 0; i < deviceCount; i++)
        {
            deviceGsis.Add(DeviceSlot.GsiOf(i));
        }

        var routes = new List<KvmIrqRoute>();
        foreach (KvmIrqRoute route in KvmIrqRoute.StandardIrqChipRoutes())
        {
            if (route.Chip == KvmIrqChip.IoApic || !deviceGsis.Contains(route.Gsi))
            {
                routes.Add(route);
            }
        }

        return new KvmGsiRouting(vm, routes);
    }

    /// <summary>PCI bus 0: the host bridge on the configuration ports, the MMIO hole on the bus, and a way to add a function.</summary>
    private SlotFactory PciBus(KvmVm vm, KvmBus bus, KvmGsiRouting routing)
    {
        var bridge = new PciHostBridge(_logger);
        var hole = new PciMmioHole();
        var bars = new PciBarAllocator();
        bus.Add(KvmIoSpace.Pio, PciHostBridge.AddressPort, PciHostBridge.Length, bridge);
        bus.Add(KvmIoSpace.Mmio, PciMmioHole.Base, PciMmioHole.End - PciMmioHole.Base, hole);
        Log.PciBus(_logger, PciMmioHole.Base, PciMmioHole.End);
        return (index, name, create, owned) => PciDeviceSlot.Create(index, name, vm, routing, bridge, bars, hole, _options, create, owned, _loggers);
    }

    private void AddDevices(GuestMemory memory, List<DeviceSlot> slots, List<NetworkNamespace> namespaces, SlotFactory addSlot)
    {
        for (int d = 0; d < _options.Disks.Count; d++)
        {
            DiskSpec disk = _options.Disks[d];
            string name = "disk" + d;
            ILogger diskLogger = _loggers.CreateLogger("Virtio.Vmm." + name);
            var backend = new LateBoundDisposable();
            slots.Add(addSlot(
                slots.Count,
                name,
                io =>
                {
                    // io_uring submits and reaps on the disk's own I/O thread: no other thread per request.
                    disk.Disk.ApplyPolling([io]);
                    IBlockBackend file = disk.Disk.Open([io], diskLogger);
                    backend.Target = file as IDisposable;
                    string engine = DiskKeys.EngineOf(file);
                    Log.DiskOpened(diskLogger, name, disk.Disk.Path ?? "null", engine);
                    return new BlockDevice(memory, file, new BlockDeviceOptions { QueueCount = disk.Queues, ReadOnly = disk.Disk.File.ReadOnly, Serial = disk.Serial, IoThreads = [io], OfferPackedRing = _options.PackedRing }, diskLogger);
                },
                backend));
        }

        for (int n = 0; n < _options.Nets.Count; n++)
        {
            NetSpec net = _options.Nets[n];
            TapNetBackend tap = TapNetBackend.Create(net.Tap);
            try
            {
                if (net.Namespace is not null)
                {
                    namespaces.Add(NetworkNamespace.Create(net.Namespace, tap.InterfaceName));
                }
            }
            catch
            {
                tap.Dispose();
                throw;
            }

            slots.Add(addSlot(
                slots.Count,
                "net" + n,
                io => new NetDevice(memory, [tap], new NetDeviceOptions { MacAddress = net.Mac, IoThreads = [io] }, _loggers.CreateLogger("Virtio.Vmm.net" + n)),
                tap));
        }
    }

    private int RunVcpu(KvmVcpu vcpu, KvmBus bus, SerialPort serial, ExitPort exit)
    {
        void Stop()
        {
            Interlocked.Exchange(ref _interrupted, 1);
            try
            {
                vcpu.RequestPause();
            }
            catch (ObjectDisposedException)
            {
                // Already shutting down.
            }
        }

        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            Stop();
        };
        Console.CancelKeyPress += onCancel;
        using PosixSignalRegistration onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            Stop();
        });
        var clock = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                KvmVcpuStopReason reason = vcpu.Run(bus);
                if (exit.Value is uint value)
                {
                    serial.Flush();
                    Log.GuestExited(_logger, value, clock.Elapsed.TotalSeconds, vcpu.MmioExits, vcpu.PioExits);
                    return value > 255 ? VmmExitCode.GuestValueTooLarge : (int)value;
                }

                if (Volatile.Read(ref _interrupted) != 0)
                {
                    serial.Flush();
                    Log.Interrupted(_logger);
                    return VmmExitCode.Interrupted;
                }

                if (reason != KvmVcpuStopReason.Paused)
                {
                    serial.Flush();
                    Log.GuestStopped(_logger, reason == KvmVcpuStopReason.Shutdown ? "shutdown (a triple fault)" : reason.ToString(), vcpu.GetRegisters().Rip);
                    return VmmExitCode.Failure;
                }
            }
        }
        catch (KvmVcpuFailureException e)
        {
            serial.Flush();
            Log.GuestFailed(_logger, e.Message);
            return VmmExitCode.Failure;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
