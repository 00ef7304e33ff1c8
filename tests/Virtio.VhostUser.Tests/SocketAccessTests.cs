using System;
using System.IO;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Tmds.Linux;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// Who may reach the socket (the review's fifth finding): a front end shares all of guest memory with
/// the back end it reaches, so the socket is the owner's only, an allowed-uid list can narrow it
/// further, and a mistyped path never deletes a file that is not a socket.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SocketAccessTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vhost-user-access-").FullName;

    [Fact]
    public async Task RunAsync_CreatesTheSocketForItsOwnerOnly()
    {
        string path = Path.Combine(_directory, "blk.sock");
        using var stop = new CancellationTokenSource();
        using var server = CreateServer(path, new CapturingLogger());
        Task serving = server.RunAsync(stop.Token);

        // Whatever the umask (usually 022, which would leave 0755): 0600.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));

        await stop.CancelAsync();
        await serving.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    [Fact]
    public void RunAsync_AtThePathOfARegularFile_RefusesAndLeavesTheFile()
    {
        string path = Path.Combine(_directory, "disk.img");
        File.WriteAllBytes(path, [1, 2, 3, 4]);
        using var server = CreateServer(path, new CapturingLogger());

        // RunAsync checks the path before it returns a task: the refusal is synchronous.
        IOException refused = Assert.Throws<IOException>(() => { _ = server.RunAsync(TestContext.Current.CancellationToken); });

        Assert.Contains("not a socket", refused.Message, StringComparison.Ordinal);
        Assert.Equal([1, 2, 3, 4], File.ReadAllBytes(path));
    }

    [Fact]
    public async Task AllowedUserIds_WithoutThePeersUid_ClosesTheConnection_AndWithIt_Serves()
    {
        uint self = LibC.geteuid();
        string path = Path.Combine(_directory, "blk.sock");
        var logger = new CapturingLogger();
        using var stop = new CancellationTokenSource();
        using var server = CreateServer(path, logger);
        server.AllowedUserIds = [self + 1];
        Task serving = server.RunAsync(stop.Token);

        Assert.Equal(0, GetFeaturesReplyLength(path)); // closed before any reply
        Assert.Contains(logger.Entries, e => e.EventId == 4030);

        server.AllowedUserIds = [self];
        Assert.Equal(12 + 8, GetFeaturesReplyLength(path)); // header + u64

        await stop.CancelAsync();
        await serving.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>Sends VHOST_USER_GET_FEATURES and returns the reply's length (0: the back end hung up).</summary>
    private static int GetFeaturesReplyLength(string path)
    {
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        client.Connect(new UnixDomainSocketEndPoint(path));
        client.ReceiveTimeout = 10_000;
        byte[] request = new byte[12];
        request[0] = 1; // GET_FEATURES
        request[4] = 1; // version 1
        try
        {
            client.Send(request);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.Shutdown or SocketError.ConnectionReset)
        {
            return 0; // it hung up before our request arrived
        }

        byte[] reply = new byte[64];
        int total = 0;
        while (total < 20)
        {
            int n;
            try
            {
                n = client.Receive(reply, total, reply.Length - total, SocketFlags.None);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                break; // closed with our request unread: a hang-up too
            }

            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }

    private static VhostUserServer CreateServer(string path, CapturingLogger logger) =>
        new(path, memory => new BlockDevice(memory, new MemoryBlockBackend(1 << 20), new BlockDeviceOptions { QueueSize = 64 }, logger), logger);
}
