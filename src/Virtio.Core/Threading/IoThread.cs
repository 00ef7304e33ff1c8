using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Tmds.Linux;
using Virtio.Core.Interop;
using Virtio.Core.Notifications;

namespace Virtio.Core.Threading;

/// <summary>
/// A dedicated thread running an epoll event loop: it calls the handler of each registered fd when
/// the fd is readable, runs work scheduled from other threads in FIFO order, and optionally polls
/// before sleeping. A device's data plane (queue notifies, backend completions) runs here.
/// </summary>
/// <remarks>
/// <para>
/// fds are watched level-triggered: a handler is called again on every loop iteration while its fd
/// stays readable (or reports an error or hang-up), so it should drain the fd, usually with
/// <see cref="EventFd.TryConsume"/>, or unregister it. Handlers, scheduled work and pollers run on
/// the I/O thread one at a time; an exception from any of them is logged and the loop keeps serving.
/// </para>
/// <para>
/// When idle the thread sleeps in epoll_wait with no timeout and uses no CPU. With
/// <see cref="PollingDuration"/> above zero and pollers registered, it polls adaptively before it
/// sleeps, trading CPU for latency as data-plane threads do: it calls the pollers repeatedly for a
/// window that doubles (from 4 us, up to <see cref="PollingDuration"/>) while work keeps coming
/// sooner than the ceiling, and drops to zero after a wait longer than the ceiling, so an idle thread
/// stops spinning after one turn. <see cref="PollingTime"/> and the
/// <c>virtio.iothread.polling_time</c> counter say how much CPU time polling took.
/// </para>
/// </remarks>
public sealed class IoThread : IDisposable
{
    private const int MaxEventsPerWait = 64;
    private const ulong WakeToken = 0;

    private readonly string _name;
    private readonly ILogger _logger;
    private readonly SafeFdHandle _epoll;
    private readonly EventFd _wake;
    private readonly Thread _thread;
    private readonly int _threadId;
    private readonly epoll_event[] _events = GC.AllocateArray<epoll_event>(MaxEventsPerWait, pinned: true);

    // Guards the tables below and the state; never held while user code runs.
    private readonly Lock _gate = new();
    private FdRegistration?[] _slots = new FdRegistration?[16];
    private PollerRegistration[] _pollers = [];
    private uint _generation;
    private Queue<WorkItem> _pending = new();
    private Queue<WorkItem> _running = new();
    private bool _acceptingWork = true;
    private State _state;
    private bool _threadStarted;

    private int _wakeRequested;
    private volatile bool _stopRequested;
    private long _pollingTicks;
    private long _pollingTicksSpent; // written by the I/O thread only
    private PollingWindow _window;   // the I/O thread's only

    /// <summary>
    /// Creates the epoll instance and the thread, not yet started. Any thread may call it.
    /// </summary>
    /// <param name="name">The thread's name, also used in log messages.</param>
    /// <param name="logger">Where failures of handlers, work and pollers are logged.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is null or empty.</exception>
    /// <exception cref="System.IO.IOException">epoll_create1 or eventfd failed; the message holds the errno.</exception>
    public IoThread(string name, ILogger? logger = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _name = name;
        _logger = logger ?? NullLogger.Instance;

        int epfd = LibC.epoll_create1(LibC.EPOLL_CLOEXEC);
        if (epfd < 0)
        {
            NativeError.ThrowIOException("epoll_create1", LibC.errno);
        }

        _epoll = new SafeFdHandle(epfd);
        try
        {
            _wake = EventFd.Create();
            AddToEpoll(_wake, WakeToken);
        }
        catch
        {
            _wake?.Dispose();
            _epoll.Dispose();
            throw;
        }

        _thread = new Thread(static self => ((IoThread)self!).Run())
        {
            IsBackground = true,
            Name = name,
        };
        _threadId = _thread.ManagedThreadId;
    }

    private enum State
    {
        Created,
        Running,
        Stopped,
        Disposed,
    }

    /// <summary>The thread's name. Any thread may read it.</summary>
    public string Name => _name;

    /// <summary>Whether the caller is running on this I/O thread. Any thread may call it.</summary>
    public bool IsCurrentThread => Environment.CurrentManagedThreadId == _threadId;

