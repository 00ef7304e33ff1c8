using System;
using System.Collections.Generic;

namespace Virtio.Bench.Net;

/// <summary>What one boot measured.</summary>
/// <param name="BackEnd">The back end.</param>
/// <param name="SendGbps">iperf3 TCP guest to host, receiver side, Gbit/s.</param>
/// <param name="ReceiveGbps">iperf3 TCP host to guest (-R), receiver side, Gbit/s.</param>
/// <param name="PingRtts">Round-trip times in ms, the ARP-resolving first one left out.</param>
/// <param name="BackEndCpuSeconds">Our daemon's utime+stime during the two iperf3 runs; NaN for QEMU's tap.</param>
/// <param name="QemuCpuSeconds">QEMU's utime+stime during the two iperf3 runs (guest emulation included).</param>
/// <param name="ConsoleLog">The guest console's log file.</param>
internal sealed record NetBootResult(
    NetBackEnd BackEnd,
    double SendGbps,
    double ReceiveGbps,
    IReadOnlyList<double> PingRtts,
    double BackEndCpuSeconds,
    double QemuCpuSeconds,
    string ConsoleLog)
{
    /// <summary>Mean round-trip time, ms.</summary>
    public double PingAverage => Statistics.Mean(PingRtts);

    /// <summary>Median round-trip time, ms.</summary>
    public double PingMedian => Statistics.Median(PingRtts);

    /// <summary>Back end plus QEMU (for QEMU's tap, QEMU alone: its back end runs inside it).</summary>
    public double TotalCpuSeconds => double.IsNaN(BackEndCpuSeconds) ? QemuCpuSeconds : BackEndCpuSeconds + QemuCpuSeconds;
}
