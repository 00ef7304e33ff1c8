using System;

namespace Virtio.Core.Threading;

/// <summary>
/// A <see cref="DeferredCalls"/> section as a <c>using</c> scope: <see cref="DeferredCalls.Section"/>
/// opens it and <see cref="Dispose"/> closes it.
/// </summary>
/// <remarks>
/// A ref struct so it cannot outlive the stack frame or cross an <c>await</c>: sections belong to one
/// thread. Dispose it exactly once, on the thread that opened it; <c>default</c> is an empty scope
/// whose <see cref="Dispose"/> does nothing.
/// </remarks>
public readonly ref struct DeferredCallSection
{
    private readonly bool _entered;

    internal DeferredCallSection(bool entered)
    {
        _entered = entered;
    }

    /// <summary>
    /// Closes the section (<see cref="DeferredCalls.End"/>), running the recorded calls if it was the
    /// outermost. Only the thread that opened the section may call it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The calling thread has no open section.</exception>
    public void Dispose()
    {
        if (_entered)
        {
            DeferredCalls.End();
        }
    }
}
