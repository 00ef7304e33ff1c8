using System;
using System.CommandLine;
using System.IO;

namespace Virtio.Bench.Net;

/// <summary>The <c>net-compare</c> subcommand: its options and their parsing.</summary>
internal static class NetCompareCommand
{
    /// <summary>Where the integration tests (GuestImage.cs) have build-guest.sh put the guest.</summary>
    private static readonly string s_defaultGuest = Path.Combine(Path.GetTempPath(), "virtio-linux-guest", "image");

    public static Command Create()
    {
        var rounds = new Option<int>("--rounds") { Description = "Rounds; each boots the guest once per back end (which goes first alternates); medians are reported.", DefaultValueFactory = _ => 3 };
        var seconds = new Option<int>("--iperf-seconds") { Description = "iperf3 TCP seconds per direction (guest to host, then host to guest).", DefaultValueFactory = _ => 5 };
        var pings = new Option<int>("--pings") { Description = "Pings measured per boot, guest to the namespace's address (one more goes first, to resolve ARP, and is left out).", DefaultValueFactory = _ => 20 };
        var interval = new Option<double>("--ping-interval") { Description = "Seconds between pings (busybox ping -i).", DefaultValueFactory = _ => 0.2 };
        var guest = new Option<string>("--guest") { Description = "Directory with vmlinuz and initrd.cpio.gz from samples/linux-guest/build-guest.sh.", DefaultValueFactory = _ => s_defaultGuest };
        var daemonDll = new Option<string?>("--daemon-dll") { Description = "Virtio.VhostUserDaemon.dll (default: next to this bench's build output, samples/Virtio.VhostUserDaemon/bin/CONFIG/TFM/)." };
        var work = new Option<string?>("--workdir") { Description = "Where each boot's console, daemon and iperf3 logs go (kept; default a new directory under /tmp)." };
        var timeout = new Option<int>("--boot-timeout") { Description = "Seconds one boot may take from QEMU's start to its exit before everything is killed.", DefaultValueFactory = _ => 300 };
        var command = new Command(
            "net-compare",
            "As root: boot the stock Linux guest (QEMU, TCG) once with vhost-user-net to our daemon on a tap and once with QEMU's own -netdev tap per round, measure iperf3 TCP both ways and ping latency against a network namespace this command creates (and deletes), and print a Markdown table of medians with ours/QEMU ratios and each process's CPU time. Every boot is bounded; children are killed on exit.")
        {
            rounds, seconds, pings, interval, guest, daemonDll, work, timeout,
        };
        command.SetAction(r =>
        {
            int roundCount = r.GetValue(rounds);
            int iperfSeconds = r.GetValue(seconds);
            int pingCount = r.GetValue(pings);
            double pingInterval = r.GetValue(interval);
            int bootTimeout = r.GetValue(timeout);
            string? error = roundCount is < 1 or > 20 ? "--rounds must be 1 to 20."
                : iperfSeconds is < 1 or > 60 ? "--iperf-seconds must be 1 to 60."
                : pingCount is < 2 or > 1000 ? "--pings must be 2 to 1000."
                : pingInterval is < 0.01 or > 10 ? "--ping-interval must be 0.01 to 10 s."
                : bootTimeout is < 30 or > 3600 ? "--boot-timeout must be 30 to 3600 s."
                : null;
            if (error is not null)
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            // A fresh directory per run, unless given; NetCompare creates it once the requirements hold.
            string workDirectory = r.GetValue(work) ?? Path.Combine(Path.GetTempPath(), $"virtio-net-compare-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}");
            var options = new NetCompareOptions(roundCount, iperfSeconds, pingCount, pingInterval, Path.GetFullPath(r.GetValue(guest)!),
                Path.GetFullPath(r.GetValue(daemonDll) ?? DaemonDll.Default()), Path.GetFullPath(workDirectory), bootTimeout);
            try
            {
                return NetCompare.Run(options, Console.Out, Console.Error);
            }
            catch (Exception e) when (e is IOException or TimeoutException or System.ComponentModel.Win32Exception)
            {
                Console.Error.WriteLine($"net-compare: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
