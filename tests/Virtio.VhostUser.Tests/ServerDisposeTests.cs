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
    public async Task DisposeAsync_WithARequestHeld_StopsAfterTheDrainTimeout_AndTheLateCompletionWritesNothing()
    {
        string socket = Path.Combine(_directory, "held.sock");
        var holding = new HoldingBackend(new MemoryBlockBackend(1 << 20));
        using GuestMemory memory = TestFrontEnd.CreateMemory();
        var options = new BlockDeviceOptions { QueueSize = 64, ResetTimeout = TimeSpan.FromMilliseconds(100) };
        var server = new VhostUserServer(socket, guest => new BlockDevice(guest, holding, options), new CapturingLogger()) { DrainTimeout = TimeSpan.FromMilliseconds(200) };
        Task serving = server.RunAsync(CancellationToken.None);
        using TestFrontEnd frontEnd = new(socket, memory.Regions[0]);
        frontEnd.Start(TestFrontEnd.CreateDrivers(memory, 1));
        GuestDriver driver = frontEnd.Drivers[0];
        ushort head = BlkServerRig.Post(frontEnd, 0, 0, 0, readLength: 512);
        var buffers = driver.ChainBuffers(head);
        driver.Span(buffers[^2].Address, 512).Fill(0xA5);
        Assert.True(SpinWait.SpinUntil(() => holding.HeldCount > 0, TimeSpan.FromSeconds(10)), "the read did not reach the backend");
        Assert.Equal(1, holding.HeldCount);
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await server.DisposeAsync();
        Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(150), $"the server stopped after {stopwatch.Elapsed}, before the drain timeout");
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), $"the server took {stopwatch.Elapsed} to stop");
        Assert.True(serving.IsCompleted);
        Assert.True(server.Device.IsDisposed);

        holding.Release(); // the backend completes the read after the server and its device are gone
        Assert.Equal(0xFF, driver.Span(buffers[^1].Address, 1)[0]);
        Assert.True(driver.Span(buffers[^2].Address, 512).IndexOfAnyExcept((byte)0xA5) < 0, "the late read landed in the guest buffer");
        Assert.False(driver.TryGetUsed(out _, out _));
    }

    [Fact]
    public void DrainTimeout_RefusesNegativeAndInfinite()
    {
        using var disk = new MemoryBlockBackend(1 << 20);
        using var server = new VhostUserServer(Path.Combine(_directory, "t.sock"), guest => new BlockDevice(guest, disk));
        Assert.Throws<ArgumentOutOfRangeException>(() => server.DrainTimeout = TimeSpan.FromSeconds(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => server.DrainTimeout = Timeout.InfiniteTimeSpan);
        server.DrainTimeout = TimeSpan.Zero;
        Assert.Equal(TimeSpan.Zero, server.DrainTimeout);
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
