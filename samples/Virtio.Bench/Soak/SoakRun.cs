using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;

namespace Virtio.Bench.Soak;

/// <summary>
/// The `soak` subcommand: runs <see cref="BlkSoak"/> and <see cref="NetSoak"/> on their own threads
/// until the deadline, samples both daemons' fds, RSS and mappings every
/// <see cref="SoakOptions.SampleSeconds"/> (a progress line and a CSV row each), then prints the
/// summary line and decides the exit status: 0 when no acknowledged write was lost, nothing was
/// corrupt or failed, the net peer answered, and no daemon's fd or RSS slope after the warm-up is
/// above its threshold; 1 otherwise.
/// </summary>
internal static class SoakRun
{
    private const string CsvHeader = "elapsed_s,blk_fds,blk_rss_kib,blk_maps,net_fds,net_rss_kib,net_maps,reconnects,abrupt,memtable_changes,blk_ops,net_frames";

    public static int Run(SoakOptions o, CancellationToken interrupted)
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        TextWriter log = TextWriter.Synchronized(Console.Out);
        var counters = new SoakCounters();
        using var blk = new BlkSoak(o, counters, log);
        using NetSoak? net = o.NetSocket is null ? null : new NetSoak(o, counters, log);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(interrupted);
        long start = Stopwatch.GetTimestamp();
        long deadline = start + SessionPlan.Ticks(o.Minutes * 60);
        using var blkConnected = new ManualResetEventSlim();
        using var netConnected = new ManualResetEventSlim(net is null);
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        Thread blkThread = Start("soak-blk", () => blk.Run(deadline, blkConnected, stop.Token), failures, stop);
        Thread? netThread = net is null ? null : Start("soak-net", () => net.Run(deadline, netConnected, stop.Token), failures, stop);
        if (!WaitHandle.WaitAll([blkConnected.WaitHandle, netConnected.WaitHandle], TimeSpan.FromSeconds(30)))
        {
            failures.Enqueue("no first connection within 30 s");
            stop.Cancel();
        }

