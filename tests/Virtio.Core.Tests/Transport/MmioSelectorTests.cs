using System;
using Virtio.Core.Devices;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport;

/// <summary>
/// Selectors a guest may set past what exists: QueueSel past the device's queues (the queue
/// registers and QueueReady are ignored, logged once) and DriverFeaturesSel past the second word
/// (the write is ignored: a shift by 64 would land on the first).
/// </summary>
public sealed class MmioSelectorTests
{
    [Fact]
    public void QueueRegisters_ForANonexistentQueue_AreIgnored_AndLoggedOnce()
    {
        using var guest = new GuestDriver();
        var logger = new CapturingLogger();
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder(), logger));
        var before = device.Queues[0].SaveState();

        mmio.Write(VirtioMmioRegister.QueueSel, 5);
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueNumMax));
        mmio.Write(VirtioMmioRegister.QueueNum, 8);
        mmio.Write(VirtioMmioRegister.QueueDescLow, 0x8000);
        mmio.Write(VirtioMmioRegister.QueueReady, 1);
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueReady));
        Assert.Equal(before, device.Queues[0].SaveState());
        Assert.False(device.Queues[0].IsReady);
        Assert.Single(logger.Entries, e => e.Message.Contains("NoSuchQueue", StringComparison.Ordinal)); // logged once per kind

        // The device still comes up normally on its real queue.
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        Assert.True(device.Queues[0].IsReady);
        Assert.True(device.IsLive);
    }

    [Fact]
    public void DriverFeatures_WithASelectorPastTheSecondWord_AreIgnored()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Status = DeviceStatus.Acknowledge;
        mmio.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        ulong wanted = VirtioFeatures.CoreDefaults & mmio.ReadDeviceFeatures();
        mmio.WriteDriverFeatures(wanted);
        Assert.Equal(wanted, device.StagedDriverFeatures);

        mmio.Write(VirtioMmioRegister.DriverFeaturesSel, 2);
        mmio.Write(VirtioMmioRegister.DriverFeatures, 0xFFFF_FFFF);
        mmio.Write(VirtioMmioRegister.DriverFeaturesSel, 0x8000_0000);
        mmio.Write(VirtioMmioRegister.DriverFeatures, 0xFFFF_FFFF);
        Assert.Equal(wanted, device.StagedDriverFeatures);

        mmio.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk;
        Assert.NotEqual(DeviceStatus.None, mmio.Status & DeviceStatus.FeaturesOk);
        Assert.Equal(wanted, device.DriverFeatures);
    }
}
