using BenchmarkDotNet.Running;

namespace Virtio.Benchmarks;

/// <summary>
/// Runs the benchmarks BenchmarkDotNet's command line selects, for example
/// <c>dotnet run -c Release --project tests/Virtio.Benchmarks -- --filter '*SplitVirtqueue*' --job short</c>.
/// The KVM doorbell measurement (a guest loop, not a BenchmarkDotNet benchmark) lives in the sample VMM:
/// <c>dotnet run -c Release --project samples/Virtio.Vmm -- bench doorbell</c>.
/// </summary>
public static class Program
{
    /// <summary>The entry point.</summary>
    /// <param name="args">BenchmarkDotNet arguments (--filter, --job, --list flat, ...).</param>
    public static void Main(string[] args)
    {
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
