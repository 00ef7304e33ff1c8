using System;
using System.IO;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>The socket file's lifetime: a stopping server removes its own file, never a newer server's.</summary>
public sealed class SocketFileTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vhost-user-socket-").FullName;

    [Fact]
    public async Task Stop_RemovesItsSocketFile()
    {
        string path = Path.Combine(_directory, "blk.sock");
        using var stop = new CancellationTokenSource();
        using var server = CreateServer(path, new CapturingLogger());
        Task serving = server.RunAsync(stop.Token);
        Assert.True(File.Exists(path));

        await stop.CancelAsync();
        await serving.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task Stop_AfterARestartedServerBoundThePath_LeavesTheNewSocketServing()
    {
        // A supervisor restarts the daemon while the old one still drains: the old one's exit must
        // not unlink the file the new one listens on, or the front end has nothing to reconnect to.
        string path = Path.Combine(_directory, "blk.sock");
        var oldLogger = new CapturingLogger();
        using var stopOld = new CancellationTokenSource();
        using var stopNew = new CancellationTokenSource();
        using var oldServer = CreateServer(path, oldLogger);
        Task oldServing = oldServer.RunAsync(stopOld.Token);
        using var newServer = CreateServer(path, new CapturingLogger());
        Task newServing = newServer.RunAsync(stopNew.Token);

        await stopOld.CancelAsync();
        await oldServing.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);

        Assert.True(File.Exists(path), "the old server removed the new server's socket file");
        Assert.Contains(oldLogger.Entries, e => e.EventId == 4016);
        using (var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await client.ConnectAsync(new UnixDomainSocketEndPoint(path), TestContext.Current.CancellationToken);
        }

        await stopNew.CancelAsync();
        await newServing.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task ListeningSocket_InheritedSocket_IsServed_AndItsFileLeftToItsCreator()
    {
        // A service manager (systemd socket activation) binds and listens; the server only accepts.
        // A .NET Socket unlinks the path it bound when it is disposed; systemd's sockets do not. So
        // the file is moved to the path served: only the server could remove it there.
        string bound = Path.Combine(_directory, "bound.sock");
        string path = Path.Combine(_directory, "activated.sock");
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(bound));
        listener.Listen(1);
        File.Move(bound, path);
        using var stop = new CancellationTokenSource();
        var logger = new CapturingLogger();
        using var server = new VhostUserServer(path, memory => new BlockDevice(memory, new MemoryBlockBackend(1 << 20), new BlockDeviceOptions { QueueSize = 64 }, logger), logger)
        {
            ListeningSocket = listener,
        };
        Task serving = server.RunAsync(stop.Token);

        using (var memory = TestFrontEnd.CreateMemory())
        using (var frontEnd = new TestFrontEnd(path, memory.Regions[0]))
        {
            frontEnd.Send(1, []); // VHOST_USER_GET_FEATURES: answered only by a server accepting on the socket
            Assert.Equal(8, frontEnd.Receive(1).Length);
        }

        // Stopping wakes the accept on a socket it did not bind, and leaves its file.
        await stop.CancelAsync();
        await serving.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.True(File.Exists(path));
        Assert.True(listener.SafeHandle.IsClosed, "the server did not take the inherited socket"); // it served on it, and closed it
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static VhostUserServer CreateServer(string path, CapturingLogger logger) =>
        new(path, memory => new BlockDevice(memory, new MemoryBlockBackend(1 << 20), new BlockDeviceOptions { QueueSize = 64 }, logger), logger);
}
