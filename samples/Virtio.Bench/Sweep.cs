using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;

namespace Virtio.Bench;

/// <summary>
/// `sweep`: IOPS over a range of queue depths for our daemon and qemu-storage-daemon's io_uring
/// export (or null-co against our null disk), rounds interleaved, written as CSV (one row per mode,
/// depth and back end: medians, and the extremes of the rounds) for samples/Virtio.Bench/plot-sweep.sh.
/// </summary>
internal static class Sweep
{
    public const string Header = "mode,rw,qd,backend,rounds,iops_median,iops_min,iops_max,backend_cpu_us_per_req,bench_cpu_us_per_req,p50_us,p99_us";

    public static int Run(ComparisonSettings settings, IReadOnlyList<BenchCase> cases, string? csvPath)
    {
        using Comparison? comparison = Comparison.Start(settings, withThreads: false);
        if (comparison is null)
        {
            return 2;
        }

        RoundResults results = comparison.Measure(cases);
        using (TextWriter csv = csvPath is null ? new StreamWriter(Console.OpenStandardOutput()) : new StreamWriter(csvPath))
        {
            csv.WriteLine(Header);
            foreach (BenchCase c in cases)
            {
                foreach (BackEndProcess b in comparison.LineUp.BackEnds)
                {
                    csv.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{Program.Name(c.Mode)},{Program.Name(c.Pattern)},{c.QueueDepth},{b.Name},{settings.Rounds},{results.Median(c, b.Name, r => r.Iops):F0},{results.Min(c, b.Name, r => r.Iops):F0},{results.Max(c, b.Name, r => r.Iops):F0},{results.Median(c, b.Name, r => r.BackendCpuMicroseconds):F2},{results.Median(c, b.Name, r => r.OwnCpuMicroseconds):F2},{results.Median(c, b.Name, r => r.P50Microseconds):F1},{results.Median(c, b.Name, r => r.P99Microseconds):F1}"));
                }
            }
        }

        // With the CSV on stdout, the summary goes to stderr with the runs.
        TextWriter summary = csvPath is null ? Console.Error : Console.Out;
        summary.WriteLine(comparison.Description);
        if (csvPath is not null)
        {
            summary.WriteLine($"wrote {csvPath}; plot it with samples/Virtio.Bench/plot-sweep.sh {csvPath} OUT.png");
        }

        if (results.Errors > 0)
        {
            Console.Error.WriteLine($"{results.Errors} requests failed (see the runs above).");
            return 1;
        }

        return 0;
    }
}
