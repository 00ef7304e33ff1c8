using System;
using System.IO;
using System.Threading;
using System.Threading.Tasks;
using Virtio.Blk;
using Virtio.Blk.Backends;
using Virtio.Core.Memory;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

public sealed class ServerDisposeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vhost-user-dispose-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task DisposeAsync_WhileServing_EndsRunAsync_DisposesTheDevice_AndRepeats()
    {
        string socket = Path.Combine(_directory, "blk.sock");
        using var disk = new MemoryBlockBackend(1 << 20);
        using GuestMemory memory = TestFrontEnd.CreateMemory();
        var server = new VhostUserServer(socket, guest => new BlockDevice(guest, disk), new CapturingLogger());
        Task serving = server.RunAsync(CancellationToken.None);
        using (TestFrontEnd frontEnd = new(socket, memory.Regions[0]))
        {
            frontEnd.Start(TestFrontEnd.CreateDrivers(memory, 1));
            ushort head = BlkServerRig.Post(frontEnd, 0, 0, 0, readLength: 512);
            Assert.Equal(0, BlkServerRig.Complete(frontEnd, 0, head, 512).Status);

            // No cancellation: disposing alone stops the accept loop and the session.
            await server.DisposeAsync();
        }

        Assert.True(serving.IsCompleted, "DisposeAsync returned before RunAsync's task ended");
        Assert.True(server.Device.IsDisposed);
        Assert.False(File.Exists(socket));
        await server.DisposeAsync();
        server.Dispose();
        await serving;
    }

    [Fact]
    public void Dispose_WithoutRunAsync_DisposesTheDevice_AndRepeats()
    {
        using var disk = new MemoryBlockBackend(1 << 20);
        var server = new VhostUserServer(Path.Combine(_directory, "idle.sock"), guest => new BlockDevice(guest, disk));
        server.Dispose();
        server.Dispose();
        Assert.True(server.Device.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => { _ = server.RunAsync(CancellationToken.None); });
    }
}
