using System;
using System.Collections.Generic;
using System.IO;

namespace Virtio.Bench;

/// <summary>
/// Runs every case against every back end once per round, the back ends in an order that rotates
/// each round (so none always runs first: warm caches, turbo), and logs each run to stderr.
/// </summary>
internal static class InterleavedRounds
{
    public static RoundResults Run(IReadOnlyList<BackEndProcess> backEnds, IReadOnlyList<BenchCase> cases, int rounds, double seconds, int blockSize)
    {
        var results = new RoundResults();
        for (int round = 0; round < rounds; round++)
        {
            foreach (BenchCase c in cases)
            {
                for (int i = 0; i < backEnds.Count; i++)
                {
                    BackEndProcess b = backEnds[(i + round) % backEnds.Count];
                    var options = new BlkOptions(b.SocketPath, c.QueueDepth, blockSize, c.Pattern, seconds, c.Mode, Verify: false, SizeMiB: 0, BackendPid: b.ProcessId);
                    BlkResult r = BlkLoad.Run(options, TextWriter.Null);
                    Console.Error.WriteLine($"round {round + 1}/{rounds} {Program.Name(c.Mode)} qd{c.QueueDepth} {Program.Name(c.Pattern)} {b.Name}: {r.Iops:F0} IOPS, backend {r.BackendCpuMicroseconds:F1} us/req, bench {r.OwnCpuMicroseconds:F2} us/req, kicks/req {r.KicksPerRequest:F3}, empty polls/req {r.EmptyPollsPerRequest:F2}{(r.Errors > 0 ? $", {r.Errors} ERRORS" : "")}");
                    results.Add(c, b.Name, r);
                }
            }
        }

        return results;
    }
}
