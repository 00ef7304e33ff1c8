using System;

namespace Virtio.Fuzz;

/// <summary>
/// One named fuzz target: turns an input of arbitrary bytes into guest- or front-end-controlled
/// input for real library code and checks invariants afterwards. A violated invariant throws
/// <see cref="InvariantViolationException"/> (or any exception escapes), which SharpFuzz reports to
/// AFL++ as a crash.
/// </summary>
/// <remarks>
/// A target is created once per process and its <see cref="Run"/> called once per input (AFL++
/// persistent mode): it must return everything it touches to the same state before each input, so
/// an input found by AFL++ replays alike on its own (<c>Virtio.Fuzz replay</c>).
/// </remarks>
internal interface IFuzzTarget : IDisposable
{
    /// <summary>The name eng/fuzz.sh and the command line use.</summary>
    string Name { get; }

    /// <summary>Runs one input.</summary>
    /// <param name="input">The bytes AFL++ (or a replayed file) gave.</param>
    void Run(ReadOnlySpan<byte> input);

    /// <summary>
    /// Runs <paramref name="loop"/> (the fuzzing or replay loop) on the thread the target needs:
    /// the calling thread unless the target's device wants its own I/O thread.
    /// </summary>
    /// <param name="loop">The loop that calls <see cref="Run"/>.</param>
    void Host(Action loop);
}
