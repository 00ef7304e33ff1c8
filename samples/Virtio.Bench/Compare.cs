using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Virtio.Bench;

/// <summary>
/// `compare`: our daemon against qemu-storage-daemon (aio=threads and aio=io_uring on one image, or
/// null-co against our null disk), rounds interleaved, then a Markdown table of medians with the
/// ratio ours / the last back end.
/// </summary>
internal static class Compare
{
    public static int Run(ComparisonSettings settings, IReadOnlyList<BenchCase> cases)
    {
        using Comparison? comparison = Comparison.Start(settings, withThreads: true);
        if (comparison is null)
        {
            return 2;
        }

        RoundResults results = comparison.Measure(cases);
        BackEndProcess[] backEnds = comparison.LineUp.BackEnds;
        string[] shortLabels = [.. comparison.LineUp.Labels.Select(l => l.StartsWith("QSD ", StringComparison.Ordinal) ? l[4..] : l)];
        Console.WriteLine(comparison.Description);
        Console.WriteLine();
        Console.WriteLine($"| mode | qd | rw | {string.Join(" | ", comparison.LineUp.Labels.Select(l => l + " IOPS"))} | ours/{shortLabels[^1]} | {string.Join(" | ", shortLabels.Select(l => l + " CPU us/req"))} |");
        Console.WriteLine($"|---|---|---|{string.Concat(Enumerable.Repeat("---|", (2 * backEnds.Length) + 1))}");
        foreach (BenchCase c in cases)
        {
            double[] iops = [.. backEnds.Select(b => results.Median(c, b.Name, r => r.Iops))];
            double[] cpu = [.. backEnds.Select(b => results.Median(c, b.Name, r => r.BackendCpuMicroseconds))];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {Program.Name(c.Mode)} | {c.QueueDepth} | {Program.Name(c.Pattern)} | {string.Join(" | ", iops.Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))} | {iops[0] / iops[^1]:F2} | {string.Join(" | ", cpu.Select(v => v.ToString("F1", CultureInfo.InvariantCulture)))} |"));
        }

        if (results.Errors > 0)
        {
            Console.WriteLine();
            Console.WriteLine($"{results.Errors} requests failed (see the runs on stderr).");
            return 1;
        }

        return 0;
    }
}
