using System;
using System.Threading;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Core.Tests.Threading;

public sealed class IoThreadStopTimeoutTests
{
    [Fact]
    public void Stop_WithATimeout_ReturnsFalse_WhileAHandlerRuns_ThenTrueOnceItReturned()
    {
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var thread = new IoThread("stop-timeout");
        try
        {
            thread.Start();
            thread.Schedule(_ =>
            {
                entered.Set();
                release.Wait(TimeSpan.FromSeconds(30));
            }, null);
            Assert.True(entered.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

            Assert.False(thread.Stop(TimeSpan.FromMilliseconds(50)));

            release.Set();
            Assert.True(thread.Stop(TimeSpan.FromSeconds(10)));
            Assert.True(thread.Stop(TimeSpan.Zero));
        }
        finally
        {
            release.Set();
            thread.Dispose();
        }

        thread.Dispose();
    }

    [Fact]
    public void Stop_WithATimeout_OnAThreadNeverStarted_ReturnsTrue()
    {
        using var thread = new IoThread("never-started");
        Assert.True(thread.Stop(TimeSpan.Zero));
    }
}
