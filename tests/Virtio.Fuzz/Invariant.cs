using System.Diagnostics.CodeAnalysis;

namespace Virtio.Fuzz;

/// <summary>The one way a target states an invariant: false throws <see cref="InvariantViolationException"/>.</summary>
internal static class Invariant
{
    /// <summary>Throws when <paramref name="condition"/> is false; <paramref name="what"/> is only formatted then.</summary>
    /// <param name="condition">The invariant.</param>
    /// <param name="what">What it says, for the crash report.</param>
    public static void Check([DoesNotReturnIf(false)] bool condition, string what)
    {
        if (!condition)
        {
            Fail(what);
        }
    }

    /// <summary>Throws <see cref="InvariantViolationException"/>.</summary>
    /// <param name="what">What broke.</param>
    [DoesNotReturn]
    public static void Fail(string what) => throw new InvariantViolationException(what);
}
