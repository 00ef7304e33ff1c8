using System;
using System.Collections.Generic;
using System.Linq;
using Microsoft.Extensions.Logging;
using Virtio.Core.Threading;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Threading;

public sealed class DeferredCallsTests
{
    private static readonly Action<object?> s_append = static state => ((Probe)state!).Calls++;

    [Fact]
    public void Defer_SamePairTenTimesInASection_RunsOnceAtEnd()
    {
        var probe = new Probe();
        using (DeferredCalls.Section())
        {
            for (int i = 0; i < 10; i++)
            {
                DeferredCalls.Defer(s_append, probe);
            }

            Assert.Equal(0, probe.Calls);
        }

        Assert.Equal(1, probe.Calls);
        Assert.False(DeferredCalls.IsInSection);
    }

    [Fact]
    public void Defer_SameActionWithDifferentStates_RunsForEachState()
    {
        var first = new Probe();
        var second = new Probe();
        using (DeferredCalls.Section())
        {
            DeferredCalls.Defer(s_append, first);
            DeferredCalls.Defer(s_append, second);
            DeferredCalls.Defer(s_append, first);
        }

        Assert.Equal(1, first.Calls);
        Assert.Equal(1, second.Calls);
    }

    [Fact]
    public void End_OfInnerSection_DoesNotRun_OutermostEndDoes()
    {
        var probe = new Probe();
        DeferredCalls.Begin();
        DeferredCalls.Begin();
        DeferredCalls.Defer(s_append, probe);
        DeferredCalls.End();
        Assert.Equal(0, probe.Calls);
        Assert.True(DeferredCalls.IsInSection);

        DeferredCalls.End();
        Assert.Equal(1, probe.Calls);
    }

    [Fact]
    public void Defer_OutsideASection_RunsAtOnce()
    {
        var probe = new Probe();
        DeferredCalls.Defer(s_append, probe);
        DeferredCalls.Defer(s_append, probe);

        Assert.Equal(2, probe.Calls);
    }

    [Fact]
    public void End_RunsInTheOrderFirstDeferred()
    {
        var order = new List<int>();
        Action<object?> record = state => order.Add((int)state!);
        object one = 1, two = 2, three = 3;
        using (DeferredCalls.Section())
        {
            DeferredCalls.Defer(record, two);
            DeferredCalls.Defer(record, one);
            DeferredCalls.Defer(record, two);
            DeferredCalls.Defer(record, three);
        }

        Assert.Equal([2, 1, 3], order);
    }

    [Fact]
    public void End_WhenADeferredCallThrows_LogsItAndRunsTheOthers()
    {
        var logger = new CapturingLogger();
        var before = new Probe();
        var after = new Probe();
        using (DeferredCalls.Section(logger))
        {
            DeferredCalls.Defer(s_append, before);
            DeferredCalls.Defer(static _ => throw new InvalidOperationException("boom"), null);
            DeferredCalls.Defer(s_append, after);
        }

        Assert.Equal(1, before.Calls);
        Assert.Equal(1, after.Calls);
        var entry = Assert.Single(logger.Entries);
        Assert.Equal(LogLevel.Error, entry.Level);
        Assert.Equal("boom", entry.Exception?.Message);
    }

    [Fact]
    public void Defer_WhenFull_RunsAtOnceInsteadOfDropping()
    {
        Probe[] probes = Enumerable.Range(0, DeferredCalls.MaxPending + 1).Select(_ => new Probe()).ToArray();
        using (DeferredCalls.Section())
        {
            foreach (Probe probe in probes)
            {
                DeferredCalls.Defer(s_append, probe);
            }

            Assert.Equal(0, probes[0].Calls);
            Assert.Equal(1, probes[^1].Calls);
        }

        Assert.All(probes, probe => Assert.Equal(1, probe.Calls));
    }

    [Fact]
    public void Defer_FromADeferredCallInsideANewSection_RunsBeforeTheOuterEndReturns()
    {
        var inner = new Probe();
        Action<object?> outer = _ =>
        {
            using (DeferredCalls.Section())
            {
                DeferredCalls.Defer(s_append, inner);
            }
        };

        using (DeferredCalls.Section())
        {
            DeferredCalls.Defer(outer, null);
        }

        Assert.Equal(1, inner.Calls);
        Assert.False(DeferredCalls.IsInSection);
    }

    [Fact]
    public void End_WithoutBegin_Throws() =>
        Assert.Throws<InvalidOperationException>(DeferredCalls.End);

    private sealed class Probe
    {
        public int Calls;
    }
}
