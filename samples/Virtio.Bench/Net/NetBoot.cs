using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;

namespace Virtio.Bench.Net;

/// <summary>
/// One boot of the stock Linux guest (samples/linux-guest) in QEMU under TCG with one virtio-net
/// device, on the same command line as the integration tests (<c>-M microvm</c>, 2 vCPUs, 512 MiB
/// of shared memfd memory, virtio-mmio), running the guest's <c>net</c> test: pings, then iperf3 TCP
/// guest to host and host to guest against a server in the namespace. Everything of the boot (tap,
/// peer address, iperf3 server, QEMU, our daemon) runs inside <see cref="NetNamespaceScope"/>.
/// </summary>
internal static class NetBoot
{
    /// <summary>The tap each boot's back end creates in the namespace.</summary>
    public const string Tap = "vtap0";

    private const string PeerAddress = "10.99.0.1/24";
    private const string PeerIp = "10.99.0.1";
    private const string GuestAddress = "10.99.0.2/24";
    private const string GuestMac = "52:54:00:99:00:02";

    private static readonly TimeSpan s_startLimit = TimeSpan.FromSeconds(60);

    /// <summary>Boots once against <paramref name="backEnd"/> and returns what the guest measured.</summary>
    /// <exception cref="IOException">The guest did not pass, or a result is missing; the message names the logs.</exception>
    /// <exception cref="TimeoutException">A bound was hit; everything started has been killed.</exception>
    public static NetBootResult Run(NetBackEnd backEnd, NetCompareOptions options, NetNamespaceScope ns, string name, IReadOnlyList<string> iperf3)
    {
        string work = Path.Combine(options.WorkDirectory, name);
        Directory.CreateDirectory(work);
        var console = new GuestConsole();
        ChildRun? daemon = null;
        try
        {
            using ChildRun server = ChildRun.Start([.. ns.Exec, .. iperf3, "-s"], Path.Combine(work, "iperf3-server.log"));
            string[] netdev;
            if (backEnd == NetBackEnd.Ours)
            {
                string socket = Path.Combine(work, "vhost-net.sock");
                daemon = ChildRun.Start([.. ns.Exec, "dotnet", options.DaemonDll, "--socket", socket, "--net", "tap=" + Tap], Path.Combine(work, "daemon.log"));
                WaitForSocket(socket, daemon);
                console.BackEndPid = daemon.ProcessId;
                netdev = ["-chardev", $"socket,id=c1,path={socket}", "-netdev", "vhost-user,id=n0,chardev=c1"];
            }
            else
            {
                netdev = ["-netdev", $"tap,id=n0,ifname={Tap},script=no,downscript=no"];
            }

            string consoleLog = Path.Combine(work, "console.log");
            using ChildRun qemu = ChildRun.Start([.. ns.Exec, .. QemuCommand(options, netdev)], consoleLog, console.OnLine);
            console.QemuPid = qemu.ProcessId;
            using (var cancel = new CancellationTokenSource(s_startLimit))
            {
                ns.ConfigureWhenPresent(Tap, PeerAddress, s_startLimit, cancel.Token);
            }

            int rc = qemu.WaitForExit(TimeSpan.FromSeconds(options.BootTimeoutSeconds));
            return Collect(backEnd, console, rc, consoleLog, options);
        }
        finally
        {
            daemon?.Dispose();
            ns.WaitGone(Tap, TimeSpan.FromSeconds(30));
        }
    }

    private static NetBootResult Collect(NetBackEnd backEnd, GuestConsole console, int rc, string consoleLog, NetCompareOptions options)
    {
        if (!console.Passed)
        {
            throw new IOException($"{backEnd}: the guest did not pass (QEMU exit {rc}); console {consoleLog}:\n{console.Summary}");
        }

        if (!console.TryGetResult("net-ping", out Dictionary<string, string>? ping) || !ping.TryGetValue("rtts", out string? rtts))
        {
            throw new IOException($"{backEnd}: the guest printed no rtts= on its net-ping result: the image predates vt_ping_count; rebuild it with samples/linux-guest/build-guest.sh {options.GuestDirectory}");
        }

        double[] times = rtts.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(t => double.Parse(t, NumberStyles.Float, CultureInfo.InvariantCulture)).ToArray();
        if (times.Length < 2)
        {
            throw new IOException($"{backEnd}: {times.Length} ping replies; console {consoleLog}");
        }

        return new NetBootResult(
            backEnd,
            Rate(console, "net-iperf3-tcp-send", consoleLog),
            Rate(console, "net-iperf3-tcp-recv", consoleLog),
            times[1..], // the first waited for ARP
            console.BackEndCpuSeconds,
            console.QemuCpuSeconds,
            consoleLog);
    }

    private static double Rate(GuestConsole console, string name, string consoleLog)
    {
        if (!console.TryGetResult(name, out Dictionary<string, string>? fields) || !fields.TryGetValue("rate", out string? rate)
            || GuestConsole.ParseGbps(rate) is var gbps && double.IsNaN(gbps))
        {
            throw new IOException($"no readable {name} rate in {consoleLog}");
        }

        return gbps;
    }

    private static void WaitForSocket(string socket, ChildRun daemon)
    {
        long deadline = Environment.TickCount64 + (long)s_startLimit.TotalMilliseconds;
        while (!File.Exists(socket))
        {
            if (daemon.HasExited || Environment.TickCount64 > deadline)
            {
                throw new IOException($"our daemon did not listen on {socket} (log {daemon.LogPath})");
            }

            Thread.Sleep(50);
        }
    }

    private static List<string> QemuCommand(NetCompareOptions options, string[] netdev)
    {
        string append = string.Join(' ',
            "console=ttyS0", "quiet",
            // samples/linux-guest/run-blk.sh explains both: PIT calibration hangs under load without
            // tsc_early_khz, and qemu64 TSCs are otherwise taken as unsynchronized.
            $"tsc_early_khz={TscKhz()}", "tsc=reliable",
            "vtest=net", $"vt_ip={GuestAddress}", $"vt_peer={PeerIp}",
            string.Create(CultureInfo.InvariantCulture, $"vt_iperf_time={options.IperfSeconds}"),
            string.Create(CultureInfo.InvariantCulture, $"vt_ping_count={options.Pings + 1}"),
            string.Create(CultureInfo.InvariantCulture, $"vt_ping_interval={options.PingInterval}"));
        List<string> command =
        [
            "qemu-system-x86_64",
            "-M", "microvm,accel=tcg,acpi=on,memory-backend=mem",
            "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
            "-m", "512M", "-smp", "2", "-nographic", "-no-reboot",
            "-global", "virtio-mmio.force-legacy=false",
            "-kernel", Path.Combine(options.GuestDirectory, "vmlinuz"),
            "-initrd", Path.Combine(options.GuestDirectory, "initrd.cpio.gz"),
            "-append", append,
            .. netdev,
            "-device", $"virtio-net-device,netdev=n0,mac={GuestMac}",
        ];
        return command;
    }

    private static long TscKhz()
    {
        foreach (string line in File.ReadLines("/proc/cpuinfo"))
        {
            if (line.StartsWith("cpu MHz", StringComparison.Ordinal))
            {
                return (long)(double.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..], CultureInfo.InvariantCulture) * 1000);
            }
        }

        return 0;
    }
}
