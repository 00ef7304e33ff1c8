using System;
using System.Diagnostics.CodeAnalysis;
using Virtio.Core.Queues;

namespace Virtio.Benchmarks.Queues;

/// <summary>
/// The checks around a queue round-trip benchmark, outside the timed code: the setup round trip,
/// the queue's state at cleanup, and an allocation count from the thread's GC counter (a second
/// look next to [MemoryDiagnoser]). Used by <see cref="PackedVirtqueueBenchmarks"/>.
/// </summary>
internal static class RoundTripChecks
{
    /// <summary>Throws unless one untimed batch asked for interrupts and left the queue healthy and empty.</summary>
    /// <param name="notifications">What the batch returned.</param>
    /// <param name="queue">The device queue.</param>
    public static void AfterSetup(int notifications, SplitVirtqueue queue)
    {
        if (notifications == 0 || queue.Error != QueueError.None || queue.InFlightCount != 0)
        {
            throw new InvalidOperationException($"The setup round trip failed: {queue.Error}.");
        }
    }

    /// <summary>Throws when the queue broke while BenchmarkDotNet ran it.</summary>
    /// <param name="error">The queue's error, read before its memory was released.</param>
    public static void AfterRun(QueueError error)
    {
        if (error != QueueError.None)
        {
            throw new InvalidOperationException($"The queue broke during the run: {error}.");
        }
    }

    /// <summary>Runs <paramref name="batch"/> to warm up, then again counting the bytes this thread allocates, and prints them.</summary>
    /// <param name="label">Names the case in the output.</param>
    /// <param name="batch">One benchmark invocation.</param>
    /// <param name="roundTripsPerBatch">Round trips per invocation, for the printed total.</param>
    public static void ReportAllocations(string label, Func<int> batch, int roundTripsPerBatch)
    {
        const int Rounds = 2000;
        for (int i = 0; i < Rounds; i++)
        {
            batch();
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Rounds; i++)
        {
            batch();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Console.WriteLine($"AllocationCheck {label}: {allocated} B over {Rounds * roundTripsPerBatch} round trips");
    }

    /// <summary>Fails the benchmark from the timed code, where a throw statement would not inline.</summary>
    /// <param name="what">What went wrong.</param>
    [DoesNotReturn]
    public static void Fail(string what) =>
        throw new InvalidOperationException($"Round trip failed: {what}.");
}
