using System;
using System.Linq;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport;

public sealed class VirtioMmioTransportTests
{
    [Fact]
    public void IdentityRegisters_ReadAsSpecified()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory, queues: 3, queueMaxSize: 128);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder(), vendorId: 0x1234));
        Assert.Equal(0x74726976u, mmio.Read(VirtioMmioRegister.MagicValue));
        Assert.Equal(2u, mmio.Read(VirtioMmioRegister.Version));
        Assert.Equal((uint)RecordingDevice.TestDeviceId, mmio.Read(VirtioMmioRegister.DeviceId));
        Assert.Equal(0x1234u, mmio.Read(VirtioMmioRegister.VendorId));
        Assert.Equal(device.DeviceFeatures, mmio.ReadDeviceFeatures());
        mmio.Write(VirtioMmioRegister.DeviceFeaturesSel, 2);
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.DeviceFeatures));
        mmio.Write(VirtioMmioRegister.QueueSel, 2);
        Assert.Equal(128u, mmio.Read(VirtioMmioRegister.QueueNumMax));
        mmio.Write(VirtioMmioRegister.QueueSel, 3);
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueNumMax)); // no such queue
        Assert.Equal(uint.MaxValue, mmio.Read(VirtioMmioRegister.ShmLenLow));
        Assert.Equal(uint.MaxValue, mmio.Read(VirtioMmioRegister.ShmLenHigh));
    }

    [Fact]
    public void FullProbe_AsLinuxDoes_ReachesDriverOk_AndServesAQueue()
    {
        using var guest = new GuestDriver(64, eventIdx: true, indirect: true);
        var device = new RecordingDevice(guest.Memory);
        var line = new InterruptRecorder();
        var mmio = new MmioDriver(new VirtioMmioTransport(device, line));
        ulong negotiated = mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        Assert.Equal(VirtioFeatures.CoreDefaults, negotiated);
        Assert.True(device.IsLive);
        Assert.True(device.Queues[0].EventIdx && device.Queues[0].IndirectDescriptors);

        guest.AddChain(BufferSpec.Readable(16), BufferSpec.Write(512), BufferSpec.Write(1));
        Assert.True(guest.Kick());
        mmio.Notify(0);
        Assert.True(guest.TryGetUsed(out _, out uint length));
        Assert.Equal(513u, length);
        Assert.Equal(1, line.UsedBuffer);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(8)]
    public void RegisterAccess_OfTheWrongWidth_IsIgnoredAndLoggedOnce(int width)
    {
        using var guest = new GuestDriver();
        var logger = new CapturingLogger();
        var device = new RecordingDevice(guest.Memory);
        var transport = new VirtioMmioTransport(device, new InterruptRecorder(), logger);
        byte[] data = Enumerable.Repeat((byte)0xFF, width).ToArray();
        transport.Read(VirtioMmioRegister.MagicValue, data);
        Assert.All(data, b => Assert.Equal(0, b));
        transport.Write(VirtioMmioRegister.Status, Enumerable.Repeat((byte)1, width).ToArray());
        transport.Write(VirtioMmioRegister.Status, Enumerable.Repeat((byte)1, width).ToArray());
        Assert.Equal(DeviceStatus.None, device.Status);
        Assert.Single(logger.Entries, e => e.EventId.Id == 1201);
    }

    [Fact]
    public void MisalignedRegisterAccess_IsIgnored()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var transport = new VirtioMmioTransport(device, new InterruptRecorder());
        byte[] data = [1, 0, 0, 0];
        transport.Write(VirtioMmioRegister.Status + 2, data);
        Assert.Equal(DeviceStatus.None, device.Status);
        transport.Read(VirtioMmioRegister.MagicValue + 1, data);
        Assert.Equal([0, 0, 0, 0], data);
    }

    [Fact]
    public void ReadOnlyRegisters_IgnoreWrites_AndWriteOnlyOnesReadZero()
    {
        using var guest = new GuestDriver();
        var logger = new CapturingLogger();
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder(), logger));
        mmio.Write(VirtioMmioRegister.MagicValue, 0);
        mmio.Write(VirtioMmioRegister.QueueNumMax, 1);
        mmio.Write(VirtioMmioRegister.ConfigGeneration, 7);
        Assert.Equal(VirtioMmioTransport.Magic, mmio.Read(VirtioMmioRegister.MagicValue));
        Assert.Equal(256u, mmio.Read(VirtioMmioRegister.QueueNumMax));
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueNotify));
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueDescLow));
        Assert.Equal(0u, mmio.Read(0x0f0)); // no register there
        Assert.Single(logger.Entries, e => e.Message.Contains("WriteOfReadOnly", StringComparison.Ordinal));
        Assert.Single(logger.Entries, e => e.Message.Contains("ReadOfWriteOnly", StringComparison.Ordinal));
        Assert.Single(logger.Entries, e => e.Message.Contains("UnknownRegister", StringComparison.Ordinal));
    }

    [Fact]
    public void QueueRegisters_WrittenWhileTheQueueIsReady_AreIgnored()
    {
        using var guest = new GuestDriver();
        var logger = new CapturingLogger();
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder(), logger));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        var before = device.Queues[0].SaveState();

        mmio.Write(VirtioMmioRegister.QueueNum, 4);
        mmio.Write(VirtioMmioRegister.QueueDescLow, 0x8000);
        mmio.Write(VirtioMmioRegister.QueueDriverHigh, 1);
        mmio.Write(VirtioMmioRegister.QueueDeviceLow, 0x9000);

        Assert.Equal(before, device.Queues[0].SaveState());
        Assert.Single(logger.Entries, e => e.Message.Contains("QueueLive", StringComparison.Ordinal));

        // QueueReady 0 stops the queue; then it can be reconfigured.
        mmio.Write(VirtioMmioRegister.QueueReady, 0);
        Assert.Equal(0u, mmio.Read(VirtioMmioRegister.QueueReady));
        mmio.Write(VirtioMmioRegister.QueueNum, 8);
        Assert.Equal((ushort)8, device.Queues[0].Size);
    }

    [Fact]
    public void QueueAddresses_AreAssembledFromLowAndHighHalves()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Write(VirtioMmioRegister.QueueSel, 0);
        mmio.Write(VirtioMmioRegister.QueueDescLow, 0x89ABCDE0);
        mmio.Write(VirtioMmioRegister.QueueDescHigh, 0x01234567);
        mmio.Write(VirtioMmioRegister.QueueDriverLow, 0x1000);
        mmio.Write(VirtioMmioRegister.QueueDeviceHigh, 0x2);
        Assert.Equal(0x0123456789ABCDE0UL, device.Queues[0].DescriptorTable.Value);
        Assert.Equal(0x1000UL, device.Queues[0].AvailRing.Value);
        Assert.Equal(0x2_0000_0000UL, device.Queues[0].UsedRing.Value);
    }

    [Fact]
    public void QueueNotify_ForANonexistentQueue_IsHarmless()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        mmio.Notify(7);
        mmio.Write(VirtioMmioRegister.QueueNotify, uint.MaxValue);
        Assert.Empty(device.Completed);
        Assert.True(device.IsLive);
    }

    [Fact]
    public void QueueNotifyHandler_TakesTheKickInsteadOfTheVcpuThread()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var transport = new VirtioMmioTransport(device, new InterruptRecorder());
        ushort? taken = null;
        transport.QueueNotifyHandler = q => { taken = q; return true; };
        var mmio = new MmioDriver(transport);
        mmio.Initialize(VirtioFeatures.CoreDefaults, guest);
        guest.AddChain(BufferSpec.Write(8));
        guest.Kick();
        mmio.Notify(0);
        Assert.Equal((ushort)0, taken);
        Assert.Empty(device.Completed);
    }

    [Fact]
    public void InterruptStatus_StaysRight_WhileAnotherThreadRaisesAndTheVcpuAcknowledges()
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var line = new InterruptRecorder();
        var transport = new VirtioMmioTransport(device, line);
        var mmio = new MmioDriver(transport);
        const int Rounds = 20000;
        using var raised = new SemaphoreSlim(0);
        long acknowledged = 0;

        // The "I/O thread" raises a used-buffer interrupt per round; the "vCPU" acknowledges what it
        // sees. Every raise must be seen by an acknowledge: none lost, none invented.
        var io = new Thread(() =>
        {
            for (int i = 0; i < Rounds; i++)
            {
                device.GuestNotifier!.Notify(InterruptReason.UsedBuffer, 0);
                raised.Release();
            }
        });
        io.Start();
        for (int i = 0; i < Rounds; i++)
        {
            Assert.True(raised.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
            uint status = mmio.AcknowledgeInterrupts();
            Assert.True(status is 0 or 1, $"unexpected InterruptStatus {status}");
            acknowledged += status;
        }

        Assert.True(io.Join(TimeSpan.FromSeconds(10)));
        acknowledged += mmio.AcknowledgeInterrupts();
        Assert.Equal(Rounds, line.UsedBuffer);
        Assert.InRange(acknowledged, 1, Rounds);
        Assert.Equal(0u, transport.InterruptStatus);
    }
}
