using System;
using System.CommandLine;
using System.Linq;

namespace Virtio.Bench;

/// <summary>The `sweep` command line: queue depths, one pattern, modes, the CSV file, and the options shared with `compare`.</summary>
internal static class SweepCommand
{
    public static Command Create()
    {
        var shared = new ComparisonOptions(defaultSeconds: 3);
        var qds = new Option<int[]>("--qd") { Description = "Queue depths.", DefaultValueFactory = _ => [1, 2, 4, 8, 16, 32, 64], AllowMultipleArgumentsPerToken = true };
        var rw = new Option<string>("--rw") { Description = "Request pattern.", DefaultValueFactory = _ => "randread" };
        rw.AcceptOnlyFromAmong("randread", "randwrite", "read", "write");
        var modes = new Option<string[]>("--mode") { Description = "Modes (interrupt, poll); each is a series of its own.", DefaultValueFactory = _ => ["interrupt", "poll"], AllowMultipleArgumentsPerToken = true };
        var csv = new Option<string?>("--csv") { Description = "Write the CSV here (overwritten) and a summary to stdout; default: the CSV to stdout." };
        var command = new Command("sweep", "Start our daemon and qemu-storage-daemon's aio=io_uring export on one image (or, with --null, our null disk and a null-co export), measure IOPS at every queue depth in interleaved rounds, and write one CSV row per mode, depth and back end (medians and the rounds' extremes). samples/Virtio.Bench/plot-sweep.sh turns it into a PNG. Children are killed on exit.")
        {
            qds, rw, modes, csv,
        };
        shared.AddTo(command);
        command.SetAction(r =>
        {
            ComparisonSettings? settings = shared.Read(r, out string? error);
            int[] depths = r.GetValue(qds)!;
            error ??= depths.Select(depth => Program.Validate(depth, settings!.BlockSize, settings.Seconds)).FirstOrDefault(e => e is not null);
            if (error is not null)
            {
                Console.Error.WriteLine(error);
                return 2;
            }

            return Program.Guard(() => Sweep.Run(settings!, Program.Cases(r.GetValue(modes)!, depths, [r.GetValue(rw)!]), r.GetValue(csv)));
        });
        return command;
    }
}
