using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>The PCI configuration access capability (virtio 1.2 §4.1.4.9): a window into the BARs through configuration space.</summary>
public sealed class PciConfigWindowTests
{
    private static int Cap(PciRig rig)
    {
        rig.Driver.Probe();
        Assert.NotEqual(0, rig.Driver.PciConfigAccessOffset);
        rig.Driver.WriteConfig(0x04, 2, 0); // the window needs no decoding BAR: firmware uses it before it places any
        return rig.Driver.PciConfigAccessOffset;
    }

    private static void Point(PciRig rig, int cap, uint bar, uint offset, uint length)
    {
        rig.Driver.WriteConfig(cap + 4, 1, bar);
        rig.Driver.WriteConfig(cap + 8, 4, offset);
        rig.Driver.WriteConfig(cap + 12, 4, length);
    }

    [Fact]
    public void Read_ReachesTheCommonConfiguration()
    {
        using var rig = new PciRig(queues: 3);
        int cap = Cap(rig);
        Point(rig, cap, 0, VirtioPciCommonConfig.NumQueues, 2);
        Assert.Equal(3u, rig.Driver.ReadConfig(cap + 16, 4));
        Assert.Equal(3u, rig.Driver.ReadConfig(cap + 16, 2));
        Assert.Equal(0u, rig.Driver.ReadConfig(cap + 4, 1)); // the bar field reads back as written
        Assert.Equal(2u, rig.Driver.ReadConfig(cap + 12, 4));
    }

    [Fact]
    public void Write_ReachesTheCommonConfiguration()
    {
        using var rig = new PciRig();
        int cap = Cap(rig);
        Point(rig, cap, 0, VirtioPciCommonConfig.DeviceStatus, 1);
        rig.Driver.WriteConfig(cap + 16, 1, (uint)DeviceStatus.Acknowledge);
        Assert.Equal(DeviceStatus.Acknowledge, rig.Device.Status);
        Point(rig, cap, 0, VirtioPciCommonConfig.QueueSelect, 2);
        rig.Driver.WriteConfig(cap + 16, 4, 0xAAAA_0001); // only cap.length bytes go to the BAR
        Point(rig, cap, 0, VirtioPciCommonConfig.QueueSelect, 2);
        Assert.Equal(1u, rig.Driver.ReadConfig(cap + 16, 4));
    }

    [Fact]
    public void IsrRead_ThroughTheWindow_Clears()
    {
        using var rig = new PciRig();
        int cap = Cap(rig);
        rig.Function.Device.GuestNotifier!.Notify(InterruptReason.UsedBuffer, 0);
        Point(rig, cap, 0, 0x1000, 1);
        Assert.Equal(1u, rig.Driver.ReadConfig(cap + 16, 1));
        Assert.Equal(0, (int)rig.Function.InterruptStatus);
    }

    [Fact]
    public void MsiXTable_IsReachableThroughTheWindow()
    {
        using var rig = new PciRig();
        int cap = Cap(rig);
        Point(rig, cap, 1, 8, 4);
        rig.Driver.WriteConfig(cap + 16, 4, 0x77);
        Point(rig, cap, 1, 12, 4);
        Assert.Equal(1u, rig.Driver.ReadConfig(cap + 16, 4)); // masked at reset
        Assert.Equal((new MsiMessage(0, 0x77), true), rig.MsiX.Last(0));
    }

    [Theory]
    [InlineData(0u, 0x14u, 3u)] // length not 1, 2 or 4
    [InlineData(0u, 0x12u, 4u)] // offset not aligned to the length
    [InlineData(5u, 0x14u, 1u)] // a BAR the function does not implement
    [InlineData(0xFFu, 0x14u, 1u)]
    [InlineData(0u, 0x14u, 0u)]
    public void BadWindow_IsIgnoredAndLoggedOnce(uint bar, uint offset, uint length)
    {
        using var rig = new PciRig();
        int cap = Cap(rig);
        Point(rig, cap, bar, offset, length);
        rig.Driver.WriteConfig(cap + 16, 4, 0xFF);
        rig.Driver.ReadConfig(cap + 16, 4);
        Assert.Equal(DeviceStatus.None, rig.Device.Status);
        Assert.Equal(1, rig.Logged("ConfigWindow"));
    }
}
