using System;
using System.Collections.Generic;
using System.Linq;

namespace Virtio.Bench;

/// <summary>Every run of a comparison, by case and back-end name; medians and extremes over the rounds.</summary>
internal sealed class RoundResults
{
    private readonly Dictionary<(BenchCase Case, string BackEnd), List<BlkResult>> _runs = [];

    public void Add(BenchCase benchCase, string backEnd, BlkResult result)
    {
        if (!_runs.TryGetValue((benchCase, backEnd), out List<BlkResult>? list))
        {
            _runs[(benchCase, backEnd)] = list = [];
        }

        list.Add(result);
    }

    public double Median(BenchCase benchCase, string backEnd, Func<BlkResult, double> value)
    {
        double[] sorted = Sorted(benchCase, backEnd, value);
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public double Min(BenchCase benchCase, string backEnd, Func<BlkResult, double> value) => Sorted(benchCase, backEnd, value)[0];

    public double Max(BenchCase benchCase, string backEnd, Func<BlkResult, double> value) => Sorted(benchCase, backEnd, value)[^1];

    /// <summary>Failed requests over all rounds of every case and back end.</summary>
    public long Errors => _runs.Values.Sum(list => list.Sum(r => r.Errors));

    private double[] Sorted(BenchCase benchCase, string backEnd, Func<BlkResult, double> value) =>
        [.. _runs[(benchCase, backEnd)].Select(value).Order()];
}
