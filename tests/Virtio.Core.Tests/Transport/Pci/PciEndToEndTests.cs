using Virtio.Core.Devices;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>A request from <see cref="PciDriver"/> and <see cref="GuestDriver"/> through the function to a device and back.</summary>
public sealed class PciEndToEndTests
{
    private static MsiMessage MessageFor(ushort vector) => new(0xFEE0_0000, 0x30u + vector);

    [Fact]
    public void Request_WithMsiX_CompletesAndRaisesTheQueueVector()
    {
        using var rig = new PciRig(queues: 1);
        rig.Driver.Probe();
        rig.Driver.EnableMsiX(MessageFor);
        ulong negotiated = rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        Assert.Equal(VirtioFeatures.Version1, negotiated & VirtioFeatures.Version1);
        Assert.True(rig.Device.IsLive);
        Assert.True(rig.Function.IsMsiXEnabled);

        rig.Guest.AddChain(BufferSpec.Readable(16), BufferSpec.Write(512), BufferSpec.Write(1));
        Assert.True(rig.Guest.Kick());
        rig.Driver.Notify(0);
        Assert.True(rig.Guest.TryGetUsed(out _, out uint length));
        Assert.Equal(513u, length);

        // Queue 0 got vector 1 (vector 0 is configuration changes); the embedder learned its message first.
        Assert.Equal(1, rig.MsiX.RaisedCount(1));
        Assert.Equal(0, rig.MsiX.RaisedCount(0));
        Assert.Equal((MessageFor(1), false), rig.MsiX.Last(1));
        Assert.Equal(0, rig.Intx.UsedBuffer);
        Assert.Equal(0, (int)rig.Function.InterruptStatus); // §4.1.5.3: no queue bit in the ISR with MSI-X
    }

    [Fact]
    public void Request_WithIntx_SetsTheIsrBeforeTheLine_AndTheIsrReadClearsIt()
    {
        using var rig = new PciRig(queues: 1);
        rig.Driver.Probe();
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        Assert.False(rig.Function.IsMsiXEnabled);

        rig.Guest.AddChain(BufferSpec.Write(64));
        Assert.True(rig.Guest.Kick());
        rig.Driver.Notify(0);
        Assert.True(rig.Guest.TryGetUsed(out _, out uint length));
        Assert.Equal(64u, length);
        Assert.Equal(1, rig.Intx.UsedBuffer);
        Assert.True(rig.Function.IsIntxAsserted);
        Assert.Equal(0x08u, rig.Driver.ReadConfig(0x06, 2) & 0x08); // PCI Status: Interrupt Status

        Assert.Equal(1, (int)rig.Driver.ReadIsr());
        Assert.False(rig.Function.IsIntxAsserted);
        Assert.Equal(0, (int)rig.Driver.ReadIsr());
        Assert.Equal(0u, rig.Driver.ReadConfig(0x06, 2) & 0x08);
        Assert.Empty(rig.MsiX.Raised);
    }
}
