using System;
using System.Linq;
using Virtio.Core.Devices;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Devices;

/// <summary>An exception out of device code breaks that queue (DEVICE_NEEDS_RESET, one logged reason), never the caller's thread.</summary>
public sealed class DeviceFaultTests
{
    [Fact]
    public void DeviceThatThrowsWhileProcessing_BreaksTheQueue_AndTheNotifyReturns()
    {
        using var driver = new GuestDriver(64);
        var logger = new CapturingLogger();
        var device = new RecordingDevice(driver.Memory, logger: logger) { ThrowWhileProcessing = true };
        var line = new InterruptRecorder();
        var mmio = new MmioDriver(new VirtioMmioTransport(device, line, logger));
        mmio.Initialize(VirtioFeatures.Version1, driver);
        driver.AddChain(BufferSpec.Write(16));
        driver.Kick();

        // The vCPU thread's MMIO write (the synchronous path) must come back.
        mmio.Notify(0);
        mmio.Notify(0);

        Assert.True((mmio.Status & DeviceStatus.DeviceNeedsReset) != 0, "DEVICE_NEEDS_RESET must be set");
        Assert.Equal(QueueError.DeviceFailed, device.Queues[0].Error);
        Assert.Single(logger.Entries, e => e.EventId.Id == 1105 && e.Exception is InvalidOperationException);
        Assert.Equal(1, logger.Entries.Count(e => e.EventId.Id == 1101));
    }
}
