using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;

namespace Virtio.Bench.Net;

/// <summary>
/// <c>net-compare</c>: in one run, <see cref="NetCompareOptions.Rounds"/> rounds, each booting the
/// stock Linux guest once with vhost-user-net to our daemon on a tap and once with QEMU's own
/// <c>-netdev tap</c> (which back end goes first alternates), then a Markdown table of the medians
/// with ours/QEMU ratios.
/// </summary>
internal static class NetCompare
{
    public static int Run(NetCompareOptions options, TextWriter output, TextWriter progress)
    {
        if (MissingRequirement(options) is string missing)
        {
            progress.WriteLine($"net-compare: {missing}");
            return 2;
        }

        Directory.CreateDirectory(options.WorkDirectory);
        progress.WriteLine($"net-compare: logs in {options.WorkDirectory}");
        IReadOnlyList<string> iperf3 = Iperf3(options.GuestDirectory);
        var results = new List<NetBootResult>();
        using (NetNamespaceScope ns = NetNamespaceScope.Create(options.WorkDirectory))
        {
            if (ns.Has(NetBoot.Tap))
            {
                progress.WriteLine($"net-compare: {NetBoot.Tap} already exists in netns {ns.Name}");
                return 2;
            }

            for (int round = 1; round <= options.Rounds; round++)
            {
                // Alternate which back end boots first, so neither always meets the same load or a cold cache.
                NetBackEnd[] order = round % 2 == 1 ? [NetBackEnd.Ours, NetBackEnd.QemuTap] : [NetBackEnd.QemuTap, NetBackEnd.Ours];
                foreach (NetBackEnd backEnd in order)
                {
                    string name = string.Create(CultureInfo.InvariantCulture, $"round{round}-{Name(backEnd)}");
                    NetBootResult result = NetBoot.Run(backEnd, options, ns, name, iperf3);
                    results.Add(result);
                    progress.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"round {round}/{options.Rounds} {Name(backEnd)}: send {result.SendGbps:F2} Gbit/s, recv {result.ReceiveGbps:F2} Gbit/s, ping avg {result.PingAverage:F3} ms p50 {result.PingMedian:F3} ms, CPU s daemon {Cell(result.BackEndCpuSeconds, "F2")} QEMU {result.QemuCpuSeconds:F2} (load {LoadAverage()})"));
                }
            }
        }

        Print(options, results, output);
        output.WriteLine();
        output.WriteLine($"Logs (console, daemon, iperf3 server, ip) in {options.WorkDirectory}.");
        return 0;
    }

    private static void Print(NetCompareOptions options, List<NetBootResult> results, TextWriter output)
    {
        NetBootResult[] ours = results.Where(r => r.BackEnd == NetBackEnd.Ours).ToArray();
        NetBootResult[] qemu = results.Where(r => r.BackEnd == NetBackEnd.QemuTap).ToArray();
        CultureInfo c = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(c,
            $"{options.Rounds} rounds (ours first in odd rounds); per boot iperf3 TCP {options.IperfSeconds} s each way and {options.Pings} pings {options.PingInterval} s apart (after one more that waits for ARP); medians of the rounds."));
        output.WriteLine();
        output.WriteLine("| | ours: vhost-user-net, our daemon on a tap | QEMU's own -netdev tap | ours/QEMU |");
        output.WriteLine("|---|---|---|---|");
        Row(output, "iperf3 guest -> host, Gbit/s", ours, qemu, r => r.SendGbps, "F2");
        Row(output, "iperf3 host -> guest, Gbit/s", ours, qemu, r => r.ReceiveGbps, "F2");
        Row(output, "ping avg, ms", ours, qemu, r => r.PingAverage, "F3");
        Row(output, "ping p50, ms", ours, qemu, r => r.PingMedian, "F3");
        Row(output, "CPU s in the two iperf3 runs: back-end process (our daemon)", ours, qemu, r => r.BackEndCpuSeconds, "F2");
        Row(output, "CPU s in the two iperf3 runs: QEMU process", ours, qemu, r => r.QemuCpuSeconds, "F2");
        Row(output, "CPU s in the two iperf3 runs: daemon + QEMU", ours, qemu, r => r.TotalCpuSeconds, "F2");
        Row(output, "daemon + QEMU CPU s per 10 Gbit moved", ours, qemu, r => 10 * r.TotalCpuSeconds / ((r.SendGbps + r.ReceiveGbps) * options.IperfSeconds), "F2");
        output.WriteLine();
        output.WriteLine("CPU is utime+stime from /proc/PID/stat between the guest's last ping and the end of its second iperf3 run.");
        output.WriteLine("QEMU's figure includes the TCG emulation of the guest (most of it); with -netdev tap it also includes");
        output.WriteLine("QEMU's virtio-net back end, which with vhost-user runs in our daemon instead: compare the daemon + QEMU row.");
        output.WriteLine();
        output.WriteLine("| boot | guest -> host Gbit/s | host -> guest Gbit/s | ping avg ms | ping p50 ms | daemon CPU s | QEMU CPU s |");
        output.WriteLine("|---|---|---|---|---|---|---|");
        int index = 0;
        foreach (NetBootResult r in results)
        {
            output.WriteLine(string.Create(c,
                $"| {(index++ / 2) + 1} {Name(r.BackEnd)} | {r.SendGbps:F2} | {r.ReceiveGbps:F2} | {r.PingAverage:F3} | {r.PingMedian:F3} | {Cell(r.BackEndCpuSeconds, "F2")} | {r.QemuCpuSeconds:F2} |"));
        }
    }

    private static void Row(TextWriter output, string label, NetBootResult[] ours, NetBootResult[] qemu, Func<NetBootResult, double> value, string format)
    {
        double o = Statistics.Median(ours.Select(value));
        double q = Statistics.Median(qemu.Select(value));
        string ratio = double.IsNaN(o) || double.IsNaN(q) || q == 0 ? "-" : (o / q).ToString("F2", CultureInfo.InvariantCulture);
        output.WriteLine($"| {label} | {Cell(o, format)} | {Cell(q, format)} | {ratio} |");
    }

    private static string Cell(double value, string format) => double.IsNaN(value) ? "-" : value.ToString(format, CultureInfo.InvariantCulture);

    private static string Name(NetBackEnd backEnd) => backEnd == NetBackEnd.Ours ? "ours" : "qemu-tap";

    /// <summary>The first thing this machine lacks for the run, said so the user can fix it; null when nothing.</summary>
    private static string? MissingRequirement(NetCompareOptions options)
    {
        if (!OperatingSystem.IsLinux())
        {
            return "needs Linux (network namespaces, taps, QEMU).";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "needs root: it creates a network namespace and taps in it.";
        }

        if (!File.Exists("/dev/net/tun"))
        {
            return "/dev/net/tun is missing: no tap can be created (modprobe tun, or run where the device exists).";
        }

        foreach (string tool in new[] { "qemu-system-x86_64", "ip", "dotnet" })
        {
            if (!OnPath(tool))
            {
                return $"{tool} is not on PATH (eng/install-deps.sh installs the host tools).";
            }
        }

        foreach (string file in new[] { "vmlinuz", "initrd.cpio.gz" })
        {
            if (!File.Exists(Path.Combine(options.GuestDirectory, file)))
            {
                return $"the guest image is not built: {Path.Combine(options.GuestDirectory, file)} is missing. Build it (as root) with samples/linux-guest/build-guest.sh {options.GuestDirectory}, or give --guest DIR.";
            }
        }

        if (!OnPath("iperf3") && !File.Exists(Path.Combine(options.GuestDirectory, "stage", "usr", "bin", "iperf3")))
        {
            return $"no iperf3 for the namespace's server: neither on PATH nor staged in {options.GuestDirectory}/stage (build-guest.sh stages it).";
        }

        if (!File.Exists(options.DaemonDll))
        {
            return $"our daemon is not at {options.DaemonDll}: build samples/Virtio.VhostUserDaemon (dotnet build -c Release) or give --daemon-dll.";
        }

        return null;
    }

    /// <summary>The host's iperf3, else the guest build's staged one through the staged loader.</summary>
    private static IReadOnlyList<string> Iperf3(string guestDirectory)
    {
        if (OnPath("iperf3"))
        {
            return ["iperf3"];
        }

        string stage = Path.Combine(guestDirectory, "stage");
        return
        [
            Path.Combine(stage, "lib64", "ld-linux-x86-64.so.2"), "--library-path",
            $"{stage}/lib/x86_64-linux-gnu:{stage}/usr/lib/x86_64-linux-gnu", Path.Combine(stage, "usr", "bin", "iperf3"),
        ];
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin")
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(directory => File.Exists(Path.Combine(directory, tool)));

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
    }
}
