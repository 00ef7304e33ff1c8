using System;
using System.Collections.Generic;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The Debian guest of samples/linux-guest/build-guest.sh in /tmp/virtio-linux-guest/image, with
/// the .deb cache beside it. The script is run once per test process: it does nothing when the
/// image's inputs (scripts and package versions) are unchanged, and prints a <c>drift:</c> line for
/// each locked package version the archive no longer has; those lines go to the test output.
/// VIRTIO_LINUX_GUEST_DIR names a guest built elsewhere instead.
/// </summary>
internal static class GuestImage
{
    private static readonly SemaphoreSlim s_gate = new(1, 1);
    private static string? s_dir;

    public static string CacheRoot => Path.Combine(Path.GetTempPath(), "virtio-linux-guest");

    /// <summary>The directory with vmlinuz and initrd.cpio.gz, building it when needed.</summary>
    public static async Task<string> GetAsync(ITestOutputHelper output, CancellationToken cancellationToken)
    {
        if (Environment.GetEnvironmentVariable("VIRTIO_LINUX_GUEST_DIR") is { Length: > 0 } given)
        {
            return given;
        }

        await s_gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (s_dir is null)
            {
                string dir = Path.Combine(CacheRoot, "image");
                await BuildAsync(dir, output, cancellationToken).ConfigureAwait(false);
                s_dir = dir;
            }

            return s_dir;
        }
        finally
        {
            s_gate.Release();
        }
    }

    private static async Task BuildAsync(string dir, ITestOutputHelper output, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(dir);
        string debs = Path.Combine(CacheRoot, "debs");
        Directory.CreateDirectory(debs);

        // Another test process (a second run in the same CI job) may be building the same image.
        using var lockFile = await LockAsync(Path.Combine(CacheRoot, ".lock"), cancellationToken).ConfigureAwait(false);
        var started = DateTime.UtcNow;
        string script = Path.Combine(RepoPaths.LinuxGuestDir, "build-guest.sh");
        using var build = ChildProcess.Start(new[] { "bash", script, dir }, TimeSpan.FromMinutes(8),
            Path.Combine(CacheRoot, "build.log"),
            environment: new Dictionary<string, string> { ["SKIP_HOST_INSTALL"] = "1", ["DEBS_DIR"] = debs });
        int rc = await build.WaitAsync(TimeSpan.FromMinutes(9), cancellationToken).ConfigureAwait(false);
        if (rc != 0)
        {
            Assert.Fail($"build-guest.sh exited {rc}:\n{string.Join('\n', build.Lines)}");
        }

        // What the image was built from, and every version that moved from the lock.
        foreach (string line in build.Lines)
        {
            if (line.Contains("drift:", StringComparison.Ordinal) || line.Contains("versions:", StringComparison.Ordinal)
                || line.Contains("up to date", StringComparison.Ordinal) || line.Contains("built:", StringComparison.Ordinal))
            {
                output.WriteLine(line);
            }
        }

        output.WriteLine($"guest ready in {(DateTime.UtcNow - started).TotalSeconds:F1} s: {dir}");
    }

    private static async Task<FileStream> LockAsync(string path, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(500, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
