using System;
using System.Diagnostics;

namespace Virtio.Bench.Soak;

/// <summary>
/// When a load thread's connection ends and how, and when it changes the memory table: random
/// (seeded) within the soak's bounds, in Stopwatch ticks. One per load thread.
/// </summary>
internal sealed class SessionPlan(SoakOptions options, int seed)
{
    private readonly Random _random = new(seed);

    /// <summary>The end of a connection that starts at <paramref name="now"/>.</summary>
    public long SessionEnd(long now) =>
        now + Ticks(options.ReconnectMinSeconds + (_random.NextDouble() * (options.ReconnectMaxSeconds - options.ReconnectMinSeconds)));

    /// <summary>The next memory-table change after <paramref name="now"/> (0.5 to 1.5 times the mean), or never.</summary>
    public long NextMemTableChange(long now) =>
        options.MemTableSeconds > 0 ? now + Ticks(options.MemTableSeconds * (0.5 + _random.NextDouble())) : long.MaxValue;

    /// <summary>Whether the connection ending now closes abruptly (requests in flight) rather than cleanly.</summary>
    public bool NextIsAbrupt() => _random.Next(100) < options.AbruptPercent;

    /// <summary>A uniformly random value in [0, <paramref name="bound"/>).</summary>
    public long Next(long bound) => _random.NextInt64(bound);

    /// <summary>True with probability <paramref name="percent"/>/100.</summary>
    public bool Chance(int percent) => _random.Next(100) < percent;

    public static long Ticks(double seconds) => (long)(seconds * Stopwatch.Frequency);
}
