using System;
using System.Diagnostics;
using System.IO;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.Vmm.Tests;

/// <summary>Runs virtio-vmm (from this project's output) as a child process and collects what it printed.</summary>
internal static class VmmProcess
{
    /// <summary>The most one boot may take here; the guest runs in KVM's emulator on this machine.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>The guest the build put next to the VMM (VIRTIO_VMM_GUEST overrides it).</summary>
    public static string GuestPath =>
        Environment.GetEnvironmentVariable("VIRTIO_VMM_GUEST") is { Length: > 0 } path ? path : Path.Combine(AppContext.BaseDirectory, "guest.elf");

    /// <summary>Skips with a visible reason when /dev/kvm cannot be used.</summary>
    public static void SkipUnlessKvm()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "needs Linux and /dev/kvm");
        try
        {
            using FileStream kvm = new("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Assert.Skip($"needs /dev/kvm: {e.Message}");
        }
    }

    /// <summary>
    /// Skips unless a tap in a network namespace can be made (root, /dev/net/tun); returns a --net value
    /// for a fresh tap in a fresh namespace the VMM deletes at exit, and that namespace's name.
    /// </summary>
    public static string TapInNamespace(out string netns)
    {
        Assert.SkipUnless(Environment.IsPrivilegedProcess, "needs root (CAP_NET_ADMIN) for a tap and a network namespace");
        Assert.SkipUnless(File.Exists("/dev/net/tun"), "needs /dev/net/tun");
        string suffix = Random.Shared.Next(0x10000, 0xFFFFF).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        netns = $"virtio-vmm-test-{suffix}";
        return $"tap=vvt{suffix},netns={netns}";
    }

    /// <summary>The guest the build put next to the VMM; fails with what to install when it is missing.</summary>
    public static string Guest()
    {
        string path = GuestPath;
        Assert.True(File.Exists(path), $"{path} is missing: building samples/Virtio.Vmm builds it with samples/guest/build.sh (gcc and binutils; eng/install-deps.sh installs them)");
        return path;
    }

    /// <summary>Runs the VMM with <paramref name="arguments"/>; kills it after <see cref="Timeout"/>.</summary>
    public static Task<VmmResult> RunAsync(params string[] arguments) => RunCoreAsync(interruptAfter: null, arguments);

    /// <summary>
    /// Runs the VMM with <paramref name="arguments"/>; when its stdout shows <paramref name="interruptAfter"/>,
    /// sends it SIGINT, as Ctrl+C would. Kills it after <see cref="Timeout"/>.
    /// </summary>
    public static Task<VmmResult> RunAndInterruptAsync(string interruptAfter, params string[] arguments) => RunCoreAsync(interruptAfter, arguments);

    private static async Task<VmmResult> RunCoreAsync(string? interruptAfter, string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "virtio-vmm.dll"));
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException("virtio-vmm did not start");
        process.StandardInput.Close();
        Task<string> stdout = interruptAfter is null
            ? process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken)
            : ReadAndInterruptAsync(process, interruptAfter);
        Task<string> stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        try
        {
            await process.WaitForExitAsync(TestContext.Current.CancellationToken).WaitAsync(Timeout, TestContext.Current.CancellationToken);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.Fail($"virtio-vmm {string.Join(' ', arguments)} did not finish in {Timeout}:\n{await stdout}\n{await stderr}");
        }

        return new VmmResult(process.ExitCode, await stdout, await stderr);
    }

    private static async Task<string> ReadAndInterruptAsync(Process process, string marker)
    {
        var text = new System.Text.StringBuilder();
        bool sent = false;
        while (await process.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken) is { } line)
        {
            text.AppendLine(line);
            if (!sent && line.Contains(marker, StringComparison.Ordinal))
            {
                sent = true;
                using Process kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
            }
        }

        return text.ToString();
    }
}
