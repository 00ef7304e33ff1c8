using System;
using System.Buffers.Binary;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Threading.Tasks;
using Xunit;

namespace Virtio.VhostUser.IntegrationTests;

/// <summary>
/// The daemon's --allow-uid (the review's fifth finding: VhostUserServer.AllowedUserIds had no flag):
/// a front end under another user id is disconnected before its first message, one under a listed
/// id is served, and a value that is not a user id is a usage error. No QEMU: raw GET_FEATURES.
/// </summary>
public sealed class DaemonAccessTests
{
    private const uint NobodyElse = 4_000_000_001;

    [Fact]
    public async Task AllowUid_WithoutOurUid_DisconnectsUs_AndLogsWhy()
    {
        using VhostUserBackend backend = await StartDaemonAsync("allow-uid-refused", "--allow-uid", $"{NobodyElse},{NobodyElse + 1}");

        Assert.Null(GetFeatures(backend.SocketPath));
        Assert.True(await backend.WaitForLineAsync($"user id {OwnUserId()} (SO_PEERCRED) is not allowed", TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken), string.Join('\n', backend.Log));
        Assert.Equal(0, await backend.StopAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task AllowUid_Repeated_WithOurUid_ServesUs()
    {
        using VhostUserBackend backend = await StartDaemonAsync("allow-uid-served", "--allow-uid", $"{NobodyElse}", "--allow-uid", $"{OwnUserId()}");

        ulong? features = GetFeatures(backend.SocketPath);
        Assert.NotNull(features);
        Assert.NotEqual(0ul, features.Value & (1ul << 30)); // VHOST_USER_F_PROTOCOL_FEATURES
        Assert.Equal(0, await backend.StopAsync(TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task AllowUid_NotANumber_IsAUsageError()
    {
        HostRequirements.RequireOurDaemon();
        string dir = TestWorkDir.Create("allow-uid-usage");
        using ChildProcess daemon = ChildProcess.Start(
            ["dotnet", RepoPaths.DaemonDll, "--socket", Path.Combine(dir, "x.sock"), "--blk", "null,size=1M", "--allow-uid", "root"],
            TimeSpan.FromSeconds(60), Path.Combine(dir, "daemon.log"));

        Assert.Equal(2, await daemon.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken));
        Assert.Contains(daemon.Lines, line => line.Contains("--allow-uid: 'root' is not a user id", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Help_DescribesAllowUid()
    {
        HostRequirements.RequireOurDaemon();
        string dir = TestWorkDir.Create("allow-uid-help");
        using ChildProcess daemon = ChildProcess.Start(["dotnet", RepoPaths.DaemonDll, "--help"], TimeSpan.FromSeconds(60), Path.Combine(dir, "help.log"));

        Assert.Equal(0, await daemon.WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken));
        Assert.Contains(daemon.Lines, line => line.Contains("--allow-uid", StringComparison.Ordinal) && line.Contains("SO_PEERCRED", StringComparison.Ordinal));
    }

    /// <summary>Our daemon serving a 1 MiB image on one queue, with <paramref name="args"/> added.</summary>
    private static Task<VhostUserBackend> StartDaemonAsync(string name, params string[] args)
    {
        HostRequirements.RequireOurDaemon();
        string dir = TestWorkDir.Create(name);
        string image = TestWorkDir.CreateRawImage(dir, 1);
        return VhostUserBackend.StartBlkAsync(BlkBackendKind.Ours, dir, image, 1, TestContext.Current.CancellationToken, extraArgs: args);
    }

    /// <summary>GET_FEATURES over a new connection: the features, or null when the daemon hung up instead of replying.</summary>
    internal static ulong? GetFeatures(string socketPath)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        socket.ReceiveTimeout = 15000;
        byte[] request = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(request, 1); // GET_FEATURES
        BinaryPrimitives.WriteUInt32LittleEndian(request.AsSpan(4), 1); // version 1
        try
        {
            socket.Send(request);
        }
        catch (SocketException)
        {
            return null; // already closed
        }

        byte[] reply = new byte[20];
        int read = 0;
        try
        {
            while (read < reply.Length)
            {
                int n = socket.Receive(reply, read, reply.Length - read, SocketFlags.None);
                if (n == 0)
                {
                    return null;
                }

                read += n;
            }
        }
        catch (SocketException exception) when (exception.SocketErrorCode == SocketError.ConnectionReset)
        {
            return null;
        }

        return BinaryPrimitives.ReadUInt64LittleEndian(reply.AsSpan(12));
    }

    /// <summary>This process's effective user id, from /proc/self/status ("Uid: real effective saved fs").</summary>
    private static uint OwnUserId() =>
        uint.Parse(File.ReadLines("/proc/self/status").First(line => line.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[2], System.Globalization.CultureInfo.InvariantCulture);
}
