using System;
using System.Linq;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Devices;

public sealed class VirtioDeviceTests
{
    private const DeviceStatus UpToFeatures = DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk;

    [Fact]
    public void FeaturesOk_IsRefused_WhenTheDriverAsksForAnythingNotOffered()
    {
        using var guest = new GuestDriver();
        var logger = new CapturingLogger();
        var device = new RecordingDevice(guest.Memory, features: VirtioFeatures.EventIdx, logger: logger);
        Assert.Equal(VirtioFeatures.EventIdx | VirtioFeatures.Version1, device.DeviceFeatures);

        device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver);
        device.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.IndirectDescriptors);
        device.WriteStatus(UpToFeatures);

        Assert.Equal(DeviceStatus.Acknowledge | DeviceStatus.Driver, device.Status);
        Assert.Equal(0UL, device.DriverFeatures);
        Assert.Contains(logger.Entries, e => e.EventId.Id == 1102);
    }

    [Fact]
    public void FeaturesOk_IsRefused_WithoutVersion1()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver);
        device.WriteDriverFeatures(VirtioFeatures.EventIdx);
        device.WriteStatus(UpToFeatures);
        Assert.Equal(0, (int)(device.Status & DeviceStatus.FeaturesOk));
    }

    [Fact]
    public void FeaturesOk_IsAccepted_ForASubset_AndFeaturesFreezeAfterwards()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver);
        device.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.EventIdx);
        device.WriteStatus(UpToFeatures);
        Assert.Equal(UpToFeatures, device.Status);
        Assert.True(device.IsNegotiated(VirtioFeatures.EventIdx));
        Assert.False(device.IsNegotiated(VirtioFeatures.IndirectDescriptors));

        device.WriteDriverFeatures(VirtioFeatures.Version1 | VirtioFeatures.IndirectDescriptors);
        Assert.False(device.IsNegotiated(VirtioFeatures.IndirectDescriptors));
    }

    [Fact]
    public void DriverOk_WithoutFeaturesOk_IsIgnored()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.DriverOk);
        Assert.Equal(DeviceStatus.Acknowledge | DeviceStatus.Driver, device.Status);
        Assert.False(device.IsLive);
    }

    [Fact]
    public void ClearingStatusBits_WithoutReset_IsIgnored()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver);
        device.WriteStatus(DeviceStatus.Acknowledge);
        Assert.Equal(DeviceStatus.Acknowledge | DeviceStatus.Driver, device.Status);
    }

    [Fact]
    public void Notify_BeforeDriverOk_DoesNotConsumeBuffers()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        mmio.WriteDriverFeatures(VirtioFeatures.Version1);
        mmio.Status = UpToFeatures;
        mmio.SetUpQueue(0, guest);
        guest.AddChain(BufferSpec.Write(8));
        guest.Kick();
        mmio.Notify(0);
        Assert.Empty(device.Completed);

        mmio.Status = UpToFeatures | DeviceStatus.DriverOk;
        mmio.Notify(0);
        Assert.Single(device.Completed);
    }

    [Fact]
    public void Reset_RunsTheHookFirst_ThenClearsQueuesFeaturesAndStatus()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory) { HoldCompletions = true };
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        guest.AddChain(BufferSpec.Write(8));
        guest.Kick();
        mmio.Notify(0);
        Assert.Single(device.Held);
        Assert.Equal(1, device.Queues[0].InFlightCount);
        int hookCallsBefore = device.ResetHookCalls; // the probe itself starts with a reset

        mmio.Status = DeviceStatus.None;

        Assert.Equal(hookCallsBefore + 1, device.ResetHookCalls);
        Assert.Empty(device.Held);
        Assert.Equal(DeviceStatus.None, device.Status);
        Assert.Equal(0UL, device.DriverFeatures);
        Assert.False(device.Queues[0].IsReady);
        Assert.Equal(0, device.Queues[0].InFlightCount);
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueReady));
        Assert.Equal(0u, mmio.Transport.InterruptStatus);

        // A completion arriving after the reset writes nothing into guest memory.
        Assert.False(device.Queues[0].AddUsed(0, 8));
        Assert.False(guest.TryGetUsed(out _, out _));
    }

    [Fact]
    public void ConfigChange_MovesTheGenerationAndInterrupts()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var line = new InterruptRecorder();
        var mmio = new MmioDriver(new VirtioMmioTransport(device, line));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        uint before = mmio.Read(VirtioMmioRegister.ConfigGeneration);

        device.ChangeConfig(2, 0xEE);

        Assert.Equal(before + 1, mmio.Read(VirtioMmioRegister.ConfigGeneration));
        Assert.Equal(1, line.ConfigurationChange);
        Assert.Equal(2u, mmio.AcknowledgeInterrupts());
        Span<byte> b = stackalloc byte[1];
        mmio.Transport.Read(VirtioMmioRegister.Config + 2, b);
        Assert.Equal(0xEE, b[0]);
    }

    [Fact]
    public void Completions_RaiseOneInterruptPerDrainedBatch()
    {
        using var guest = new GuestDriver(64);
        var device = new RecordingDevice(guest.Memory);
        var line = new InterruptRecorder();
        var mmio = new MmioDriver(new VirtioMmioTransport(device, line));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        for (int i = 0; i < 20; i++)
        {
            guest.AddChain(BufferSpec.Readable(16), BufferSpec.Write(64));
        }

        Assert.True(guest.Kick());
        mmio.Notify(0);

        Assert.Equal(20, device.Completed.Count);
        Assert.Equal(1, line.UsedBuffer);
        Assert.Equal(1u, mmio.AcknowledgeInterrupts());
        int used = 0;
        while (guest.TryGetUsed(out _, out uint length))
        {
            Assert.Equal(64u, length);
            used++;
        }

        Assert.Equal(20, used);
    }

    [Fact]
    public void InvalidQueueRings_AtQueueReady_PutTheDeviceInNeedsReset()
    {
        using var guest = new GuestDriver();
        var logger = new CapturingLogger();
        var device = new RecordingDevice(guest.Memory, logger: logger);
        var line = new InterruptRecorder();
        var mmio = new MmioDriver(new VirtioMmioTransport(device, line));
        mmio.Status = DeviceStatus.Acknowledge | DeviceStatus.Driver;
        mmio.WriteDriverFeatures(VirtioFeatures.Version1);
        mmio.Status = UpToFeatures;
        mmio.Write(VirtioMmioRegister.QueueSel, 0);
        mmio.Write(VirtioMmioRegister.QueueNum, 16);
        mmio.Write(VirtioMmioRegister.QueueDescLow, 0x1001); // misaligned
        mmio.Write(VirtioMmioRegister.QueueReady, 1);

        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueReady));
        Assert.True((mmio.Status & DeviceStatus.DeviceNeedsReset) != 0);
        Assert.Equal(1, line.ConfigurationChange);
        Assert.Single(logger.Entries, e => e.EventId.Id == 1101);
    }

    [Fact]
    public void Constructor_RejectsBadQueueShapes()
    {
        using var guest = new GuestDriver();
        Assert.Throws<ArgumentOutOfRangeException>(() => new RecordingDevice(guest.Memory, queues: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RecordingDevice(guest.Memory, queueMaxSize: 100));
    }
}
