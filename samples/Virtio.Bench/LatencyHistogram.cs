using System;
using System.Numerics;

namespace Virtio.Bench;

/// <summary>
/// A log-linear histogram of nanosecond latencies (32 sub-buckets per power of two, ~3% error),
/// preallocated so recording allocates nothing; one thread records.
/// </summary>
internal sealed class LatencyHistogram
{
    private const int SubBits = 5;
    private const int Sub = 1 << SubBits;
    private readonly long[] _counts = new long[Sub * 64];
    private long _total;
    private double _sum;

    public long Count => _total;

    public double MeanNanoseconds => _total == 0 ? 0 : _sum / _total;

    public void Record(long nanoseconds)
    {
        ulong v = (ulong)Math.Max(nanoseconds, 0);
        _counts[Index(v)]++;
        _total++;
        _sum += v;
    }

    /// <summary>The value below which <paramref name="fraction"/> of the recorded latencies lie (bucket midpoint).</summary>
    public double PercentileNanoseconds(double fraction)
    {
        long rank = (long)Math.Ceiling(fraction * _total);
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank && _counts[i] > 0)
            {
                return Midpoint(i);
            }
        }

        return 0;
    }

    private static int Index(ulong v)
    {
        if (v < Sub)
        {
            return (int)v;
        }

        int exponent = 63 - BitOperations.LeadingZeroCount(v); // >= SubBits
        int sub = (int)((v >> (exponent - SubBits)) & (Sub - 1));
        return ((exponent - SubBits + 1) * Sub) + sub;
    }

    private static double Midpoint(int index)
    {
        if (index < Sub)
        {
            return index;
        }

        int exponent = (index / Sub) + SubBits - 1;
        int sub = index % Sub;
        double low = (1ul << exponent) + ((double)sub * (1ul << (exponent - SubBits)));
        return low + ((1ul << (exponent - SubBits)) / 2.0);
    }
}
