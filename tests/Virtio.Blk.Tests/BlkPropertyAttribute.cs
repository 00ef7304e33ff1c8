using System;
using FsCheck.Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// An FsCheck property run 200 times from a fixed seed, so CI is repeatable and a failure names
/// the seed to replay. Set VIRTIO_PROPERTY_SEED to "random" to explore new cases, or to a
/// "(seed,gamma)" pair that a failure printed to replay it.
/// </summary>
#pragma warning disable xUnit3003 // FsCheck's PropertyAttribute has no source-information constructor to forward to.
public class BlkPropertyAttribute : PropertyAttribute
#pragma warning restore xUnit3003
{
    /// <summary>The seed CI uses.</summary>
    public const string DefaultReplay = "(20261123,1640531527)";

    public BlkPropertyAttribute()
    {
        MaxTest = 200;
        string? seed = Environment.GetEnvironmentVariable("VIRTIO_PROPERTY_SEED");
        if (!string.Equals(seed, "random", StringComparison.OrdinalIgnoreCase))
        {
            Replay = string.IsNullOrWhiteSpace(seed) ? DefaultReplay : seed;
        }
    }
}
