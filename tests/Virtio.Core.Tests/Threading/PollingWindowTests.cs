using System.Diagnostics;
using FsCheck;
using FsCheck.Fluent;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Core.Tests.Threading;

/// <summary>The adaptive polling rule on its own: grow while work comes sooner than the ceiling, drop after a longer wait.</summary>
public sealed class PollingWindowTests
{
    private static readonly long Ceiling = Stopwatch.Frequency / 10_000; // 100 us
    private static readonly long Initial = PollingWindow.InitialTicks;

    [Fact]
    public void ShortWaits_GrowTheWindowFrom4UsByDoublingUpToTheCeiling()
    {
        var window = default(PollingWindow);
        Assert.Equal(0, window.Ticks);

        long[] expected = [Initial, 2 * Initial, 4 * Initial, 8 * Initial, 16 * Initial, Ceiling];
        foreach (long want in expected)
        {
            // A wait just over the window (work came soon after polling gave up) but under the ceiling.
            window.Adjust(window.Ticks + 1, Ceiling);
            Assert.Equal(want, window.Ticks);
        }

        // At the ceiling, a wait of exactly the ceiling is covered: it stays.
        window.Adjust(Ceiling, Ceiling);
        Assert.Equal(Ceiling, window.Ticks);
    }

    [Fact]
    public void WaitLongerThanTheCeiling_DropsTheWindowToZero()
    {
        var window = Grown(Ceiling);

        window.Adjust(Ceiling + 1, Ceiling);

        Assert.Equal(0, window.Ticks);
    }

    [Fact]
    public void WaitTheWindowCovered_KeepsIt()
    {
        var window = Grown(Ceiling);
        long before = window.Ticks;

        window.Adjust(before, Ceiling);
        window.Adjust(1, Ceiling);

        Assert.Equal(before, window.Ticks);
    }

    [Fact]
    public void CeilingZero_TurnsPollingOff_AndALowerCeilingCutsTheWindow()
    {
        var window = Grown(Ceiling);
        window.Adjust(1, Ceiling / 4);
        Assert.Equal(Ceiling / 4, window.Ticks);

        window.Adjust(1, 0);
        Assert.Equal(0, window.Ticks);
    }

    [Fact]
    public void CeilingBelow4Us_IsTheFirstStep()
    {
        var window = default(PollingWindow);

        window.Adjust(1, Initial / 2);

        Assert.Equal(Initial / 2, window.Ticks);
    }

    /// <summary>Whatever the waits and ceilings, the window stays within [0, ceiling]. Fixed seed: see <see cref="RingPropertyAttribute"/>.</summary>
    [RingProperty]
    public Property AnyWaits_KeepTheWindowWithinTheCeiling(int[] waits, int[] ceilings)
    {
        var window = default(PollingWindow);
        for (int i = 0; i < waits.Length; i++)
        {
            long ceiling = ceilings.Length == 0 ? Ceiling : (long)ceilings[i % ceilings.Length] * 1000;
            window.Adjust((long)waits[i] * 1000, ceiling);
            if (window.Ticks < 0 || window.Ticks > System.Math.Max(0, ceiling))
            {
                return false.Label($"step {i}: window {window.Ticks} outside [0, {ceiling}]");
            }
        }

        return true.ToProperty();
    }

    private static PollingWindow Grown(long ceiling)
    {
        var window = default(PollingWindow);
        while (window.Ticks < ceiling)
        {
            window.Adjust(window.Ticks + 1, ceiling);
        }

        return window;
    }
}
