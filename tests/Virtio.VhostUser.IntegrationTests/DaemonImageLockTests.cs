using System;
using System.IO;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// Two daemons on one image (docs/daemon.md, <c>lock=</c>): the second read-write daemon fails at
/// start with one line naming the image, the holder and <c>lock=off</c>, exit 1; with <c>lock=off</c> on
/// both they serve the image side by side, as the two back ends of a live migration do; read-only
/// daemons share it. No QEMU: each daemon's socket answers GET_FEATURES.
/// </summary>
public sealed class DaemonImageLockTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task SecondDaemonOnALockedImage_FailsAtStart_NamingTheImageTheHolderAndLockOff()
    {
        HostRequirements.RequireOurDaemon();
        var ct = TestContext.Current.CancellationToken;
        string dir = TestWorkDir.Create("daemon-lock");
        string image = TestWorkDir.CreateRawImage(dir, 4);
        using ChildProcess first = await StartServingAsync(dir, image, "a", "", ct);
        using ChildProcess second = ChildProcess.Start(Daemon(dir, image, "b", ""), Bound, Path.Combine(dir, "b.log"));

        Assert.Equal(1, await second.WaitAsync(Bound, ct));
        string line = Assert.Single(second.Lines, l => l.Contains("locked", StringComparison.Ordinal));
        Assert.Contains(image, line, StringComparison.Ordinal);
        // The holder is the first daemon: the dotnet process under timeout.
        Assert.Matches(@"locked by process \d+ \(dotnet\)", line);
        Assert.Contains("lock=off", line, StringComparison.Ordinal);
        Assert.False(first.HasExited);
    }

    [Theory]
    [InlineData(",lock=off", ",lock=off")]
    [InlineData(",readonly", ",readonly")]
    public async Task TwoDaemonsOnOneImage_ServeSideBySide_WithLockOffOrReadOnly(string keysA, string keysB)
    {
        HostRequirements.RequireOurDaemon();
        var ct = TestContext.Current.CancellationToken;
        string dir = TestWorkDir.Create("daemon-lock-shared");
        string image = TestWorkDir.CreateRawImage(dir, 4);
        using ChildProcess a = await StartServingAsync(dir, image, "a", keysA, ct);
        using ChildProcess b = await StartServingAsync(dir, image, "b", keysB, ct);

        Assert.NotNull(DaemonAccessTests.GetFeatures(Path.Combine(dir, "a.sock")));
        Assert.NotNull(DaemonAccessTests.GetFeatures(Path.Combine(dir, "b.sock")));
        foreach (ChildProcess daemon in new[] { a, b })
        {
            daemon.Signal("TERM");
            Assert.Equal(0, await daemon.WaitAsync(Bound, ct));
        }
    }

    private static string[] Daemon(string dir, string image, string name, string keys) =>
        ["dotnet", RepoPaths.DaemonDll, "--blk", $"{image},queues=1{keys},socket={Path.Combine(dir, name + ".sock")}"];

    private static async Task<ChildProcess> StartServingAsync(string dir, string image, string name, string keys, System.Threading.CancellationToken ct)
    {
        var daemon = ChildProcess.Start(Daemon(dir, image, name, keys), Bound, Path.Combine(dir, name + ".log"));
        if (!await daemon.WaitForLineAsync($"listening on {Path.Combine(dir, name + ".sock")}", Bound, ct))
        {
            string log = string.Join('\n', daemon.Lines);
            daemon.Dispose();
            Assert.Fail($"daemon {name} did not listen:\n{log}");
        }

        return daemon;
    }
}
