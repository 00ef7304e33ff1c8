using System;
using System.Diagnostics;
using System.IO;
using System.Linq;

namespace PackageCheck;

/// <summary>
/// PackageCheck DIR [--self-test] [--release]: checks the .nupkg files of DIR and their .snupkg
/// symbol packages (see <see cref="Checker"/>), one line per problem; exits 1 when there is one.
/// --release expects MAJOR.MINOR.PATCH versions instead of the per-commit preview suffix.
/// --unhosted: the build's clone has no origin on a hosted repository (a clone of a local path), so
/// the repository URL and SourceLink cannot exist and are not required. With --self-test, instead
/// checks that broken copies of DIR's packages are reported.
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var selfTest = args.Contains("--self-test");
        var release = args.Contains("--release");
        var hosted = !args.Contains("--unhosted");
        var rest = args.Where(a => a is not "--self-test" and not "--release" and not "--unhosted").ToArray();
        if (rest.Length != 1 || !Directory.Exists(rest[0]))
        {
            Console.Error.WriteLine("usage: PackageCheck PACKAGES_DIR [--self-test] [--release] [--unhosted]");
            return 2;
        }
        var globalPackages = GlobalPackagesFolder();
        if (!hosted)
        {
            Console.WriteLine("--unhosted: the repository url and SourceLink are not required (this clone's origin is not a hosted repository, so the SDK has no URL to map sources to); the commit and deterministic paths are");
        }
        if (selfTest)
        {
            return SelfTest.Run(rest[0], globalPackages, hosted);
        }
        var (problems, count) = Checker.CheckDirectory(rest[0], globalPackages, release, hosted);
        foreach (var problem in problems)
        {
            Console.WriteLine(problem);
        }
        Console.WriteLine($"{count} package(s) checked, {problems.Count} problem(s)");
        return problems.Count == 0 ? 0 : 1;
    }

    /// <summary>`dotnet nuget locals global-packages --list`: "global-packages: /root/.nuget/packages/".</summary>
    private static string GlobalPackagesFolder()
    {
        var start = new ProcessStartInfo("dotnet", "nuget locals global-packages --list") { RedirectStandardOutput = true };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("global-packages:", StringComparison.Ordinal));
        if (process.ExitCode != 0 || line == null)
        {
            throw new InvalidOperationException($"dotnet nuget locals global-packages --list exited {process.ExitCode}: {output}");
        }
        return line["global-packages:".Length..].Trim();
    }
}
