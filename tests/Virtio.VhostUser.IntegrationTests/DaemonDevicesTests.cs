using System;
using System.IO;
using System.Linq;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The daemon with several devices (docs/daemon.md): each --blk and each --config entry listens on
/// its own socket, SIGUSR1 prints the summary table and the daemon goes on, SIGTERM prints it again
/// and exits 0; two devices on one socket is a usage error. No QEMU: raw GET_FEATURES.
/// </summary>
public sealed class DaemonDevicesTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task SeveralDevices_FromFlagsAndConfig_EachServesItsSocket_AndTheSummaryListsThem()
    {
        HostRequirements.RequireOurDaemon();
        string dir = TestWorkDir.Create("daemon-devices");
        string a = Path.Combine(dir, "a.sock"), b = Path.Combine(dir, "b.sock"), c = Path.Combine(dir, "c.sock");
        string config = Path.Combine(dir, "devices.json");
        await File.WriteAllTextAsync(config, $$"""{"blk": ["null,size=2M,queues=1,socket={{c}}"]}""", TestContext.Current.CancellationToken);
        using ChildProcess daemon = ChildProcess.Start(
            ["dotnet", RepoPaths.DaemonDll, "--blk", $"null,size=1M,queues=1,socket={a}", "--socket", b, "--blk", "null,size=1M,queues=2", "--config", config],
            Bound, Path.Combine(dir, "daemon.log"));
        Assert.True(await daemon.WaitForLineAsync($"listening on {c}", Bound, TestContext.Current.CancellationToken), string.Join('\n', daemon.Lines));

        foreach (string socket in new[] { a, b, c })
        {
            Assert.NotNull(DaemonAccessTests.GetFeatures(socket));
        }

        daemon.Signal("USR1");
        Assert.True(await daemon.WaitForLineAsync("blk2     blk", Bound, TestContext.Current.CancellationToken), string.Join('\n', daemon.Lines));
        Assert.False(daemon.HasExited);

        daemon.Signal("TERM");
        Assert.Equal(0, await daemon.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.Equal(2, daemon.Lines.Count(line => line.StartsWith("device   kind", StringComparison.Ordinal)));
        Assert.Contains(daemon.Lines, line => line.StartsWith("blk0     blk", StringComparison.Ordinal) && line.EndsWith(a, StringComparison.Ordinal));
        Assert.Contains(daemon.Lines, line => line.StartsWith("blk1     blk", StringComparison.Ordinal) && line.EndsWith(b, StringComparison.Ordinal));
        Assert.False(File.Exists(a) || File.Exists(b) || File.Exists(c));
    }

    [Fact]
    public async Task TwoDevicesOnOneSocket_IsAUsageError()
    {
        HostRequirements.RequireOurDaemon();
        string dir = TestWorkDir.Create("daemon-devices-usage");
        string a = Path.Combine(dir, "a.sock");
        using ChildProcess daemon = ChildProcess.Start(
            ["dotnet", RepoPaths.DaemonDll, "--blk", $"null,size=1M,socket={a}", "--blk", $"null,size=1M,socket={a}"],
            Bound, Path.Combine(dir, "daemon.log"));

        Assert.Equal(2, await daemon.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.Contains(daemon.Lines, line => line.Contains("is given to more than one device", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("--no-such-option")]
    [InlineData("--metrics", "soon")]
    public async Task OptionTheParserRefuses_IsAUsageError_Exit2(params string[] bad)
    {
        HostRequirements.RequireOurDaemon();
        string dir = TestWorkDir.Create("daemon-usage-parse");
        using ChildProcess daemon = ChildProcess.Start(
            ["dotnet", RepoPaths.DaemonDll, "--blk", $"null,size=1M,socket={Path.Combine(dir, "a.sock")}", .. bad],
            Bound, Path.Combine(dir, "daemon.log"));

        Assert.Equal(2, await daemon.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.Contains(daemon.Lines, line => line.Contains(bad[0], StringComparison.Ordinal) || line.Contains(bad[^1], StringComparison.Ordinal));
    }
}
