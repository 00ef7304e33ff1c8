using System;
using System.Threading;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Core.Tests.Threading;

/// <summary>IoThread.RunAndWait: inline on the thread, scheduled from another, a stopped thread, a timeout.</summary>
public sealed class IoThreadRunAndWaitTests
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);

    [Fact]
    public void FromAnotherThread_RunsOnTheIoThread()
    {
        using var thread = new IoThread("run-wait");
        thread.Start();
        bool onThread = false;
        IoThreadRunResult result = thread.RunAndWait(_ => onThread = thread.IsCurrentThread, null, Long);
        Assert.Equal(IoThreadRunResult.Ran, result);
        Assert.True(onThread);
    }

    [Fact]
    public void OnTheIoThread_RunsInline()
    {
        using var thread = new IoThread("run-wait-inline");
        thread.Start();
        IoThreadRunResult inner = IoThreadRunResult.TimedOut;
        int depth = 0;
        IoThreadRunResult outer = thread.RunAndWait(
            _ => inner = thread.RunAndWait(_ => depth++, null, TimeSpan.Zero), // a scheduled call would deadlock here
            null,
            Long);
        Assert.Equal(IoThreadRunResult.Ran, outer);
        Assert.Equal(IoThreadRunResult.Ran, inner);
        Assert.Equal(1, depth);
    }

    [Fact]
    public void StoppedThread_ReturnsStoppedWithoutRunning()
    {
        using var thread = new IoThread("run-wait-stopped");
        thread.Start();
        thread.Stop();
        bool ran = false;
        IoThreadRunResult result = thread.RunAndWait(_ => ran = true, null, Long);
        Assert.Equal(IoThreadRunResult.Stopped, result);
        Assert.False(ran);
    }

    [Fact]
    public void WorkThatDoesNotFinish_TimesOut_ThenStillRuns()
    {
        using var thread = new IoThread("run-wait-timeout");
        thread.Start();
        using var gate = new ManualResetEventSlim();
        using var finished = new ManualResetEventSlim();
        IoThreadRunResult result = thread.RunAndWait(
            _ =>
            {
                gate.Wait();
                finished.Set();
            },
            null,
            TimeSpan.FromMilliseconds(50));
        Assert.Equal(IoThreadRunResult.TimedOut, result);
        gate.Set();
        Assert.True(finished.Wait(Long, TestContext.Current.CancellationToken)); // the late completion sets an undisposed signal: no crash on the I/O thread
        Assert.Equal(IoThreadRunResult.Ran, thread.RunAndWait(_ => { }, null, Long));
    }
}
