using System;
using System.CommandLine;
using System.Runtime.InteropServices;
using System.Threading;

namespace Virtio.Bench.Soak;

/// <summary>The <c>soak</c> subcommand: its options and their checks. eng/soak.sh starts the daemons and the namespace around it.</summary>
internal static class SoakCommand
{
    public static Command Create()
    {
        var blkSocket = new Option<string>("--blk-socket") { Description = "Our daemon's vhost-user-blk socket (a disk of at least --size-mib).", Required = true };
        var netSocket = new Option<string?>("--net-socket") { Description = "Our daemon's vhost-user-net socket, its tap up as 10.0.2.1/24 with 10.0.2.15 a permanent neighbour at 52:54:00:50:ac:0f (eng/soak.sh sets that up in a namespace); none: blk only." };
        var minutes = new Option<double>("--minutes") { Description = "How long the load runs (then the blk verify pass reads every block back).", DefaultValueFactory = _ => 30 };
        var sample = new Option<double>("--sample-seconds") { Description = "Seconds between samples of each daemon's fd count (/proc/PID/fd), VmRSS and mappings: a progress line and a CSV row each.", DefaultValueFactory = _ => 10 };
        var warmUp = new Option<double>("--warm-up") { Description = "Leading fraction of the run left out of the slopes (least squares over the samples after it).", DefaultValueFactory = _ => 0.2 };
        var reconnectMin = new Option<double>("--reconnect-min") { Description = "Shortest connection, seconds (each connection's length is uniform in [min, max]).", DefaultValueFactory = _ => 2 };
        var reconnectMax = new Option<double>("--reconnect-max") { Description = "Longest connection, seconds.", DefaultValueFactory = _ => 6 };
        var abrupt = new Option<int>("--abrupt-percent") { Description = "Share of disconnects that close the socket with requests in flight; the rest drain and GET_VRING_BASE first.", DefaultValueFactory = _ => 50 };
        var memTable = new Option<double>("--memtable-seconds") { Description = "Mean seconds between SET_MEM_TABLE changes on a running connection (same pages, fresh fds, new host addresses; requests in flight); 0: never.", DefaultValueFactory = _ => 7 };
        var qd = new Option<int>("--qd") { Description = "Blk requests in flight at most (1 to 64).", DefaultValueFactory = _ => 8 };
        var iops = new Option<int>("--blk-iops") { Description = "Blk requests per second at most (1 to 100000), plus a burst of at most --qd at each abrupt disconnect.", DefaultValueFactory = _ => 2000 };
        var writes = new Option<int>("--write-percent") { Description = "Share of blk requests that are (stamped, recorded) writes; the rest are checked reads.", DefaultValueFactory = _ => 50 };
        var size = new Option<int>("--size-mib") { Description = "Blk region used, MiB from the start of the device (every block of it is read back at the end).", DefaultValueFactory = _ => 64 };
        var pps = new Option<int>("--net-pps") { Description = "Net frames sent per second at most (1 to 20000): ARP requests (1/s, 10/s until the peer answered) and ICMP echo requests of 32 to 1431 data bytes, plus a burst of at most 16 at each abrupt disconnect.", DefaultValueFactory = _ => 500 };
        var csv = new Option<string>("--csv") { Description = "Where the samples go (overwritten).", DefaultValueFactory = _ => "soak.csv" };
        var maxFd = new Option<double>("--max-fd-slope") { Description = "Fail when a daemon's fd count grows faster than this per minute after the warm-up.", DefaultValueFactory = _ => 0.5 };
        var maxRss = new Option<double>("--max-rss-slope") { Description = "Fail when a daemon's VmRSS grows faster than this, KiB per minute after the warm-up.", DefaultValueFactory = _ => 256 };
        var seed = new Option<int>("--seed") { Description = "Seed of the connection lengths, disconnect kinds and blocks.", DefaultValueFactory = _ => 1 };
        var command = new Command(
            "soak",
            "Bounded soak against our running daemons: mixed blk reads and stamped writes and net ARP/ICMP traffic, reconnecting every few seconds (clean and abrupt disconnects, GET/SET_INFLIGHT_FD), memory-table changes under load, fd/RSS samples; at the end a verify pass reads every block back, then one 'soak: ...' line. Exit 1 on a lost acknowledged write, a corrupt read, a failed request, no net replies, or a slope above its threshold.")
        {
            blkSocket, netSocket, minutes, sample, warmUp, reconnectMin, reconnectMax, abrupt, memTable, qd, iops, writes, size, pps, csv, maxFd, maxRss, seed,
        };
        command.SetAction(r =>
        {
            var o = new SoakOptions(
                r.GetValue(blkSocket)!, r.GetValue(netSocket), r.GetValue(minutes), r.GetValue(sample), r.GetValue(warmUp),
                r.GetValue(reconnectMin), r.GetValue(reconnectMax), r.GetValue(abrupt), r.GetValue(memTable), r.GetValue(qd),
                r.GetValue(iops), r.GetValue(writes), r.GetValue(size), r.GetValue(pps), r.GetValue(csv)!, r.GetValue(maxFd), r.GetValue(maxRss), r.GetValue(seed));
            string? error = o.Minutes is <= 0 or > 24 * 60 ? "--minutes must be in (0, 1440]."
                : o.SampleSeconds is < 0.5 or > 600 ? "--sample-seconds must be 0.5 to 600."
                : o.WarmUpFraction is < 0 or >= 1 ? "--warm-up must be in [0, 1)."
                : o.ReconnectMinSeconds < 0.1 || o.ReconnectMaxSeconds < o.ReconnectMinSeconds || o.ReconnectMaxSeconds > 3600 ? "--reconnect-min must be at least 0.1 and at most --reconnect-max (at most 3600)."
                : o.AbruptPercent is < 0 or > 100 ? "--abrupt-percent must be 0 to 100."
                : o.MemTableSeconds is < 0 or > 3600 ? "--memtable-seconds must be 0 to 3600."
                : o.QueueDepth is < 1 or > 64 ? "--qd must be 1 to 64."
                : o.BlkIops is < 1 or > 100_000 ? "--blk-iops must be 1 to 100000."
                : o.WritePercent is < 0 or > 100 ? "--write-percent must be 0 to 100."
                : o.SizeMiB is < 1 or > 65536 ? "--size-mib must be 1 to 65536."
                : o.NetPps is < 1 or > 20_000 ? "--net-pps must be 1 to 20000."
                : null;
            if (error is not null)
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            using var interrupted = new CancellationTokenSource();
            // SIGINT (Ctrl+C) or SIGTERM (what eng/soak.sh forwards: a background job's SIGINT is
            // ignored) stops the load; the verify pass and the summary still run. Both bounded.
            Action<PosixSignalContext> onSignal = context =>
            {
                context.Cancel = true;
                Console.Error.WriteLine($"soak: {context.Signal}; verifying and summarising");
                interrupted.Cancel();
            };
            using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, onSignal);
            using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, onSignal);
            return Program.Guard(() => SoakRun.Run(o, interrupted.Token));
        });
        return command;
    }
}
