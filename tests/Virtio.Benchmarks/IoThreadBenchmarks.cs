using System;
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
/// </summary>
/// <remarks>
/// Two jobs: <c>Throughput</c> averages many round trips per iteration (the mean cost), and
/// <c>PerRoundTrip</c> times one round trip per iteration, so its Median and P99 columns are the
/// latency distribution of single wakeups, including the cost of the I/O thread leaving epoll_wait.
/// Expect 0 B allocated in both.
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

    [GlobalSetup]
    public void Setup()
    {
        _ioThread = new IoThread("bench-io");
        _kick = EventFd.Create();
        _done = new ManualResetEventSlim();
        _registration = _ioThread.Register(_kick, OnKick, this);
        _ioThread.Start();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _registration.Dispose();
        _ioThread.Dispose();
        _kick.Dispose();
        _done.Dispose();
    }

    /// <summary>Signal the eventfd, wait until its handler on the I/O thread has run.</summary>
    [Benchmark(Baseline = true)]
    public void EventFdSignalToHandlerRoundTrip()
    {
        _kick.Signal();
        _done.Wait();
        _done.Reset();
    }

    /// <summary>Schedule a work item, wait until it has run on the I/O thread.</summary>
    [Benchmark]
    public void ScheduleToWorkItemRoundTrip()
    {
        _ioThread.Schedule(s_setDone, _done);
        _done.Wait();
        _done.Reset();
    }

    private static void OnKick(object? state)
    {
        var self = (IoThreadBenchmarks)state!;
        self._kick.TryConsume(out _);
        self._done.Set();
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
