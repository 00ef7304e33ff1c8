using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Threading;

public sealed class IoThreadTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public void Handler_RunsOnTheIoThread()
    {
        using var io = StartedIoThread();
        using var eventFd = EventFd.Create();
        using var called = new ManualResetEventSlim();
        bool onIoThread = false;
        string? threadName = null;

        using IDisposable registration = io.Register(eventFd, _ =>
        {
            eventFd.TryConsume(out ulong _);
            onIoThread = io.IsCurrentThread;
            threadName = Thread.CurrentThread.Name;
            called.Set();
        }, null);
        eventFd.Signal();

        Assert.True(called.Wait(Timeout, TestContext.Current.CancellationToken));
        Assert.True(onIoThread);
        Assert.Equal(io.Name, threadName);
        Assert.False(io.IsCurrentThread);
    }

    [Fact]
    public void Signal_FromAnotherThread_WakesTheHandlerWithItsState()
    {
        using var io = StartedIoThread();
        using var eventFd = EventFd.Create();
        using var called = new ManualResetEventSlim();
        object? seenState = null;
        object expectedState = new();

        using IDisposable registration = io.Register(eventFd, state =>
        {
            eventFd.TryConsume(out ulong _);
            seenState = state;
            called.Set();
        }, expectedState);
        var signaller = new Thread(eventFd.Signal);
        signaller.Start();

        Assert.True(called.Wait(Timeout, TestContext.Current.CancellationToken));
        Assert.Same(expectedState, seenState);
        signaller.Join();
    }

    [Fact]
    public void Schedule_RunsWorkInFifoOrder()
    {
        const int Count = 1000;
        using var io = StartedIoThread();
        using var done = new ManualResetEventSlim();
        var order = new List<int>(Count);
        bool allOnIoThread = true;

        for (int i = 0; i < Count; i++)
        {
            io.Schedule(state =>
            {
                allOnIoThread &= io.IsCurrentThread;
                order.Add((int)state!);
                if (order.Count == Count)
                {
                    done.Set();
                }
            }, i);
        }

        Assert.True(done.Wait(Timeout, TestContext.Current.CancellationToken));
        Assert.True(allOnIoThread);
        for (int i = 0; i < Count; i++)
        {
            Assert.Equal(i, order[i]);
        }
    }

    [Fact]
    public void Schedule_BeforeStart_RunsOnceStarted()
    {
        using var io = new IoThread("io-test-prestart");
        using var done = new ManualResetEventSlim();
        io.Schedule(_ => done.Set(), null);

        io.Start();

        Assert.True(done.Wait(Timeout, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Stop_WhileIdleInEpoll_ReturnsPromptly()
    {
        using var io = StartedIoThread();
        WaitForLoop(io); // the loop has served a wakeup and gone back to sleep with nothing to do

        // The loop sleeps in epoll_wait without a timeout: a stop that failed to wake it would never
        // return. The bound is generous for a loaded CI machine; a working stop takes microseconds.
        var stopwatch = Stopwatch.StartNew();
        var stop = Task.Run(io.Stop, TestContext.Current.CancellationToken);
        await stop.WaitAsync(TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        stopwatch.Stop();
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"Stop took {stopwatch.Elapsed}.");
        Assert.Throws<InvalidOperationException>(() => io.Schedule(_ => { }, null));
    }

    [Fact]
    public void Stop_RunsWorkScheduledBeforeIt()
    {
        using var io = StartedIoThread();
        using var blocker = new ManualResetEventSlim();
        using var blocked = new ManualResetEventSlim();
        bool ran = false;
        CancellationToken cancellation = TestContext.Current.CancellationToken;
        io.Schedule(_ =>
        {
            blocked.Set();
            blocker.Wait(Timeout, cancellation);
        }, null);
        Assert.True(blocked.Wait(Timeout, TestContext.Current.CancellationToken));
        io.Schedule(_ => ran = true, null);

        blocker.Set();
        io.Stop();

        Assert.True(ran);
    }

    [Fact]
    public void Stop_OnTheIoThread_Throws()
    {
        using var io = StartedIoThread();
        using var done = new ManualResetEventSlim();
        Exception? thrown = null;
        io.Schedule(_ =>
        {
            thrown = Record.Exception(io.Stop);
            done.Set();
        }, null);

        Assert.True(done.Wait(Timeout, TestContext.Current.CancellationToken));
        Assert.IsType<InvalidOperationException>(thrown);
    }

    [Fact]
    public void Idle_TheIoThreadUsesNoCpu()
    {
        using var io = StartedIoThread();
        using var eventFd = EventFd.Create();
        using IDisposable registration = io.Register(eventFd, _ => eventFd.TryConsume(out ulong _), null);
        int tid = 0;
        using var gotTid = new ManualResetEventSlim();
        io.Schedule(_ =>
        {
            tid = ProcFs.CurrentThreadId();
            gotTid.Set();
        }, null);
        Assert.True(gotTid.Wait(Timeout, TestContext.Current.CancellationToken));

        TimeSpan before = ProcFs.ThreadCpuTime(tid);
        using var never = new ManualResetEventSlim();
        Assert.False(never.Wait(TimeSpan.FromSeconds(1), TestContext.Current.CancellationToken));
        TimeSpan used = ProcFs.ThreadCpuTime(tid) - before;

        Assert.True(used < TimeSpan.FromMilliseconds(50), $"The idle I/O thread used {used.TotalMilliseconds} ms of CPU in 1 s.");
    }

    [Fact]
    public void Handler_ThatThrows_IsLoggedAndTheLoopKeepsServing()
    {
        var logger = new CapturingLogger();
        using var io = new IoThread("io-test-throws", logger);
        io.Start();
        using var eventFd = EventFd.Create();
        using var secondCall = new ManualResetEventSlim();
        int calls = 0;

        using IDisposable registration = io.Register(eventFd, _ =>
        {
            eventFd.TryConsume(out ulong _);
            if (++calls == 1)
            {
                throw new InvalidOperationException("handler failure");
            }

            secondCall.Set();
        }, null);
        eventFd.Signal();
        WaitForLoop(io);
        eventFd.Signal();

        Assert.True(secondCall.Wait(Timeout, TestContext.Current.CancellationToken));
        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Error && e.Exception?.Message == "handler failure");
    }

    [Fact]
    public void ScheduledWork_ThatThrows_IsLoggedAndLaterWorkRuns()
    {
        var logger = new CapturingLogger();
        using var io = new IoThread("io-test-work-throws", logger);
        io.Start();
        using var done = new ManualResetEventSlim();

        io.Schedule(static _ => throw new InvalidOperationException("work failure"), null);
        io.Schedule(_ => done.Set(), null);

        Assert.True(done.Wait(Timeout, TestContext.Current.CancellationToken));
        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Error && e.Exception?.Message == "work failure");
    }

    [Fact]
    public void Unregister_FromInsideTheHandler_StopsFurtherCalls()
    {
        using var io = StartedIoThread();
        using var eventFd = EventFd.Create();
        using var called = new ManualResetEventSlim();
        int calls = 0;
        IDisposable? registration = null;
        using var registered = new ManualResetEventSlim();

        // Register on the I/O thread itself, so the handler cannot run before `registration` is set.
        io.Schedule(_ =>
        {
            registration = io.Register(eventFd, _ =>
            {
                // Leaves the counter set: level-triggered, the handler would run again if still registered.
                Interlocked.Increment(ref calls);
                registration!.Dispose();
                called.Set();
            }, null);
            registered.Set();
        }, null);
        Assert.True(registered.Wait(Timeout, TestContext.Current.CancellationToken));
        eventFd.Signal();

        Assert.True(called.Wait(Timeout, TestContext.Current.CancellationToken));
        WaitForLoop(io);
        WaitForLoop(io);
        Assert.Equal(1, Volatile.Read(ref calls));
        Assert.True(eventFd.TryConsume(out ulong pending));
        Assert.Equal(1UL, pending);
    }

    [Fact]
    public void Unregister_FromAnotherThread_StopsFurtherCalls()
    {
        using var io = StartedIoThread();
        using var eventFd = EventFd.Create();
        int calls = 0;
        IDisposable registration = io.Register(eventFd, _ =>
        {
            eventFd.TryConsume(out ulong _);
            Interlocked.Increment(ref calls);
        }, null);

        registration.Dispose();
        registration.Dispose();
        eventFd.Signal();
        WaitForLoop(io);

        Assert.Equal(0, Volatile.Read(ref calls));
    }

    [Fact]
    public void Register_ManyFds_EachHandlerGetsItsOwnState()
    {
        const int Count = 40; // more than the initial slot table
        using var io = StartedIoThread();
        var eventFds = new EventFd[Count];
        var registrations = new IDisposable[Count];
        using var all = new CountdownEvent(Count);
        var seen = new int[Count];
        try
        {
            for (int i = 0; i < Count; i++)
            {
                EventFd eventFd = eventFds[i] = EventFd.Create();
                registrations[i] = io.Register(eventFd, state =>
                {
                    int index = (int)state!;
                    eventFds[index].TryConsume(out ulong _);
                    if (Interlocked.Increment(ref seen[index]) == 1)
                    {
                        all.Signal();
                    }
                }, i);
            }

            foreach (EventFd eventFd in eventFds)
            {
                eventFd.Signal();
            }

            Assert.True(all.Wait(Timeout, TestContext.Current.CancellationToken));
        }
        finally
        {
            foreach (IDisposable registration in registrations)
            {
                registration?.Dispose();
            }

            foreach (EventFd eventFd in eventFds)
            {
                eventFd?.Dispose();
            }
        }
    }

    [Fact]
    public void Poller_WithPollingDuration_IsCalledOnTheIoThread()
    {
        using var io = new IoThread("io-test-poll") { PollingDuration = TimeSpan.FromMilliseconds(1) };
        using var polledEnough = new ManualResetEventSlim();
        int polls = 0;
        bool allOnIoThread = true;
        using IDisposable poller = io.RegisterPoller(() =>
        {
            allOnIoThread &= io.IsCurrentThread;
            if (++polls == 10)
            {
                polledEnough.Set();
            }

            return false;
        });
        io.Start();

        // Each wakeup polls for up to 1 ms; keep waking the loop until the poller has run often enough.
        for (int i = 0; i < 1000 && !polledEnough.IsSet; i++)
        {
            WaitForLoop(io);
        }

        Assert.True(polledEnough.IsSet);
        Assert.True(allOnIoThread);
        Assert.Equal(TimeSpan.FromMilliseconds(1), io.PollingDuration);
    }

    [Fact]
    public void Poller_ThatKeepsFindingWork_IsCalledAgainWithoutAnyWakeup()
    {
        using var io = new IoThread("io-test-adaptive") { PollingDuration = TimeSpan.FromSeconds(1) };
        using var reached = new ManualResetEventSlim();
        int hits = 0;
        bool stopWaking = false;
        using IDisposable poller = io.RegisterPoller(() =>
        {
            // Finds work every call once the test stops waking the loop, then runs dry.
            if (!Volatile.Read(ref stopWaking))
            {
                return false;
            }

            if (++hits == 1000)
            {
                reached.Set();
            }

            return hits < 1000;
        });
        io.Start();

        // Wake-ups close together grow the window from zero until the poller runs at all.
        for (int i = 0; i < 1000 && io.PollingTime == TimeSpan.Zero; i++)
        {
            WaitForLoop(io);
        }

        Assert.NotEqual(TimeSpan.Zero, io.PollingTime);
        Volatile.Write(ref stopWaking, true);
        WaitForLoop(io);

        // From here nothing wakes the thread: only polling that found work keeps calling the poller.
        Assert.True(reached.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken), $"the poller ran {Volatile.Read(ref hits)} times, not 1000");
    }

    [Fact]
    public void Poller_WithoutPollingDuration_IsNeverCalled()
    {
        using var io = new IoThread("io-test-no-poll");
        int polls = 0;
        using IDisposable poller = io.RegisterPoller(() =>
        {
            Interlocked.Increment(ref polls);
            return true;
        });
        io.Start();

        for (int i = 0; i < 100; i++)
        {
            WaitForLoop(io);
        }

        Assert.Equal(0, Volatile.Read(ref polls));
        Assert.Equal(TimeSpan.Zero, io.PollingTime);
    }

    [Fact]
    public void Start_Twice_Throws()
    {
        using var io = StartedIoThread();
        Assert.Throws<InvalidOperationException>(io.Start);
    }

    [Fact]
    public void Dispose_WithoutStart_IsFine()
    {
        var io = new IoThread("io-test-never-started");
        io.Schedule(_ => { }, null);
        io.Dispose();
        io.Dispose();

        Assert.Throws<ObjectDisposedException>(() => io.Register(EventFd.Create(), _ => { }, null));
    }

    private static IoThread StartedIoThread()
    {
        var io = new IoThread("io-test");
        io.Start();
        return io;
    }

    /// <summary>Returns once the loop has run a scheduled item: everything it was woken for before is done.</summary>
    private static void WaitForLoop(IoThread io)
    {
        using var done = new ManualResetEventSlim();
        io.Schedule(static state => ((ManualResetEventSlim)state!).Set(), done);
        Assert.True(done.Wait(Timeout, TestContext.Current.CancellationToken));
    }
}
