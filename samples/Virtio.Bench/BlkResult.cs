namespace Virtio.Bench;

/// <summary>What one run measured. CPU figures are microseconds per completed request; NaN when unknown.</summary>
internal sealed record BlkResult(
    long Completed,
    double Seconds,
    int BlockSize,
    double MeanMicroseconds,
    double P50Microseconds,
    double P99Microseconds,
    long Kicks,
    long Calls,
    double BackendCpuMicroseconds,
    double OwnCpuMicroseconds,
    long AllocatedInLoop,
    long Errors,
    long EmptyPolls)
{
    public double Iops => Completed / Seconds;

    public double MiBps => Iops * BlockSize / (1024.0 * 1024.0);

    public double KicksPerRequest => Completed == 0 ? 0 : (double)Kicks / Completed;

    public double CallsPerRequest => Completed == 0 ? 0 : (double)Calls / Completed;

    /// <summary>Passes over the used ring that found nothing, per request: above 0, the generator waited for the back end.</summary>
    public double EmptyPollsPerRequest => Completed == 0 ? 0 : (double)EmptyPolls / Completed;
}
