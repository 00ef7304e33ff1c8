using System;
using System.Collections.Generic;
using System.Linq;

namespace Virtio.Bench.Net;

/// <summary>Mean and median of a few values (a boot's pings, a metric's rounds).</summary>
internal static class Statistics
{
    public static double Mean(IReadOnlyCollection<double> values) => values.Count == 0 ? double.NaN : values.Average();

    public static double Median(IEnumerable<double> values)
    {
        double[] sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        int middle = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }
}
