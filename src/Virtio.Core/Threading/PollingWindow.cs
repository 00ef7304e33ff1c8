namespace Virtio.Core.Threading;

/// <summary>
/// How long an <see cref="IoThread"/> polls before it sleeps, adapted after every turn of its loop
/// from how long that turn waited for work (polling included), the rule QEMU's AioContext and SPDK's
/// reactors use: a wait that polling could have covered (shorter than the ceiling) doubles the window,
/// starting from <see cref="InitialTicks"/>; a wait longer than the ceiling drops it to zero (nothing
/// is coming soon, so spinning would only burn the core); a wait the window already covers keeps it.
/// Times are <see cref="System.Diagnostics.Stopwatch"/> ticks.
/// </summary>
/// <remarks>A plain value, changed only by the I/O thread that owns it.</remarks>
internal struct PollingWindow
{
    /// <summary>Where the window starts when it grows from zero: 4 us (QEMU's first step too).</summary>
    public static readonly long InitialTicks = System.Diagnostics.Stopwatch.Frequency / 250_000;

    /// <summary>The current window; from 0 to the ceiling last given to <see cref="Adjust"/>.</summary>
    public long Ticks { get; private set; }

    /// <summary>Adapts the window to a turn that waited <paramref name="waitedTicks"/> for work.</summary>
    /// <param name="waitedTicks">From the start of polling to the return of epoll_wait; negative counts as 0.</param>
    /// <param name="ceilingTicks">The most the window may be (the thread's polling duration); 0 or less turns polling off.</param>
    public void Adjust(long waitedTicks, long ceilingTicks)
    {
        if (ceilingTicks <= 0)
        {
            Ticks = 0;
            return;
        }

        if (Ticks > ceilingTicks)
        {
            Ticks = ceilingTicks; // the ceiling was lowered since the last turn
        }

        if (waitedTicks <= Ticks)
        {
            return; // polling covered the wait (or found work): the window is right
        }

        if (waitedTicks > ceilingTicks)
        {
            Ticks = 0; // longer than we would ever poll: sleep at once next time
        }
        else if (Ticks < ceilingTicks)
        {
            Ticks = Ticks == 0 ? System.Math.Min(InitialTicks, ceilingTicks) : System.Math.Min(Ticks * 2, ceilingTicks);
        }
    }
}
