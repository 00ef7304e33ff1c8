using System;
using System.Threading.Tasks;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Devices;

public sealed class VirtioDeviceDisposeTests
{
    [Fact]
    public async Task Dispose_Twice_ResetsOnce_AndNeverThrows()
    {
        using var guest = new GuestDriver();
        (RecordingDevice device, MmioDriver mmio) = Initialized(guest);
        device.HoldCompletions = true;
        guest.AddChain(BufferSpec.Write(8));
        guest.Kick();
        mmio.Notify(0);
        Assert.Single(device.Held);
        int hookCalls = device.ResetHookCalls;

        device.Dispose();
        Assert.True(device.IsDisposed);
        Assert.Equal(hookCalls + 1, device.ResetHookCalls);
        Assert.Empty(device.Held);
        Assert.Equal(DeviceStatus.None, device.Status);
        Assert.False(device.Queues[0].IsReady);

        device.Dispose();
        await device.DisposeAsync();
        Assert.Equal(hookCalls + 1, device.ResetHookCalls);
    }

    [Fact]
    public async Task DisposeAsync_ResetsOnce()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        int hookCalls = device.ResetHookCalls;
        await device.DisposeAsync();
        await device.DisposeAsync();
        device.Dispose();
        Assert.Equal(hookCalls + 1, device.ResetHookCalls);
    }

    [Fact]
    public void DisposedDevice_IgnoresTheDriver_AndWritesNoGuestByte()
    {
        using var guest = new GuestDriver();
        (RecordingDevice device, MmioDriver mmio) = Initialized(guest);
        Assert.True(device.IsLive);

        device.Dispose();
        Assert.False(device.IsLive);

        // The driver, unaware, keeps going: a chain, a kick, a poll, then a fresh initialization.
        ushort head = guest.AddChain(BufferSpec.Write(64));
        GuestAddress buffer = guest.ChainBuffers(head)[0].Address;
        guest.Span(buffer, 64).Clear();
        guest.Kick();
        mmio.Notify(0);
        Assert.False(device.PollQueue(0));
        Assert.Empty(device.Completed);
        Assert.False(guest.TryGetUsed(out _, out _));
        Assert.True(guest.Span(buffer, 64).IndexOfAnyExcept((byte)0) < 0, "a disposed device wrote a guest buffer");

        mmio.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        Assert.Equal(DeviceStatus.None, device.Status);
        Assert.False(device.ActivateQueue(0));
        Assert.False(device.Queues[0].IsReady);
    }

    [Fact]
    public void Reset_WithATimeout_RunsTheHook_AndReportsNothingLeftBehind()
    {
        using var guest = new GuestDriver();
        (RecordingDevice device, _) = Initialized(guest);
        int hookCalls = device.ResetHookCalls;

        Assert.True(device.Reset(TimeSpan.Zero, TestContext.Current.CancellationToken));
        Assert.Equal(hookCalls + 1, device.ResetHookCalls);
        Assert.Equal(DeviceStatus.None, device.Status);
        Assert.Throws<ArgumentOutOfRangeException>(() => device.Reset(TimeSpan.FromMilliseconds(-2), TestContext.Current.CancellationToken));
    }

    /// <summary>A device behind virtio-mmio that <paramref name="guest"/> has driven to DRIVER_OK.</summary>
    private static (RecordingDevice Device, MmioDriver Mmio) Initialized(GuestDriver guest)
    {
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        return (device, mmio);
    }
}
