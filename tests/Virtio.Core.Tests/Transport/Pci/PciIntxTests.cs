using Virtio.Core.Devices;
using Virtio.Core.Notifications;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>INTx with MSI-X off (virtio 1.2 §4.1.4.5, §4.1.5.3, §4.1.5.4): the ISR, read-to-clear, Interrupt Disable, the level.</summary>
public sealed class PciIntxTests
{
    private static PciRig Live(bool msiX = true)
    {
        var rig = new PciRig(queues: 1, msiX: msiX);
        rig.Driver.Probe();
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        return rig;
    }

    [Fact]
    public void ConfigChange_SetsIsrBit1_AndRaisesTheLine()
    {
        using var rig = Live();
        rig.Device.ChangeConfig(0, 1);
        Assert.Equal(1, rig.Intx.ConfigurationChange);
        Assert.Equal(2, (int)rig.Function.InterruptStatus);
        Assert.True(rig.Function.IsIntxAsserted);
        rig.Function.Device.GuestNotifier!.Notify(InterruptReason.UsedBuffer, 0);
        Assert.Equal(3, (int)rig.Driver.ReadIsr());
        Assert.Equal(0, (int)rig.Function.InterruptStatus);
        Assert.False(rig.Function.IsIntxAsserted);
    }

    [Fact]
    public void InterruptDisable_KeepsTheLineDown_ButTheIsrAndStatusStillShowTheReason()
    {
        using var rig = Live();
        rig.Driver.WriteConfig(0x04, 2, 0x0406);
        rig.Function.Device.GuestNotifier!.Notify(InterruptReason.UsedBuffer, 0);
        Assert.Equal(0, rig.Intx.UsedBuffer);
        Assert.False(rig.Function.IsIntxAsserted);
        Assert.Equal(1, (int)rig.Function.InterruptStatus);
        Assert.Equal(0x08u, rig.Driver.ReadConfig(0x06, 2) & 0x08); // PCI 3.0: Interrupt Status ignores Interrupt Disable

        // Clearing Interrupt Disable with a reason held raises the level again.
        rig.Driver.WriteConfig(0x04, 2, 0x0006);
        Assert.Equal(1, rig.Intx.UsedBuffer);
        Assert.True(rig.Function.IsIntxAsserted);
    }

    [Fact]
    public void ClearingInterruptDisable_WithNothingHeld_RaisesNothing()
    {
        using var rig = Live();
        rig.Driver.WriteConfig(0x04, 2, 0x0406);
        rig.Driver.WriteConfig(0x04, 2, 0x0006);
        Assert.Equal(0, rig.Intx.UsedBuffer + rig.Intx.ConfigurationChange);
    }

    [Fact]
    public void IsrAccess_OtherThanAByteRead_IsIgnored_AndDoesNotClear()
    {
        using var rig = Live();
        rig.Function.Device.GuestNotifier!.Notify(InterruptReason.UsedBuffer, 0);
        Assert.Equal(0ul, rig.Driver.ReadMemory(rig.Driver.IsrAddress, 4));
        Assert.Equal(0ul, rig.Driver.ReadMemory(rig.Driver.IsrAddress + 1, 1));
        rig.Driver.WriteMemory(rig.Driver.IsrAddress, 1, 0);
        Assert.Equal(1, (int)rig.Function.InterruptStatus);
        Assert.Equal(1, rig.Logged("IsrAccess"));
        Assert.Equal(1, (int)rig.Driver.ReadIsr());
    }

    [Fact]
    public void WithoutAnMsiXCapability_IntxCarriesEverything()
    {
        using var rig = Live(msiX: false);
        rig.Guest.AddChain(BufferSpec.Write(8));
        rig.Guest.Kick();
        rig.Driver.Notify(0);
        Assert.Equal(1, rig.Intx.UsedBuffer);
        Assert.Equal(1, (int)rig.Driver.ReadIsr());
    }

    [Fact]
    public void Reset_ClearsTheIsr()
    {
        using var rig = Live();
        rig.Function.Device.GuestNotifier!.Notify(InterruptReason.UsedBuffer, 0);
        rig.Driver.Status = DeviceStatus.None;
        Assert.Equal(0, (int)rig.Function.InterruptStatus);
        Assert.False(rig.Function.IsIntxAsserted);
    }
}
