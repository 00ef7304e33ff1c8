using System;
using System.Threading;
using Virtio.Core.Threading;
using Virtio.VhostUser.Tests.FrontEnd;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>A ring served by a polling I/O thread (the daemon's poll-us): buffers are found by looking at the ring, not only by the kick.</summary>
public sealed class PollingTests
{
    [Fact]
    public void PollingIoThread_ServesARequestMadeAvailableWithoutAKick()
    {
        // A ceiling far above the test's pace, so the window, once grown, covers the gap between requests.
        using var io = new IoThread("vhost-poll-test") { PollingDuration = TimeSpan.FromSeconds(2) };
        io.Start();
        using var rig = new BlkServerRig(ioThreads: [io]);
        using var client = new BlkFrontEndClient(rig.SocketPath);
        client.Start();
        byte[] pattern = BlkServerRig.Pattern(4096, 5);
        Assert.Equal(0, client.Request(BlkFrontEndClient.Out, 8, writeData: pattern).Status);

        // Kicked requests 20 ms apart: the I/O thread's waits, far below the ceiling, grow the window
        // from 4 us until it covers them (it grows only as far as the gaps need).
        for (int i = 0; i < 40; i++)
        {
            Thread.Sleep(20); // pacing, not waiting for anything: the window grows past 20 ms, so a loaded machine's scheduling delays stay inside it
            Assert.Equal(0, client.Request(BlkFrontEndClient.In, 8, readLength: 4096).Status);
        }

        Assert.NotEqual(TimeSpan.Zero, io.PollingTime);

        // Right after the last completion, while the thread polls, and no kick: only the ring's poller
        // can find this one.
        (byte status, byte[] data) = client.Request(BlkFrontEndClient.In, 8, readLength: 4096, kick: false);

        Assert.Equal(0, status);
        Assert.Equal(pattern, data);
    }
}