    /// <summary>
    /// The most the loop calls the registered pollers before sleeping in epoll_wait (the adaptive
    /// window's ceiling, see the remarks on <see cref="IoThread"/>); zero (the default) never polls.
    /// Any thread may read or set it; the loop picks up a new value on its next iteration.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is negative.</exception>
    public TimeSpan PollingDuration
    {
        get => Stopwatch.GetElapsedTime(0, Volatile.Read(ref _pollingTicks));
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
            Volatile.Write(ref _pollingTicks, (long)(value.TotalSeconds * Stopwatch.Frequency));
        }
    }

    /// <summary>
    /// The time the loop has spent polling so far, found work or not: CPU time of one core, the cost
    /// of <see cref="PollingDuration"/>. Any thread may read it; it lags the loop by at most one turn.
    /// </summary>
    public TimeSpan PollingTime => Stopwatch.GetElapsedTime(0, Volatile.Read(ref _pollingTicksSpent));

    /// <summary>Starts the thread. Any thread may call it, once.</summary>
    /// <exception cref="InvalidOperationException">The thread was already started or stopped.</exception>
    /// <exception cref="ObjectDisposedException">The instance has been disposed.</exception>
    public void Start()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_state == State.Disposed, this);
            if (_state != State.Created)
            {
                throw new InvalidOperationException($"I/O thread {_name} was already started; it cannot be started twice.");
            }

            _state = State.Running;
            _threadStarted = true;

            // Inside the lock, so a concurrent Stop never tries to join a thread not yet started.
            _thread.Start(this);
        }
    }

    /// <summary>
    /// Asks the loop to exit and waits until it has: work scheduled before this call has run and no
    /// handler is running when it returns. Prompt even when the loop sleeps: an internal eventfd wakes
    /// it. Any thread except the I/O thread itself may call it, any number of times. Work scheduled on a
    /// thread that was never started is dropped.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called on the I/O thread, where it would wait for itself.</exception>
    public void Stop() => Stop(Timeout.InfiniteTimeSpan);

    /// <summary>
    /// Asks the loop to exit, as <see cref="Stop()"/> does, and waits for it at most
    /// <paramref name="timeout"/>. Any thread except the I/O thread itself, any number of times.
    /// </summary>
    /// <param name="timeout">The longest wait; <see cref="Timeout.InfiniteTimeSpan"/> waits as <see cref="Stop()"/> does.</param>
    /// <returns>
    /// True when the loop has exited (or never ran). False when a handler still ran after
    /// <paramref name="timeout"/>: the loop exits once that handler (and the work already scheduled)
    /// has run; until then do not dispose what the handlers use, nor this thread (its
    /// <see cref="Dispose"/> waits for the exit without a bound).
    /// </returns>
    /// <exception cref="InvalidOperationException">Called on the I/O thread, where it would wait for itself.</exception>
    public bool Stop(TimeSpan timeout)
    {
        if (IsCurrentThread)
        {
            throw new InvalidOperationException($"Stop was called on I/O thread {_name} itself; call it from another thread.");
        }

        bool started;
        lock (_gate)
        {
            started = _threadStarted;
            switch (_state)
            {
                case State.Created:
                    _state = State.Stopped;
                    _acceptingWork = false;
                    _pending.Clear();
                    return true;
                case State.Running:
                    _state = State.Stopped;
                    _stopRequested = true;
                    _wake.Signal();
                    break;
            }
        }

        return !started || _thread.Join(timeout);
    }

    /// <summary>
    /// Stops the loop (see <see cref="Stop()"/>), then closes the epoll instance and the internal eventfd
    /// and releases every registration. Registered fds themselves stay open: their owners close them.
    /// Any thread except the I/O thread may call it, any number of times.
    /// </summary>
    /// <exception cref="InvalidOperationException">Called on the I/O thread.</exception>
    public void Dispose()
    {
        Stop();
        lock (_gate)
        {
            if (_state == State.Disposed)
            {
                return;
            }

            _state = State.Disposed;
            foreach (FdRegistration? registration in _slots)
            {
                if (registration is not null && registration.Deactivate())
                {
                    registration.Handle.DangerousRelease();
                }
            }

            Array.Clear(_slots);
            _pollers = [];
        }

        _wake.Dispose();
        _epoll.Dispose();
    }

    /// <summary>
    /// Watches <paramref name="handle"/>: while its fd is readable the I/O thread calls
    /// <paramref name="handler"/>(<paramref name="state"/>). Any thread may call it, including a
    /// handler on the I/O thread; the fd is watched from the loop's next epoll_wait on.
    /// </summary>
    /// <param name="handle">The fd, for example an <see cref="EventFd"/>. It is kept open (reference
    /// counted) until the registration is disposed; a raw fd can be wrapped in a non-owning
    /// <see cref="Microsoft.Win32.SafeHandles.SafeFileHandle"/>.</param>
    /// <param name="handler">Called on the I/O thread; should drain the fd.</param>
    /// <param name="state">Passed to <paramref name="handler"/>.</param>
    /// <returns>
    /// The registration; disposing it (from any thread, also from the handler itself) stops the watch.
    /// After disposal the handler is not called again, though a call already running on the I/O thread
    /// finishes.
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="handle"/> or <paramref name="handler"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">This instance or <paramref name="handle"/> is disposed.</exception>
    /// <exception cref="System.IO.IOException">epoll_ctl refused the fd (a regular file, for example); the message holds the errno.</exception>
    public IDisposable Register(SafeHandle handle, Action<object?> handler, object? state)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ArgumentNullException.ThrowIfNull(handler);

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_state == State.Disposed, this);

            bool added = false;
            int slot = -1;
            try
            {
                handle.DangerousAddRef(ref added);
                slot = FindFreeSlot();
                uint generation = ++_generation;
                if (generation == 0)
                {
                    generation = ++_generation;
                }

                ulong token = ((ulong)generation << 32) | (uint)(slot + 1);
                var registration = new FdRegistration(this, handle, handler, state, slot, token);

                // Publish before epoll_ctl so the first event already finds its handler.
                Volatile.Write(ref _slots[slot], registration);
                AddToEpoll(handle, token);
                return registration;
            }
            catch
            {
                if (slot >= 0)
                {
                    _slots[slot] = null;
                }

                if (added)
                {
                    handle.DangerousRelease();
                }

                throw;
            }
        }
    }

    /// <summary>
    /// Adds a poll callback, called on the I/O thread before it sleeps when <see cref="PollingDuration"/>
    /// is above zero; it returns true if it found work (and did it). Any thread may call it, including
    /// code on the I/O thread.
    /// </summary>
    /// <param name="poll">Checks for work without blocking, for example whether a ring has new entries.</param>
    /// <returns>
    /// The registration; disposing it (from any thread) removes the callback. The pass over the pollers
    /// that is running meanwhile may still call it once; after <see cref="RunAndWait(Action{object?}, object?, TimeSpan)"/> of any work
    /// following the disposal, nothing calls it any more (scheduled work runs between polling turns).
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="poll"/> is null.</exception>
    /// <exception cref="ObjectDisposedException">The instance has been disposed.</exception>
    public IDisposable RegisterPoller(Func<bool> poll)
    {
        ArgumentNullException.ThrowIfNull(poll);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_state == State.Disposed, this);
            var registration = new PollerRegistration(this, poll);
            PollerRegistration[] pollers = _pollers;
            var grown = new PollerRegistration[pollers.Length + 1];
            pollers.CopyTo(grown, 0);
            grown[^1] = registration;
            Volatile.Write(ref _pollers, grown);
            return registration;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/>(<paramref name="state"/>) on the I/O thread, after the work scheduled
    /// before it (FIFO). Any thread may call it, including the I/O thread; work scheduled before
    /// <see cref="Start"/> runs once the thread starts. It does not allocate in steady state.
    /// </summary>
    /// <param name="work">The call to make on the I/O thread.</param>
    /// <param name="state">Passed to <paramref name="work"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is null.</exception>
    /// <exception cref="InvalidOperationException">The thread has been stopped.</exception>
    public void Schedule(Action<object?> work, object? state)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (!TrySchedule(work, state))
        {
            throw new InvalidOperationException($"I/O thread {_name} has stopped; it accepts no more work.");
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on this I/O thread and waits for it: inline when called on the
    /// thread itself, otherwise scheduled (FIFO, as <see cref="Schedule"/>) and waited for at most
    /// <paramref name="timeout"/>. For control-plane hand-overs (quiescing a queue, moving a notifier),
    /// not for the hot path: it allocates a wait handle. Any thread may call it.
    /// </summary>
    /// <param name="work">The call to make on the I/O thread.</param>
    /// <param name="state">Passed to <paramref name="work"/>.</param>
    /// <param name="timeout">How long to wait for the thread to run it.</param>
    /// <returns>
    /// <see cref="IoThreadRunResult.Ran"/> when it ran; <see cref="IoThreadRunResult.Stopped"/> when the
    /// thread accepts no more work (nothing ran, no exception: the caller may now do the work itself,
    /// as nothing runs on the thread any more); <see cref="IoThreadRunResult.TimedOut"/> when it did not
    /// finish in time (it is still queued or running and may yet run).
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="work"/> is null.</exception>
    public IoThreadRunResult RunAndWait(Action<object?> work, object? state, TimeSpan timeout) =>
        RunAndWaitOrCancel(work, state, timeout, CancellationToken.None);

    /// <summary>
    /// <see cref="RunAndWait(Action{object?}, object?, TimeSpan)"/> whose wait also ends when
    /// <paramref name="cancellationToken"/> is cancelled; a cancelled wait returns
    /// <see cref="IoThreadRunResult.TimedOut"/> (the work may yet run). Any thread.
    /// </summary>
    internal IoThreadRunResult RunAndWaitOrCancel(Action<object?> work, object? state, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (IsCurrentThread)
        {
            work(state);
            return IoThreadRunResult.Ran;
        }

        // Not disposed on a timeout: the work may still run and set it later.
        var call = new IoThreadCall(work, state);
        if (!TrySchedule(IoThreadCall.Run, call))
        {
            return IoThreadRunResult.Stopped;
        }

        try
        {
            return call.Done.Wait(timeout, cancellationToken) ? IoThreadRunResult.Ran : IoThreadRunResult.TimedOut;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return IoThreadRunResult.TimedOut;
        }
    }

    private bool TrySchedule(Action<object?> work, object? state)
    {
        lock (_gate)
        {
            if (!_acceptingWork)
            {
                return false;
            }

            _pending.Enqueue(new WorkItem(work, state));

            // One eventfd write per batch: the loop clears the flag before it takes the queue.
            if (Interlocked.Exchange(ref _wakeRequested, 1) == 0)
            {
                _wake.Signal();
            }

            return true;
        }
    }

    internal void Unregister(FdRegistration registration)
    {
        lock (_gate)
        {
            if (!registration.Deactivate())
            {
                return;
            }

            if (_state != State.Disposed)
            {
                unsafe
                {
                    // SAFETY: EPOLL_CTL_DEL reads no event (a null pointer is allowed since Linux 2.6.9);
                    // the registration's reference on the handle, released below, keeps the fd open.
                    _ = LibC.epoll_ctl((int)_epoll.DangerousGetHandle(), LibC.EPOLL_CTL_DEL, (int)registration.Handle.DangerousGetHandle(), null);
                }

                _slots[registration.Slot] = null;
            }

            registration.Handle.DangerousRelease();
        }
    }

    internal void Unregister(PollerRegistration registration)
    {
        lock (_gate)
        {
            PollerRegistration[] pollers = _pollers;
            int index = Array.IndexOf(pollers, registration);
            if (index < 0)
            {
                return;
            }

            var shrunk = new PollerRegistration[pollers.Length - 1];
            Array.Copy(pollers, 0, shrunk, 0, index);
            Array.Copy(pollers, index + 1, shrunk, index, pollers.Length - index - 1);
            Volatile.Write(ref _pollers, shrunk);
        }
    }

    private int FindFreeSlot()
    {
        FdRegistration?[] slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            if (slots[i] is null)
            {
                return i;
            }
        }

        // Grow copy-on-write: the loop may be reading the old array, whose entries stay valid because
        // each registration carries its own active flag.
        var grown = new FdRegistration?[slots.Length * 2];
        slots.CopyTo(grown, 0);
        Volatile.Write(ref _slots, grown);
        return slots.Length;
    }

    private unsafe void AddToEpoll(SafeHandle handle, ulong token)
    {
        epoll_event ev = default;
        ev.events = LibC.EPOLLIN;
        ev.data.u64 = token;

        // SAFETY: `ev` is a local that outlives the call and the kernel copies it; the caller holds a
        // reference on `handle` (DangerousAddRef or ownership), so its fd number is not reused meanwhile.
        int rc = LibC.epoll_ctl((int)_epoll.DangerousGetHandle(), LibC.EPOLL_CTL_ADD, (int)handle.DangerousGetHandle(), &ev);
        if (rc < 0)
        {
            NativeError.ThrowIOException("epoll_ctl(EPOLL_CTL_ADD)", LibC.errno);
        }
    }

    private unsafe void Run()
    {
        Log.IoThreadStarted(_logger, _name);
        bool added = false;
        _epoll.DangerousAddRef(ref added);
        try
        {
            int epfd = (int)_epoll.DangerousGetHandle();

            // SAFETY: `_events` is allocated pinned, so the address stays valid for the loop's lifetime.
            fixed (epoll_event* events = _events)
            {
                while (!_stopRequested)
                {
                    long ceiling = Volatile.Read(ref _pollingTicks);
                    bool adaptive = ceiling > 0 && Volatile.Read(ref _pollers).Length > 0;
                    long turnStart = adaptive ? Stopwatch.GetTimestamp() : 0;
                    int timeout = adaptive && PollBeforeSleeping(turnStart) ? 0 : -1;

                    // SAFETY: `events` points at MaxEventsPerWait pinned entries, all the kernel may write;
                    // the reference taken above keeps `epfd` open until the loop exits.
                    int ready = LibC.epoll_wait(epfd, events, MaxEventsPerWait, timeout);
                    if (adaptive)
                    {
                        _window.Adjust(Stopwatch.GetTimestamp() - turnStart, ceiling);
                    }
                    else
                    {
                        _window.Adjust(0, 0);
                    }

                    if (ready < 0)
                    {
                        int errno = LibC.errno;
                        if (errno == LibC.EINTR)
                        {
                            continue;
                        }

                        Log.EpollWaitFailed(_logger, _name, errno);
                        break;
                    }

                    CoreMetrics.IoThreadWakeups.Add(1);
                    for (int i = 0; i < ready; i++)
                    {
                        Dispatch(events[i].data.u64);
                    }
                }
            }

            lock (_gate)
            {
                _acceptingWork = false;
            }

            RunScheduledWork();
        }
        finally
        {
            if (added)
            {
                _epoll.DangerousRelease();
            }

            Log.IoThreadStopped(_logger, _name);
        }
    }

    private void Dispatch(ulong token)
    {
        if (token == WakeToken)
        {
            _wake.TryConsume(out _);
            RunScheduledWork();
            return;
        }

        int slot = (int)(uint)token - 1;
        FdRegistration?[] slots = Volatile.Read(ref _slots);
        if ((uint)slot >= (uint)slots.Length)
        {
            return;
        }

        FdRegistration? registration = Volatile.Read(ref slots[slot]);

        // The token check drops a stale event for a slot that was unregistered and reused within one batch.
        if (registration is null || registration.Token != token || !registration.IsActive)
        {
            return;
        }

        try
        {
            registration.Handler(registration.State);
        }
        catch (Exception exception)
        {
            CoreMetrics.IoThreadCallbackFailures.Add(1);
            Log.HandlerFailed(_logger, _name, exception);
        }
    }

    private void RunScheduledWork()
    {
        // Clear the flag before taking the queue (the lock is a full fence): work scheduled after this
        // point signals the eventfd again, so it is never left waiting for an unrelated wakeup.
        Volatile.Write(ref _wakeRequested, 0);
        Queue<WorkItem> batch;
        lock (_gate)
        {
            batch = _pending;
            _pending = _running;
            _running = batch;
        }

        while (batch.TryDequeue(out WorkItem item))
        {
            try
            {
                item.Work(item.State);
            }
            catch (Exception exception)
            {
                CoreMetrics.IoThreadCallbackFailures.Add(1);
                Log.ScheduledWorkFailed(_logger, _name, exception);
            }
        }
    }

    /// <summary>
    /// Calls the pollers until one finds work, work is scheduled, a stop is asked for, or the window
    /// (<see cref="_window"/>) has passed since <paramref name="turnStart"/>.
    /// </summary>
    /// <returns>True if the loop should not sleep in epoll_wait this time.</returns>
    private bool PollBeforeSleeping(long turnStart)
    {
        long window = _window.Ticks;
        if (window <= 0)
        {
            return false;
        }

        long deadline = turnStart + window;
        long now;
        bool found = false;
        bool hit = false;
        do
        {
            PollerRegistration[] pollers = Volatile.Read(ref _pollers);
            foreach (PollerRegistration poller in pollers)
            {
                try
                {
                    hit |= poller.Poll();
                }
                catch (Exception exception)
                {
                    CoreMetrics.IoThreadCallbackFailures.Add(1);
                    Log.PollerFailed(_logger, _name, exception);
                }
            }

            now = Stopwatch.GetTimestamp();

            // Scheduled work or a stop request arrived: let epoll_wait see the wake fd at once.
            if (hit || Volatile.Read(ref _wakeRequested) != 0 || _stopRequested)
            {
                found = true;
                break;
            }
        }
        while (now < deadline);

        long spent = now - turnStart;
        Volatile.Write(ref _pollingTicksSpent, _pollingTicksSpent + spent);
        CoreMetrics.IoThreadPollingTime.Add((double)spent / Stopwatch.Frequency);
        if (hit)
        {
            CoreMetrics.IoThreadPollHits.Add(1);
        }

        return found;
    }
}
