using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Globalization;
using System.IO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Virtio.Vmm.Bench;
using Virtio.Vmm.Hosting;

namespace Virtio.Vmm;

/// <summary>
/// The sample VMM's command line: <c>virtio-vmm [options]</c> boots the test guest on KVM;
/// <c>virtio-vmm bench doorbell</c> measures the notify paths.
/// </summary>
internal static class Program
{
    private const int DefaultDiskMiB = 8;

    public static int Main(string[] args)
    {
        var guest = new Option<string>("--guest")
        {
            Description = "The guest ELF (the boot contract is samples/guest/README.md)",
            HelpName = "PATH",
            DefaultValueFactory = _ => Path.Combine(AppContext.BaseDirectory, "guest.elf"),
        };
        var memory = new Option<int>("--memory")
        {
            Description = "Guest RAM in MiB",
            HelpName = "MiB",
            DefaultValueFactory = _ => 64,
        };
        memory.Validators.Add(r =>
        {
            int value = r.GetValueOrDefault<int>();
            if (value is < 2 or > 3072)
            {
                r.AddError("--memory must be 2 to 3072 MiB (RAM ends below the device windows at 0xD0000000).");
            }
        });
        var disk = new Option<string[]>("--disk")
        {
            Description = "A virtio-blk disk over an existing file (or null,size=N), repeatable; disks come first on the bus. Keys: " + DiskSpec.Help,
            HelpName = "path|null[,KEY...]",
            AllowMultipleArgumentsPerToken = false,
        };
        var net = new Option<string[]>("--net")
        {
            Description = "A virtio-net card over a tap interface the VMM creates or attaches to, repeatable; netns=NS makes namespace NS for it (tap at 10.0.2.1/24) and deletes it at exit",
            HelpName = "tap=NAME[,mac=52:54:00:12:34:56][,netns=NS]",
            AllowMultipleArgumentsPerToken = false,
        };
        var workload = new Option<string>("--workload")
        {
            Description = "The guest's workloads, comma-separated: default (blk-verify on every disk, then net-ping), blk-verify, blk-rand, blk-flush, blk-discard, irq-level, net-ping, doorbell (samples/guest/README.md)",
            DefaultValueFactory = _ => "default",
            HelpName = "NAME[,NAME...]",
        };
        var guestArgs = new Option<string>("--guest-args")
        {
            Description = "More key=value words for the guest's command line (for example \"count=20000 qd=32\")",
            HelpName = "WORDS",
            DefaultValueFactory = _ => string.Empty,
        };
        var noIoEventFd = new Option<bool>("--no-ioeventfd") { Description = "Every queue notify exits to the VMM and is served on the vCPU thread (no ioeventfd)" };
        var noIrqBatching = new Option<bool>("--no-irq-batching") { Description = "Signal the irqfd for every completion instead of once per burst" };
        var irqLevel = new Option<bool>("--irq-level") { Description = "Level-triggered device interrupt lines: irqfds with a resample fd, raised again after the guest's end of interrupt while the device's InterruptStatus is set (virtio-mmio; default: edge-triggered; the guest waits on interrupts with --guest-args completion=irq. PCI INTx lines are always level-triggered)" };
        var packed = new Option<bool>("--packed") { Description = "Every disk offers the packed virtqueue (VIRTIO_F_RING_PACKED, bit 34); the guest uses it when it negotiates the bit. Network devices still offer the split ring only (the packed ring is not validated for their receive chains)" };
        var transport = new Option<string>("--transport")
        {
            Description = "How the devices reach the guest: mmio (virtio-mmio windows at 0xD0000000, listed in the boot info) or pci (virtio-pci functions on PCI bus 0 behind a host bridge with configuration mechanism #1 at ports 0xCF8/0xCFC, BARs in the MMIO hole 0xE0000000-0xFEBFFFFF, MSI-X per queue; the guest enumerates the bus itself and, unless --guest-args says completion=, waits on interrupts: completion=irq)",
            HelpName = "mmio|pci",
            DefaultValueFactory = _ => "mmio",
        };
        transport.AcceptOnlyFromAmong("mmio", "pci");
        var noMsiX = new Option<bool>("--no-msix") { Description = "With --transport pci: the functions have no MSI-X capability, so the guest uses INTx, as a driver must for a device without MSI-X: a level-triggered IOAPIC line per function (its GSI in Interrupt Line), the ISR read to clear it, the line raised again after an end of interrupt while the ISR is set" };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log device and notifier events (Debug level) to stderr" };

        var root = new RootCommand(
            "Boots the test guest on KVM with virtio-mmio (or, with --transport pci, virtio-pci) disks and network cards (ioeventfd for notifies, irqfd for interrupts). " +
            "The guest's serial port goes to stdout, logs to stderr, and the exit code is the guest's result (0 = every check passed; " +
            $"{VmmExitCode.Failure} = the VMM or the guest failed; {VmmExitCode.Interrupted} = Ctrl+C). " +
            $"With neither --disk nor --net it makes a fresh {DefaultDiskMiB} MiB temporary disk (deleted at exit) and, as root with /dev/net/tun, " +
            $"a tap in a private network namespace at {NetworkNamespace.HostAddress}/24 for the guest ({NetworkNamespace.GuestAddress}) to ping.")
        {
            guest, memory, disk, net, workload, guestArgs, noIoEventFd, noIrqBatching, irqLevel, packed, transport, noMsiX, verbose,
        };
        root.Validators.Add(r =>
        {
            if (r.GetValue(noMsiX) && r.GetValue(transport) != "pci")
            {
                r.AddError("--no-msix needs --transport pci (virtio-mmio has no MSI-X).");
            }
        });
        root.SetAction(result => RunGuest(
            result.GetValue(guest)!,
            result.GetValue(memory),
            result.GetValue(disk) ?? [],
            result.GetValue(net) ?? [],
            result.GetValue(workload) ?? "default",
            result.GetValue(guestArgs) ?? string.Empty,
            !result.GetValue(noIoEventFd),
            !result.GetValue(noIrqBatching),
            result.GetValue(irqLevel),
            result.GetValue(packed),
            result.GetValue(transport) == "pci" ? VmmTransport.Pci : VmmTransport.Mmio,
            !result.GetValue(noMsiX),
            result.GetValue(verbose)));

        var count = new Option<int>("--count")
        {
            Description = "Notifies per row",
            HelpName = "N",
            DefaultValueFactory = _ => 200_000,
        };
        count.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--count must be at least 1.");
            }
        });
        var doorbell = new Command("doorbell", "Seed 003's table on this host: a real-mode guest rings a doorbell N times per row; vCPU time per notify for an MMIO write exiting to user space, the same write on an ioeventfd, and PIO OUT both ways") { count };
        doorbell.SetAction(result =>
        {
            DoorbellMeasurement.Run(result.GetValue(count));
            return 0;
        });
        root.Subcommands.Add(new Command("bench", "Measurements on this host's KVM") { doorbell });
        return root.Parse(args).Invoke();
    }

    private static int RunGuest(string guestPath, int memoryMiB, string[] diskTexts, string[] netTexts, string workload, string guestArgs, bool ioEventFd, bool irqBatching, bool irqLevel, bool packed, VmmTransport transport, bool msiX, bool verbose)
    {
        using ILoggerFactory loggers = LoggerFactory.Create(builder => builder
            .SetMinimumLevel(verbose ? LogLevel.Debug : LogLevel.Information)
            .AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            })
            .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
        ILogger logger = loggers.CreateLogger("Virtio.Vmm");

        var disks = new List<DiskSpec>();
        foreach (string text in diskTexts)
        {
            DiskSpec? spec = DiskSpec.TryParse(text, out string? error);
            if (spec is null)
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            disks.Add(spec);
        }

        var nets = new List<NetSpec>();
        foreach (string text in netTexts)
        {
            NetSpec? spec = NetSpec.TryParse(text, out string? error);
            if (spec is null)
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            nets.Add(spec);
        }

        string? temporaryDisk = null;
        try
        {
            if (disks.Count == 0 && nets.Count == 0)
            {
                temporaryDisk = Path.Combine(Path.GetTempPath(), string.Create(CultureInfo.InvariantCulture, $"virtio-vmm-{Environment.ProcessId}.img"));
                using (FileStream file = File.Create(temporaryDisk))
                {
                    file.SetLength(DefaultDiskMiB << 20);
                }

                disks.Add(DiskSpec.ForFile(temporaryDisk, queues: 1, serial: "virtio-vmm-temp"));
                string? why = NetworkNamespace.WhyUnavailable();
                if (why is null)
                {
                    string suffix = Environment.ProcessId.ToString("x", CultureInfo.InvariantCulture);
                    nets.Add(new NetSpec("vvmm" + suffix, NetSpec.DefaultMac, "virtio-vmm-" + suffix));
                }
                else
                {
                    Log.Caution(logger, $"No network device: {why} (a tap in a private namespace needs root, /dev/net/tun and iproute2); running the disk workload only.");
                }
            }

            if (nets.Count > 0 && !guestArgs.Contains("ip=", StringComparison.Ordinal))
            {
                guestArgs = $"ip={NetworkNamespace.GuestAddress} peer={NetworkNamespace.HostAddress} {guestArgs}";
            }

            if (transport == VmmTransport.Pci && !guestArgs.Contains("completion=", StringComparison.Ordinal))
            {
                // On PCI the guest takes interrupts unless told otherwise, so the MSI-X vectors or INTx line are used.
                guestArgs = ("completion=irq " + guestArgs).Trim();
            }

            var options = new VmmOptions(guestPath, memoryMiB, disks, nets, workload, guestArgs, ioEventFd, irqBatching, irqLevel, packed, transport, msiX);
            using Stream stdout = Console.OpenStandardOutput();
            return new VirtualMachine(options, loggers, stdout).Run();
        }
        finally
        {
            if (temporaryDisk is not null)
            {
                File.Delete(temporaryDisk);
            }
        }
    }
}
