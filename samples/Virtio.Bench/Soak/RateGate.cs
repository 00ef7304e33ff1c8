using System;
using System.Diagnostics;

namespace Virtio.Bench.Soak;

/// <summary>
/// At most <c>rate</c> events per second, with a burst of at most <c>burst</c>: time not used
/// (a reconnect, a memory-table change) does not pile up into a flood afterwards. One thread.
/// </summary>
internal sealed class RateGate(double rate, double burst)
{
    private readonly double _perTick = rate / Stopwatch.Frequency;
    private double _tokens = Math.Min(burst, 1);
    private long _last = Stopwatch.GetTimestamp();

    public bool TryTake(long now)
    {
        _tokens = Math.Min(burst, _tokens + ((now - _last) * _perTick));
        _last = now;
        if (_tokens < 1)
        {
            return false;
        }

        _tokens -= 1;
        return true;
    }
}
