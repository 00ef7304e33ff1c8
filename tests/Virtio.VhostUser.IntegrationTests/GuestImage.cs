using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The Debian guest of samples/linux-guest/build-guest.sh, built once per content of the build
/// script and the guest's /init: /tmp/virtio-linux-guest/HASH/{vmlinuz,initrd.cpio.gz}. The .deb
/// cache is shared by every hash, so a changed /init only repacks. VIRTIO_LINUX_GUEST_DIR names
/// a guest built elsewhere instead.
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
            if (s_dir is not null)
            {
                return s_dir;
            }

            string dir = Path.Combine(CacheRoot, ScriptHash());
            if (!IsBuilt(dir))
            {
                await BuildAsync(dir, output, cancellationToken).ConfigureAwait(false);
            }

            s_dir = dir;
            return dir;
        }
        finally
        {
            s_gate.Release();
        }
    }

    private static bool IsBuilt(string dir) =>
        File.Exists(Path.Combine(dir, "vmlinuz")) && File.Exists(Path.Combine(dir, ".complete"));

    private static async Task BuildAsync(string dir, ITestOutputHelper output, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(dir);
        string debs = Path.Combine(CacheRoot, "debs");
        Directory.CreateDirectory(debs);
        string link = Path.Combine(dir, "debs");
        if (!Directory.Exists(link))
        {
            Directory.CreateSymbolicLink(link, debs);
        }

        // Another test process (a second run in the same CI job) may be building the same hash.
        using var lockFile = await LockAsync(Path.Combine(dir, ".lock"), cancellationToken).ConfigureAwait(false);
        if (IsBuilt(dir))
        {
            return;
        }

        var started = DateTime.UtcNow;
        string script = Path.Combine(RepoPaths.LinuxGuestDir, "build-guest.sh");
        using var build = ChildProcess.Start(new[] { "bash", script, dir }, TimeSpan.FromMinutes(8),
            Path.Combine(dir, "build.log"), environment: new Dictionary<string, string> { ["SKIP_HOST_INSTALL"] = "1" });
        int rc = await build.WaitAsync(TimeSpan.FromMinutes(9), cancellationToken).ConfigureAwait(false);
        if (rc != 0)
        {
            Assert.Fail($"build-guest.sh exited {rc}:\n{string.Join('\n', build.Lines)}");
        }

        await File.WriteAllTextAsync(Path.Combine(dir, ".complete"), DateTime.UtcNow.ToString("O"), cancellationToken).ConfigureAwait(false);
        // The staging root and the initramfs tree are 200 MB that nothing reads again.
        TryDelete(Path.Combine(dir, "root"));
        output.WriteLine($"guest built in {(DateTime.UtcNow - started).TotalSeconds:F1} s: {dir}");
    }

    private static void TryDelete(string path)
    {
        try
        {
            Directory.Delete(path, recursive: true);
        }
        catch (IOException)
        {
        }
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

    private static string ScriptHash()
    {
        var all = new StringBuilder();
        foreach (string name in new[] { "build-guest.sh", "guest-init.sh" })
        {
            all.Append(File.ReadAllText(Path.Combine(RepoPaths.LinuxGuestDir, name)));
        }

        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(all.ToString())))[..16].ToLowerInvariant();
    }
}
