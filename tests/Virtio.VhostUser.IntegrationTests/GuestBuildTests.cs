using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// build-guest.sh against the live archive: a locked version the archive no longer has is
/// replaced by the current one and said so, a package missing from the lock likewise, the image
/// records the versions it was built from (beside it and inside the initramfs), and a second run
/// with the same inputs does nothing.
/// </summary>
[Collection("linux-guest")]
public sealed class GuestBuildTests(ITestOutputHelper output)
{
    private const string GoneVersion = "0.0~gone-1";

    [Fact]
    public async Task Build_WithAVersionGoneFromTheArchive_TakesTheCurrentOne_RecordsIt_AndARerunDoesNothing()
    {
        HostRequirements.RequireQemu();
        var ct = TestContext.Current.CancellationToken;
        // The shared image first: it fills the .deb cache this build reuses.
        string image = await GuestImage.GetAsync(output, ct);
        string work = TestWorkDir.Create("guest-build");
        string lockFile = Path.Combine(work, "packages.lock");
        string lockText = await File.ReadAllTextAsync(Path.Combine(RepoPaths.LinuxGuestDir, "packages.lock"), ct);
        // fio pinned to a version no archive has; libaio1 (one of fio's libraries) not pinned at all.
        var lines = lockText.Split('\n')
            .Where(l => !l.StartsWith("libaio1 ", StringComparison.Ordinal))
            .Select(l => l.StartsWith("fio ", StringComparison.Ordinal) ? $"fio {GoneVersion}" : l);
        await File.WriteAllTextAsync(lockFile, string.Join('\n', lines), ct);
        string outDir = Path.Combine(work, "out");

        var first = await RunAsync(outDir, lockFile);
        Match drift = Regex.Match(string.Join('\n', first), $@"drift: fio {Regex.Escape(GoneVersion)} is no longer in the archive: taking (\S+)");
        Assert.True(drift.Success, "no drift line for fio:\n" + string.Join('\n', first));
        string current = drift.Groups[1].Value;
        Assert.Contains(first, l => l.Contains("drift: libaio1 is not in the lock: taking ", StringComparison.Ordinal));

        string[] versions = await File.ReadAllLinesAsync(Path.Combine(outDir, "VERSIONS"), ct);
        Assert.Contains($"fio {current}", versions);
        Assert.DoesNotContain(versions, l => l.Contains(GoneVersion, StringComparison.Ordinal));
        Assert.Contains(versions, l => l.StartsWith("libaio1 ", StringComparison.Ordinal));
        // The same list inside the initramfs.
        string inside = await ReadFromInitramfsAsync(Path.Combine(outDir, "initrd.cpio.gz"), "etc/vtest-versions", work);
        Assert.Equal(string.Join('\n', versions), inside.TrimEnd('\n'));
        // The shared image was built from the lock and says fio's version too.
        Assert.Contains(await File.ReadAllLinesAsync(Path.Combine(image, "VERSIONS"), ct), l => l.StartsWith("fio ", StringComparison.Ordinal));

        DateTime packed = File.GetLastWriteTimeUtc(Path.Combine(outDir, "initrd.cpio.gz"));
        var second = await RunAsync(outDir, lockFile);
        Assert.Contains(second, l => l.Contains("up to date", StringComparison.Ordinal));
        Assert.DoesNotContain(second, l => l.Contains("extracting", StringComparison.Ordinal) || l.Contains("downloading", StringComparison.Ordinal));
        Assert.Equal(packed, File.GetLastWriteTimeUtc(Path.Combine(outDir, "initrd.cpio.gz")));
        Directory.Delete(outDir, recursive: true);
    }

    private async Task<IReadOnlyList<string>> RunAsync(string outDir, string lockFile)
    {
        var ct = TestContext.Current.CancellationToken;
        Directory.CreateDirectory(outDir);
        using var build = ChildProcess.Start(
            new[] { "bash", Path.Combine(RepoPaths.LinuxGuestDir, "build-guest.sh"), outDir },
            TimeSpan.FromMinutes(8), Path.Combine(outDir, "..", $"build-{DateTime.UtcNow.Ticks}.log"),
            environment: new Dictionary<string, string>
            {
                ["SKIP_HOST_INSTALL"] = "1",
                ["DEBS_DIR"] = Path.Combine(GuestImage.CacheRoot, "debs"),
                ["GUEST_LOCK"] = lockFile,
            });
        int rc = await build.WaitAsync(TimeSpan.FromMinutes(9), ct);
        var lines = build.Lines.ToArray();
        foreach (string line in lines.Where(l => l.Contains("drift:", StringComparison.Ordinal) || l.Contains("versions:", StringComparison.Ordinal)))
        {
            output.WriteLine(line);
        }

        Assert.True(rc == 0, $"build-guest.sh exited {rc}:\n{string.Join('\n', lines)}");
        return lines;
    }

    private static async Task<string> ReadFromInitramfsAsync(string initrd, string member, string work)
    {
        using var unpack = ChildProcess.Start(
            new[] { "sh", "-c", "zcat \"$1\" | cpio -i --quiet --to-stdout \"$2\"", "sh", initrd, member },
            TimeSpan.FromMinutes(1), Path.Combine(work, "cpio.log"));
        int rc = await unpack.WaitAsync(TimeSpan.FromMinutes(2), TestContext.Current.CancellationToken);
        Assert.True(rc == 0, $"cpio exited {rc}");
        return string.Join('\n', unpack.Lines) + "\n";
    }
}
