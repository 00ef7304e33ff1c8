using System;
using System.CommandLine;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using Virtio.Bench.Net;
using Virtio.Bench.Soak;
using Virtio.VhostUser.FrontEnd;

namespace Virtio.Bench;

/// <summary>vhost-user-blk load generator: `blk` runs one load against a socket, `compare` and `sweep` run our daemon against qemu-storage-daemon.</summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        var socket = new Option<string>("--socket") { Description = "The back end's vhost-user-blk Unix socket.", Required = true };
        var qd = new Option<int>("--qd") { Description = "Requests kept in flight (1 to 341: three descriptors each in a ring of at most 1024).", DefaultValueFactory = _ => 1 };
        var bs = new Option<int>("--bs") { Description = "Bytes per request, a multiple of 512.", DefaultValueFactory = _ => 4096 };
        var rw = new Option<string>("--rw") { Description = "Request pattern.", DefaultValueFactory = _ => "randread" };
        rw.AcceptOnlyFromAmong("randread", "randwrite", "read", "write");
        var seconds = new Option<double>("--seconds") { Description = "How long to post requests (then in-flight ones drain, at most 5 s more).", DefaultValueFactory = _ => 5 };
        var mode = new Option<string>("--mode") { Description = "poll: spin on the used ring, calls suppressed; interrupt: wait on the call eventfd.", DefaultValueFactory = _ => "poll" };
        mode.AcceptOnlyFromAmong("poll", "interrupt");
        var verify = new Option<bool>("--verify") { Description = "Write a per-block pattern over the region first, then check every read and write it again on writes." };
        var sizeMiB = new Option<int>("--size-mib") { Description = "Use only the first M MiB of the device (0: all of it).", DefaultValueFactory = _ => 0 };
        var backendPid = new Option<int?>("--backend-pid") { Description = "The back end's pid for CPU per request (default: the socket peer's, from SO_PEERCRED)." };
        var blk = new Command("blk", "Run one bounded load against a vhost-user-blk back end and print IOPS, MiB/s, latency, kicks and calls per request and CPU per request.")
        {
            socket, qd, bs, rw, seconds, mode, verify, sizeMiB, backendPid,
        };
        blk.SetAction(r =>
        {
            var options = new BlkOptions(r.GetValue(socket)!, r.GetValue(qd), r.GetValue(bs), ParsePattern(r.GetValue(rw)!), r.GetValue(seconds), ParseMode(r.GetValue(mode)!), r.GetValue(verify), r.GetValue(sizeMiB), r.GetValue(backendPid));
            if (Validate(options.QueueDepth, options.BlockSize, options.Seconds) is string error)
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            return Guard(() =>
            {
                BlkResult result = BlkLoad.Run(options, Console.Out);
                Print(options, result);
                return result.Errors == 0 ? 0 : 1;
            });
        });

        var shared = new ComparisonOptions(defaultSeconds: 4);
        var qds = new Option<int[]>("--qd") { Description = "Queue depths.", DefaultValueFactory = _ => [1, 32], AllowMultipleArgumentsPerToken = true };
        var rws = new Option<string[]>("--rw") { Description = "Patterns (randread, randwrite, read, write).", DefaultValueFactory = _ => ["randread", "randwrite"], AllowMultipleArgumentsPerToken = true };
        var modes = new Option<string[]>("--mode") { Description = "Modes (interrupt, poll).", DefaultValueFactory = _ => ["interrupt", "poll"], AllowMultipleArgumentsPerToken = true };
        var compare = new Command("compare", "Start our daemon (dotnet Virtio.VhostUserDaemon.dll) and qemu-storage-daemon with aio=threads and aio=io_uring on the same image (or, with --null, our null disk and a null-co export), run every case against each, interleaved, and print a Markdown table. Children are killed on exit.")
        {
            qds, rws, modes,
        };
        shared.AddTo(compare);
        compare.SetAction(r =>
        {
            ComparisonSettings? settings = shared.Read(r, out string? error);
            int[] depths = r.GetValue(qds)!;
            error ??= depths.Select(depth => Validate(depth, settings!.BlockSize, settings.Seconds)).FirstOrDefault(e => e is not null);
            if (error is not null)
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            return Guard(() => Compare.Run(settings!, Cases(r.GetValue(modes)!, depths, r.GetValue(rws)!)));
        });

        var root = new RootCommand("vhost-user-blk load generator on the Virtio.VhostUser front end, a virtio-net comparison with QEMU under a Linux guest, and a soak of our daemons (eng/soak.sh). Every run is bounded in time.") { blk, compare, SweepCommand.Create(), NetCompareCommand.Create(), SoakCommand.Create() };
        return root.Parse(args).Invoke();
    }

    public static string Name(IoPattern pattern) => pattern.ToString().ToLowerInvariant();

    public static string Name(NotifyMode mode) => mode.ToString().ToLowerInvariant();

    internal static string? Validate(int queueDepth, int blockSize, double seconds) =>
        queueDepth is < 1 or > 341 ? "--qd must be 1 to 341."
        : blockSize < 512 || blockSize % 512 != 0 || blockSize > (16 << 20) ? "--bs must be a multiple of 512 up to 16 MiB."
        : seconds is <= 0 or > 3600 ? "--seconds must be in (0, 3600]."
        : null;

    internal static IoPattern ParsePattern(string text) => text switch
    {
        "randread" => IoPattern.RandRead,
        "randwrite" => IoPattern.RandWrite,
        "read" => IoPattern.Read,
        "write" => IoPattern.Write,
        _ => throw new ArgumentException($"unknown --rw {text}"),
    };

    internal static NotifyMode ParseMode(string text) => text switch
    {
        "interrupt" => NotifyMode.Interrupt,
        "poll" => NotifyMode.Poll,
        _ => throw new ArgumentException($"unknown --mode {text}"),
    };

    internal static int Guard(Func<int> run)
    {
        try
        {
            return run();
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException or ArgumentException or VhostUserBackEndException)
        {
            Console.Error.WriteLine($"virtio-bench: {e.Message}");
            return 1;
        }
    }

    /// <summary>Every mode, then every depth, then every pattern: the order of the table's rows and of the runs in a round.</summary>
    internal static BenchCase[] Cases(string[] modes, int[] depths, string[] patterns) =>
        [.. modes.Select(ParseMode).SelectMany(m => depths.SelectMany(qd => patterns.Select(p => new BenchCase(m, qd, ParsePattern(p)))))];

    private static void Print(BlkOptions o, BlkResult r)
    {
        CultureInfo c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"{Name(o.Pattern)} qd {o.QueueDepth} bs {o.BlockSize} {Name(o.Mode)}: {r.Completed} requests in {r.Seconds:F2} s"));
        Console.WriteLine(string.Create(c, $"  IOPS {r.Iops:F0}  MiB/s {r.MiBps:F1}"));
        Console.WriteLine(string.Create(c, $"  latency us: mean {r.MeanMicroseconds:F1}  p50 {r.P50Microseconds:F1}  p99 {r.P99Microseconds:F1}"));
        Console.WriteLine(string.Create(c, $"  kicks/request {r.KicksPerRequest:F3}  calls/request {r.CallsPerRequest:F3}  empty polls/request {r.EmptyPollsPerRequest:F3}"));
        Console.WriteLine(string.Create(c, $"  CPU us/request: back end {r.BackendCpuMicroseconds:F2}  bench {r.OwnCpuMicroseconds:F2}"));
        Console.WriteLine(string.Create(c, $"  allocated in the request loop: {r.AllocatedInLoop} bytes; errors {r.Errors}"));
    }
}
