using System;
using System.Diagnostics;
using System.Threading;
using Virtio.VhostUser.FrontEnd;

namespace Virtio.Bench.Soak;

/// <summary>A load thread's connections, one after another, until the deadline or a stop.</summary>
internal static class ConnectionLoop
{
    /// <param name="connect">Makes and sets up the next connection.</param>
    /// <param name="serve">Runs it and ends it (cleanly or abruptly).</param>
    /// <param name="deadline">Stopwatch ticks after which no connection starts.</param>
    /// <param name="connected">Set once the first connection is up (the daemon's pid is known).</param>
    /// <param name="stop">Stops the loop early.</param>
    public static void Run(Func<VhostUserFrontEnd> connect, Action<VhostUserFrontEnd> serve, long deadline, ManualResetEventSlim connected, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested && Stopwatch.GetTimestamp() < deadline)
        {
            using VhostUserFrontEnd frontEnd = connect();
            connected.Set();
            serve(frontEnd);
        }
    }
}
