using System;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Virtio.Core.Threading;

/// <summary>
/// Per-thread deferred calls: inside a section opened with <see cref="Begin"/> (or <see cref="Section"/>),
/// <see cref="Defer"/> records a call instead of making it, the same call recorded twice runs once, and
/// the outermost <see cref="End"/> runs everything recorded, in the order first deferred. Devices use it
/// to turn the interrupts of a burst of completions into one.
/// </summary>
/// <remarks>
/// <para>
/// The state is per thread (<see cref="ThreadStaticAttribute"/>), not an object handed around, on
/// purpose: the code that opens a section (an I/O thread's completion loop) and the code that defers
/// (a notifier several layers below, in another package) should not need a reference to each other.
/// The cost is that a section must begin and end on one thread with no <c>await</c> in between, which
/// <see cref="DeferredCallSection"/> being a ref struct enforces for the <c>using</c> form.
/// </para>
/// <para>
/// Duplicates are recognised by reference equality of both the delegate and the state, so defer a
/// cached (static) delegate with the object it acts on as state: that also allocates nothing. At most
/// <see cref="MaxPending"/> distinct calls are held; a further one runs at once rather than being
/// dropped. A call that throws inside a section is logged to the section's logger and the others
/// still run; outside any section, <see cref="Defer"/> calls at once and its exceptions reach the caller.
/// </para>
/// </remarks>
public static class DeferredCalls
{
    /// <summary>How many distinct calls a thread holds before further ones run at once.</summary>
    public const int MaxPending = 128;

    [ThreadStatic]
    private static ThreadState? t_state;

    /// <summary>Whether the calling thread is inside a section. Any thread may call it, about itself.</summary>
    public static bool IsInSection => t_state is { Depth: > 0 };

    /// <summary>
    /// Opens a section on the calling thread; sections nest. Any thread may call it; pair it with
    /// <see cref="End"/> on the same thread.
    /// </summary>
    /// <param name="logger">Where to log calls that throw at the outermost <see cref="End"/>. The first
    /// logger given since the outermost section opened wins; without one, failures are not logged.</param>
    public static void Begin(ILogger? logger = null)
    {
        ThreadState state = t_state ??= new ThreadState();
        state.Depth++;
        if (logger is not null && state.Logger is NullLogger)
        {
            state.Logger = logger;
        }
    }

    /// <summary>
    /// Closes the innermost section of the calling thread. Closing the outermost one runs the recorded
    /// calls on this thread, in the order first deferred. Only the thread that called <see cref="Begin"/>
    /// may call it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The calling thread has no open section.</exception>
    public static void End()
    {
        ThreadState? state = t_state;
        if (state is null || state.Depth == 0)
        {
            throw new InvalidOperationException("DeferredCalls.End was called without a matching Begin on this thread.");
        }

        if (--state.Depth > 0 || state.Flushing)
        {
            // Still nested, or a deferred call opened and closed a section of its own while the outer
            // End runs the list: that outer loop also runs whatever this section recorded.
            return;
        }

        state.Flush();
    }

    /// <summary>
    /// Opens a section for a <c>using</c> statement: <c>using var _ = DeferredCalls.Section();</c>. Any
    /// thread may call it; the scope must be disposed on the same thread.
    /// </summary>
    /// <param name="logger">As for <see cref="Begin"/>.</param>
    /// <returns>The scope whose <see cref="DeferredCallSection.Dispose"/> calls <see cref="End"/>.</returns>
    public static DeferredCallSection Section(ILogger? logger = null)
    {
        Begin(logger);
        return new DeferredCallSection(entered: true);
    }

    /// <summary>
    /// Inside a section, records <paramref name="action"/>(<paramref name="state"/>) to run at the
    /// outermost <see cref="End"/>, unless the same pair is already recorded; outside any section, calls
    /// it at once. Any thread may call it, about its own sections; it allocates nothing.
    /// </summary>
    /// <param name="action">The call to make; use a cached delegate so duplicates are recognised.</param>
    /// <param name="state">Passed to <paramref name="action"/>; part of the duplicate check.</param>
    /// <exception cref="ArgumentNullException"><paramref name="action"/> is null.</exception>
    public static void Defer(Action<object?> action, object? state)
    {
        ArgumentNullException.ThrowIfNull(action);
        ThreadState? threadState = t_state;
        if (threadState is null || threadState.Depth == 0)
        {
            action(state);
            return;
        }

        threadState.Add(action, state);
    }

    private sealed class ThreadState
    {
        private readonly Entry[] _entries = new Entry[MaxPending];

        // Entries [_head, _count) are recorded and not yet run; _head moves only while flushing.
        private int _head;
        private int _count;

        public int Depth;
        public bool Flushing;
        public ILogger Logger = NullLogger.Instance;

        public void Add(Action<object?> action, object? state)
        {
            for (int i = _head; i < _count; i++)
            {
                ref Entry entry = ref _entries[i];
                if (ReferenceEquals(entry.Action, action) && ReferenceEquals(entry.State, state))
                {
                    return;
                }
            }

            if (_count == _entries.Length && _head > 0)
            {
                // Reclaim the slots of the calls a running flush has already made.
                Array.Copy(_entries, _head, _entries, 0, _count - _head);
                Array.Clear(_entries, _count - _head, _head);
                _count -= _head;
                _head = 0;
            }

            if (_count == _entries.Length)
            {
                Run(action, state);
                return;
            }

            _entries[_count++] = new Entry(action, state);
        }

        public void Flush()
        {
            Flushing = true;
            try
            {
                while (_head < _count)
                {
                    ref Entry entry = ref _entries[_head];
                    Action<object?> action = entry.Action;
                    object? state = entry.State;
                    entry = default;
                    _head++;
                    Run(action, state);
                }
            }
            finally
            {
                _head = 0;
                _count = 0;
                Flushing = false;
                Logger = NullLogger.Instance;
            }
        }

        private void Run(Action<object?> action, object? state)
        {
            try
            {
                action(state);
            }
            catch (Exception exception)
            {
                Log.DeferredCallFailed(Logger, exception);
            }
        }
    }

    private readonly record struct Entry(Action<object?> Action, object? State);
}
