using BenchmarkDotNet.Running;

namespace Virtio.Benchmarks;

/// <summary>
/// Runs the benchmarks BenchmarkDotNet's command line selects, for example
/// <c>dotnet run -c Release --project tests/Virtio.Benchmarks -- --filter '*SplitVirtqueue*' --job short</c>,
/// or the KVM doorbell measurement (a guest loop, not a BenchmarkDotNet benchmark):
/// <c>dotnet run -c Release --project tests/Virtio.Benchmarks -- doorbell [iterations]</c>.
/// </summary>
public static class Program
{
    /// <summary>The entry point.</summary>
    /// <param name="args">BenchmarkDotNet arguments (--filter, --job, --list flat, ...), or "doorbell [iterations]".</param>
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "doorbell")
        {
            Kvm.DoorbellMeasurement.Run(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200_000);
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
