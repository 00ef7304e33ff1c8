using System;
using BenchmarkDotNet.Attributes;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;

namespace Virtio.Benchmarks;

/// <summary>
/// A burst of 32 completions, each raising a used-buffer interrupt, with and without a
/// <see cref="DeferredCalls"/> section around the burst: without one the guest gets 32 interrupts
/// (32 eventfd writes), with one it gets 1. Each method returns the interrupts of its burst;
/// <see cref="Setup"/> checks they are 32 and 1 before anything is measured.
/// </summary>
/// <remarks>
/// The EventFd pair measures the real cost (one write(2) per interrupt); the callback pair isolates
/// the bookkeeping of Defer and End. Expect 0 B allocated everywhere.
/// </remarks>
[MemoryDiagnoser]
public class DeferredCallsBenchmarks
{
    private const int Burst = 32;

    private static readonly Action<object?> s_notify =
        static state => ((IGuestNotifier)state!).Notify(InterruptReason.UsedBuffer, 0);

    private EventFd _irqfd = null!;
    private EventFdGuestNotifier _eventFdNotifier = null!;
    private CallbackGuestNotifier _callbackNotifier = null!;
    private long _callbackInterrupts;

    [GlobalSetup]
    public void Setup()
    {
        _irqfd = EventFd.Create();
        _eventFdNotifier = new EventFdGuestNotifier(_irqfd);
        _callbackNotifier = new CallbackGuestNotifier((_, _) => _callbackInterrupts++);

        Expect(Burst, EventFdNoSection());
        Expect(1, EventFdInSection());
        Expect(Burst, CallbackNoSection());
        Expect(1, CallbackInSection());
    }

    [GlobalCleanup]
    public void Cleanup() => _irqfd.Dispose();

    /// <summary>32 completions, each signalling the irqfd at once.</summary>
    [Benchmark(Baseline = true)]
    public ulong EventFdNoSection()
    {
        for (int i = 0; i < Burst; i++)
        {
            _eventFdNotifier.Notify(InterruptReason.UsedBuffer, 0);
        }

        return ConsumeInterrupts();
    }

    /// <summary>32 completions inside one section: the irqfd is signalled once, at its end.</summary>
    [Benchmark]
    public ulong EventFdInSection()
    {
        using (DeferredCalls.Section())
        {
            for (int i = 0; i < Burst; i++)
            {
                _eventFdNotifier.Notify(InterruptReason.UsedBuffer, 0);
            }
        }

        return ConsumeInterrupts();
    }

    /// <summary>32 completions through a deferred callback notifier, outside any section: 32 callbacks.</summary>
    [Benchmark]
    public ulong CallbackNoSection()
    {
        _callbackInterrupts = 0;
        for (int i = 0; i < Burst; i++)
        {
            DeferredCalls.Defer(s_notify, _callbackNotifier);
        }

        return (ulong)_callbackInterrupts;
    }

    /// <summary>The same inside one section: 1 callback.</summary>
    [Benchmark]
    public ulong CallbackInSection()
    {
        _callbackInterrupts = 0;
        using (DeferredCalls.Section())
        {
            for (int i = 0; i < Burst; i++)
            {
                DeferredCalls.Defer(s_notify, _callbackNotifier);
            }
        }

        return (ulong)_callbackInterrupts;
    }

    private static void Expect(ulong expected, ulong actual)
    {
        if (expected != actual)
        {
            throw new InvalidOperationException($"Expected {expected} interrupts per burst, saw {actual}.");
        }
    }

    private ulong ConsumeInterrupts() => _irqfd.TryConsume(out ulong count) ? count : 0;
}