        log.WriteLine(string.Create(c, $"# soak: {o.Minutes} min, a sample every {o.SampleSeconds} s to {o.CsvPath}; connections of {o.ReconnectMinSeconds}-{o.ReconnectMaxSeconds} s, {o.AbruptPercent}% abrupt; a memory-table change every ~{o.MemTableSeconds} s"));
        var samples = new List<(double T, ProcessResources Blk, ProcessResources Net)>();
        using (var csv = new StreamWriter(o.CsvPath))
        {
            csv.WriteLine(CsvHeader);
            long nextSample = Stopwatch.GetTimestamp();
            while (true)
            {
                long now = Stopwatch.GetTimestamp();
                bool last = now >= deadline || stop.IsCancellationRequested;
                if (now >= nextSample || last)
                {
                    double t = (now - start) / (double)Stopwatch.Frequency;
                    ProcessResources b = ProcessResources.Read(blk.PeerProcessId);
                    ProcessResources n = net is null ? ProcessResources.Gone : ProcessResources.Read(net.PeerProcessId);
                    samples.Add((t, b, n));
                    csv.WriteLine(string.Create(c, $"{t:F1},{b.Fds},{b.RssKiB},{b.Maps},{n.Fds},{n.RssKiB},{n.Maps},{counters.Reconnects},{counters.AbruptDisconnects},{counters.MemTableChanges},{counters.BlkOps},{counters.NetFrames}"));
                    csv.Flush();
                    log.WriteLine(string.Create(c, $"[soak {t,7:F0} s] blk fds {b.Fds} rss {b.RssKiB} KiB maps {b.Maps} | net fds {n.Fds} rss {n.RssKiB} KiB maps {n.Maps} | reconnects {counters.Reconnects} ({counters.AbruptDisconnects} abrupt) memtable {counters.MemTableChanges} blk_ops {counters.BlkOps} net_frames {counters.NetFrames}"));
                    if (b.IsGone || (net is not null && n.IsGone))
                    {
                        failures.Enqueue("a daemon is gone (its /proc entry vanished)");
                        stop.Cancel();
                        break;
                    }

                    nextSample += SessionPlan.Ticks(o.SampleSeconds);
                }

                if (last)
                {
                    break;
                }

                stop.Token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(Math.Min(250, Math.Max(1, (Math.Min(nextSample, deadline) - now) * 1000.0 / Stopwatch.Frequency))));
            }
        }

        // The blk thread's verify pass runs now; bounded by its own stall timeout.
        bool joined = blkThread.Join(TimeSpan.FromMinutes(5)) & (netThread?.Join(TimeSpan.FromSeconds(60)) ?? true);
        if (!joined)
        {
            failures.Enqueue("a load thread did not finish");
        }

        double minutes = (Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency / 60;
        double warmUp = samples.Count == 0 ? 0 : samples[^1].T * o.WarmUpFraction;
        var kept = samples.Where(s => s.T >= warmUp).ToList();
        double blkFd = PerMinute(kept, s => s.Blk.Fds);
        double blkRss = PerMinute(kept, s => s.Blk.RssKiB);
        double netFd = net is null ? double.NaN : PerMinute(kept, s => s.Net.Fds);
        double netRss = net is null ? double.NaN : PerMinute(kept, s => s.Net.RssKiB);
        double fdSlope = Max(blkFd, netFd);
        double rssSlope = Max(blkRss, netRss);
        long lost = blk.OnlineLost + blk.VerifyLost;

        log.WriteLine(string.Create(c, $"# soak reconnects: {counters.Reconnects}, {counters.AbruptDisconnects} of them abrupt with {counters.InFlightAtAbrupt} request(s)/frame(s) in flight in all"));
        log.WriteLine(string.Create(c, $"# soak blk: {blk.VerifiedBlocks} blocks verified ({blk.AckedBlocks} with an acknowledged write), lost during the load {blk.OnlineLost}, in the verify pass {blk.VerifyLost}, corrupt {blk.Corrupt}, failed requests {blk.Errors}"));
        if (net is not null)
        {
            log.WriteLine(string.Create(c, $"# soak net: tx {net.TxFrames}, rx {net.RxFrames} (echo replies {net.EchoReplies}, ARP replies {net.ArpReplies}), tx never returned {net.TxLost}"));
        }

        log.WriteLine(string.Create(c, $"# soak slopes over {kept.Count} samples after the first {o.WarmUpFraction:P0}: blk fds {blkFd:F3}/min rss {blkRss:F1} KiB/min; net fds {netFd:F3}/min rss {netRss:F1} KiB/min"));
        log.WriteLine(string.Create(c, $"soak: minutes={minutes:F1} reconnects={counters.Reconnects} memtable_changes={counters.MemTableChanges} blk_ops={counters.BlkOps} net_frames={counters.NetFrames} lost_writes={lost} fd_slope={fdSlope:F3}/min rss_slope={rssSlope:F1} KiB/min"));
        log.WriteLine($"# soak: samples in {Path.GetFullPath(o.CsvPath)}");

        if (lost > 0)
        {
            failures.Enqueue($"{lost} acknowledged write(s) lost");
        }

        if (blk.Corrupt > 0 || blk.Errors > 0)
        {
            failures.Enqueue($"blk: {blk.Corrupt} corrupt read(s), {blk.Errors} failed request(s)");
        }

        if (net is not null && (net.EchoReplies == 0 || net.TxLost > 0))
        {
            failures.Enqueue($"net: {net.EchoReplies} echo replies, {net.TxLost} tx frame(s) never returned");
        }

        if (fdSlope > o.MaxFdSlope)
        {
            failures.Enqueue(string.Create(c, $"fd slope {fdSlope:F3}/min is above --max-fd-slope {o.MaxFdSlope}"));
        }

        if (rssSlope > o.MaxRssSlope)
        {
            failures.Enqueue(string.Create(c, $"RSS slope {rssSlope:F1} KiB/min is above --max-rss-slope {o.MaxRssSlope}"));
        }

        if (interrupted.IsCancellationRequested)
        {
            failures.Enqueue("interrupted");
        }

        foreach (string failure in failures)
        {
            log.WriteLine($"soak: FAIL: {failure}");
        }

        return failures.IsEmpty ? 0 : 1;
    }

    private static Thread Start(string name, Action run, System.Collections.Concurrent.ConcurrentQueue<string> failures, CancellationTokenSource stop)
    {
        var thread = new Thread(() =>
        {
            try
            {
                run();
            }
            catch (Exception e)
            {
                failures.Enqueue($"{name}: {e.GetType().Name}: {e.Message}");

                Console.Error.WriteLine($"{name}: {e}");
                stop.Cancel();
            }
        })
        { Name = name, IsBackground = true };
        thread.Start();
        return thread;
    }

    private static double PerMinute(List<(double T, ProcessResources Blk, ProcessResources Net)> samples, Func<(double T, ProcessResources Blk, ProcessResources Net), double> value) =>
        LeastSquares.Slope([.. samples.Select(s => (s.T / 60, value(s)))]);

    private static double Max(double a, double b) => double.IsNaN(a) ? b : double.IsNaN(b) ? a : Math.Max(a, b);
}
