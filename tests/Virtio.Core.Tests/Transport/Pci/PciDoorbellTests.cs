using System;
using Virtio.Core.Devices;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>The notify capability's doorbells (virtio 1.2 §4.1.4.4, §4.1.5.2) and where a kick goes.</summary>
public sealed class PciDoorbellTests
{
    private static PciRig Live(uint multiplier = 4, int queues = 3)
    {
        var rig = new PciRig(queues, options: new VirtioPciFunctionOptions { NotifyOffMultiplier = multiplier });
        rig.Driver.Probe();
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        rig.Guest.AddChain(BufferSpec.Write(8));
        rig.Guest.Kick();
        return rig;
    }

    [Fact]
    public void WithMultiplier4_TheAddressTellsTheQueue()
    {
        using var rig = Live(4);
        var kicked = new System.Collections.Generic.List<ushort>();
        rig.Function.QueueNotifyHandler = q => { kicked.Add(q); return true; };
        rig.Driver.WriteMemory(rig.Driver.NotifyBaseAddress + 8, 2, 0);
        rig.Driver.WriteMemory(rig.Driver.NotifyBaseAddress + 4, 4, 1); // 32 bits are accepted too
        rig.Driver.WriteMemory(rig.Driver.NotifyBaseAddress, 2, 0);
        Assert.Equal([(ushort)2, (ushort)1, (ushort)0], kicked);
    }

    [Fact]
    public void WithMultiplier0_TheValueTellsTheQueue()
    {
        using var rig = Live(0);
        var kicked = new System.Collections.Generic.List<ushort>();
        rig.Function.QueueNotifyHandler = q => { kicked.Add(q); return false; };
        rig.Driver.Notify(2);
        rig.Driver.Notify(0);
        Assert.Equal([(ushort)2, (ushort)0], kicked);
        Assert.True(rig.Guest.TryGetUsed(out _, out _)); // the handler declined queue 0: the device served it
        rig.Driver.WriteMemory(rig.Driver.NotifyBaseAddress, 2, 3);
        Assert.Equal(1, rig.Logged("NoSuchQueue"));
        Assert.Equal(2, kicked.Count);
    }

    [Fact]
    public void WithoutAHandler_TheDeviceServesTheQueueOnTheCallingThread()
    {
        using var rig = Live(4, queues: 1);
        rig.Driver.Notify(0);
        Assert.True(rig.Guest.TryGetUsed(out _, out uint length));
        Assert.Equal(8u, length);
    }

    [Theory]
    [InlineData(4u, 0, 1)]
    [InlineData(4u, 0, 8)]
    [InlineData(4u, 2, 2)] // between two doorbells
    [InlineData(4u, 12, 2)] // past the last queue's doorbell
    [InlineData(2u, 0, 4)] // 4 bytes would reach the next doorbell
    [InlineData(0u, 2, 2)]
    public void BadDoorbellWrite_IsIgnoredAndLoggedOnce(uint multiplier, int offset, int width)
    {
        using var rig = Live(multiplier);
        int kicks = 0;
        rig.Function.QueueNotifyHandler = _ => { kicks++; return true; };
        var data = new byte[width];
        Assert.True(rig.Function.TryWriteMemory(rig.Driver.NotifyBaseAddress + (ulong)offset, data));
        Assert.True(rig.Function.TryWriteMemory(rig.Driver.NotifyBaseAddress + (ulong)offset, data));
        Assert.Equal(0, kicks);
        Assert.Equal(1, rig.Logged("NotifyAccess") + rig.Logged("BarUnused"));
    }

    [Fact]
    public void DoorbellRead_IsIgnored()
    {
        using var rig = Live();
        Assert.Equal(0ul, rig.Driver.ReadMemory(rig.Driver.NotifyBaseAddress, 2));
        Assert.Equal(1, rig.Logged("NotifyAccess"));
    }

    [Fact]
    public void DoorbellWithoutBusMaster_IsIgnored_TheDeviceMayNotTouchGuestMemory()
    {
        using var rig = Live(4, queues: 1);
        rig.Driver.WriteConfig(0x04, 2, 0x2);
        rig.Driver.Notify(0);
        Assert.False(rig.Guest.TryGetUsed(out _, out _));
        Assert.Equal(1, rig.Logged("NotifyWithoutBusMaster"));
        rig.Driver.WriteConfig(0x04, 2, 0x6);
        rig.Driver.Notify(0);
        Assert.True(rig.Guest.TryGetUsed(out _, out _));
    }

    [Fact]
    public void DeviceConfig_IsReachedThroughItsStructure_WithNaturalWidths()
    {
        using var rig = Live();
        Assert.Equal(0x10u, rig.Driver.ReadDeviceConfig(0, 1));
        Assert.Equal(0x1312_1110u, rig.Driver.ReadDeviceConfig(0, 4));
        Assert.Equal(0x1716_1514_1312_1110ul, rig.Driver.ReadMemory(rig.Driver.DeviceConfigAddress, 8));
        Assert.Equal(0u, rig.Driver.ReadDeviceConfig(0xFC, 4)); // inside the length, past the device's bytes: zero
        Assert.Equal(0ul, rig.Driver.ReadMemory(rig.Driver.DeviceConfigAddress + 1, 2)); // misaligned
        Assert.Equal(0ul, rig.Driver.ReadMemory(rig.Driver.DeviceConfigAddress + 0x100, 4)); // past the length
        Assert.Equal(1, rig.Logged("DeviceConfigAccess"));
    }
}
