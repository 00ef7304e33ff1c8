using System;
using System.Buffers.Binary;
using System.IO;
using System.Threading.Tasks;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// samples/Hosting: the BackgroundService serves the disk named by its configuration (here from the
/// command line, over appsettings.json), answers a front end, and stops in order on SIGTERM: exit 0,
/// socket file removed.
/// </summary>
public sealed class HostedServiceTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task HostedService_ServesTheConfiguredDisk_AndStopsOnSigterm()
    {
        HostRequirements.RequireOurDaemon();
        var ct = TestContext.Current.CancellationToken;
        string dir = TestWorkDir.Create("hosting");
        string image = TestWorkDir.CreateRawImage(dir, 4);
        string socket = Path.Combine(dir, "blk.sock");
        using ChildProcess host = ChildProcess.Start(
            ["dotnet", RepoPaths.HostingDll, $"--Blk:Path={image}", $"--Blk:Socket={socket}", "--Blk:Queues=2"],
            Bound, Path.Combine(dir, "hosting.log"));
        Assert.True(await host.WaitForLineAsync($"on {socket}", Bound, ct), string.Join('\n', host.Lines));
        Assert.True(await host.WaitForLineAsync("listening on", Bound, ct), string.Join('\n', host.Lines));

        using (VhostUserFrontEnd frontEnd = VhostUserFrontEnd.Connect(socket))
        {
            frontEnd.Negotiate(1ul << 32, VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.MultiQueue);
            Assert.Equal(2, frontEnd.GetQueueNum());
            Span<byte> capacity = stackalloc byte[8];
            frontEnd.GetConfig(0, capacity);
            Assert.Equal(4ul * 1024 * 1024 / 512, BinaryPrimitives.ReadUInt64LittleEndian(capacity));
        }

        host.Signal("TERM");
        Assert.Equal(0, await host.WaitAsync(Bound, ct));
        Assert.False(File.Exists(socket), "the socket file is left behind");
        Assert.Contains(host.Lines, line => line.Contains("Application is shutting down", StringComparison.Ordinal));
    }
}
