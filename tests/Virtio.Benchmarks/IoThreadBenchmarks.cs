using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;

namespace Virtio.Benchmarks;

/// <summary>
/// Latency from an eventfd signal (what KVM does on a guest's queue notify) to the handler on the
/// <see cref="IoThread"/>, measured as a round trip: the benchmark thread signals, the handler consumes
/// and sets an event, the benchmark thread wakes. Also the same trip for <see cref="IoThread.Schedule"/>.
/// Both with the loop sleeping in epoll_wait (<see cref="PollingMicroseconds"/> = 0) and with adaptive
/// polling (<see cref="IoThread.PollingDuration"/> = 50 us and a registered poller).
/// </summary>
/// <remarks>
/// Two jobs: <c>Throughput</c> averages many round trips per iteration (the mean cost), and
/// <c>PerRoundTrip</c> times one round trip per iteration, so its Median and P99 columns are the
/// latency distribution of single wakeups, including the cost of the I/O thread leaving epoll_wait.
/// Expect 0 B allocated in both.
/// <para>
/// The poller is honest: it finds the kick itself, from a volatile flag the benchmark thread sets just
/// before it signals the eventfd (as a real poller reads the avail ring's index before the guest's
/// ioeventfd kick arrives). Whoever claims the flag first, poller or eventfd handler, drains the
/// eventfd and completes the round trip; the other sees the flag clear and does nothing. Polling also
/// helps <see cref="ScheduleToWorkItemRoundTrip"/>: the polling loop watches the scheduling flag and
/// stops at once when work arrives. The CPU the polling costs is not in BenchmarkDotNet's columns:
/// <see cref="Cleanup"/> prints a <c>CpuCheck</c> line with the process CPU time per round trip
/// (<see cref="Process.TotalProcessorTime"/> delta over all round trips made in the process, warmup
/// included) next to the wall time per round trip.
/// </para>
/// </remarks>
[MemoryDiagnoser]
[Config(typeof(LatencyConfig))]
[SuppressMessage("Design", "CA1001:Types that own disposable fields should be disposable", Justification = "BenchmarkDotNet owns the lifetime: GlobalCleanup disposes them.")]
public class IoThreadBenchmarks
{
    private static readonly Action<object?> s_setDone = static state => ((ManualResetEventSlim)state!).Set();

    private IoThread _ioThread = null!;
    private EventFd _kick = null!;
    private IDisposable _registration = null!;
    private ManualResetEventSlim _done = null!;
    private IDisposable? _poller;

    // 1 between the benchmark thread's kick and whoever claims it (the eventfd handler or the poller).
    private int _kickPending;
    private long _roundTrips;
    private TimeSpan _cpuAtSetup;
    private long _wallAtSetup;

    /// <summary><see cref="IoThread.PollingDuration"/> in microseconds; 0 sleeps in epoll_wait at once.</summary>
    [Params(0, 50)]
    public int PollingMicroseconds { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _ioThread = new IoThread("bench-io");
        _kick = EventFd.Create();
        _done = new ManualResetEventSlim();
        _registration = _ioThread.Register(_kick, OnKick, this);
        if (PollingMicroseconds > 0)
        {
            _ioThread.PollingDuration = TimeSpan.FromMicroseconds(PollingMicroseconds);
            _poller = _ioThread.RegisterPoller(Poll);
        }

        _ioThread.Start();
        _cpuAtSetup = Process.GetCurrentProcess().TotalProcessorTime;
        _wallAtSetup = Stopwatch.GetTimestamp();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        TimeSpan cpu = Process.GetCurrentProcess().TotalProcessorTime - _cpuAtSetup;
        TimeSpan wall = Stopwatch.GetElapsedTime(_wallAtSetup);
        long trips = Math.Max(1, _roundTrips);
        Console.WriteLine(
            $"CpuCheck PollingMicroseconds={PollingMicroseconds}: {trips} round trips, " +
            $"process CPU {cpu.TotalNanoseconds / trips:N0} ns/trip, wall {wall.TotalNanoseconds / trips:N0} ns/trip, " +
            $"busy cores {cpu / wall:N2}");

        _poller?.Dispose();
        _registration.Dispose();
        _ioThread.Dispose();
        _kick.Dispose();
        _done.Dispose();
    }

    /// <summary>Signal the eventfd, wait until its handler (or the poller) on the I/O thread has run.</summary>
    [Benchmark(Baseline = true)]
    public void EventFdSignalToHandlerRoundTrip()
    {
        _roundTrips++;
        Volatile.Write(ref _kickPending, 1);
        _kick.Signal();
        _done.Wait();
        _done.Reset();
    }

    /// <summary>Schedule a work item, wait until it has run on the I/O thread.</summary>
    [Benchmark]
    public void ScheduleToWorkItemRoundTrip()
    {
        _roundTrips++;
        _ioThread.Schedule(s_setDone, _done);
        _done.Wait();
        _done.Reset();
    }

    private static void OnKick(object? state)
    {
        var self = (IoThreadBenchmarks)state!;
        self._kick.TryConsume(out _);
        if (Interlocked.Exchange(ref self._kickPending, 0) == 1)
        {
            self._done.Set();
        }
    }

    private bool Poll()
    {
        if (Volatile.Read(ref _kickPending) == 0 || Interlocked.Exchange(ref _kickPending, 0) == 0)
        {
            return false;
        }

        // Drain the kick so the next epoll_wait does not call OnKick for it. If the signal has not
        // landed yet, OnKick runs later, finds the flag clear and only drains it.
        _kick.TryConsume(out _);
        _done.Set();
        return true;
    }

    private sealed class LatencyConfig : ManualConfig
    {
        public LatencyConfig()
        {
            AddJob(Job.Default.WithId("Throughput"));
            AddJob(Job.Default
                .WithStrategy(RunStrategy.Monitoring)
                .WithInvocationCount(1)
                .WithUnrollFactor(1)
                .WithWarmupCount(200)
                .WithIterationCount(5000)
                .WithId("PerRoundTrip"));
            AddColumn(StatisticColumn.Median, new PercentileColumn(99));
        }
    }

    /// <summary>A percentile BenchmarkDotNet has no built-in column for (it stops at P95).</summary>
    private sealed class PercentileColumn(int percentile) : IColumn
    {
        public string Id => $"{nameof(PercentileColumn)}.P{percentile}";

        public string ColumnName => $"P{percentile} [ns]";

        public bool AlwaysShow => true;

        public ColumnCategory Category => ColumnCategory.Statistics;

        public int PriorityInCategory => 10;

        public bool IsNumeric => true;

        public UnitType UnitType => UnitType.Dimensionless;

        public string Legend => $"{percentile}th percentile of the measured time per operation, in nanoseconds";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
            GetValue(summary, benchmarkCase, summary.Style);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var statistics = summary[benchmarkCase]?.ResultStatistics;
            return statistics is null
                ? "NA"
                : statistics.Percentiles.Percentile(percentile).ToString("N1", style.CultureInfo);
        }

        public bool IsAvailable(Summary summary) => true;

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    }
}
