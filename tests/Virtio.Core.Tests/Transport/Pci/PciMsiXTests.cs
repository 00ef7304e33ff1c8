using System;
using System.Linq;
using Virtio.Core.Devices;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>MSI-X (PCI 3.0 §6.8): the table, masking, pending bits, Function Mask, Enable, Bus Master; and virtio's vectors (§4.1.5).</summary>
public sealed class PciMsiXTests
{
    private static MsiMessage MessageFor(ushort vector) => new(0xFEE0_1000 + (vector * 0x1000ul), 0x40u + vector);

    /// <summary>A probed function with MSI-X on, every vector programmed and unmasked, queue 0 on vector 1, live.</summary>
    private static PciRig Live(int queues = 1)
    {
        var rig = new PciRig(queues);
        rig.Driver.Probe();
        rig.Driver.EnableMsiX(MessageFor);
        rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
        return rig;
    }

    private static void Complete(PciRig rig)
    {
        rig.Guest.AddChain(BufferSpec.Write(8));
        rig.Guest.Kick();
        rig.Driver.Notify(0);
        Assert.True(rig.Guest.TryGetUsed(out _, out _));
    }

    [Fact]
    public void Table_ReadsAsProgrammed_MaskedAtReset()
    {
        using var rig = new PciRig(queues: 2);
        rig.Driver.Probe();
        ulong table = rig.Function.TryGetBarAddress(1, out ulong bar1) ? bar1 : 0;
        for (ulong v = 0; v < 3; v++)
        {
            Assert.Equal(0ul, rig.Driver.ReadMemory(table + (16 * v), 8));
            Assert.Equal(0ul, rig.Driver.ReadMemory(table + (16 * v) + 8, 4));
            Assert.Equal(1ul, rig.Driver.ReadMemory(table + (16 * v) + 12, 4)); // Mask set after reset
        }

        rig.Driver.WriteMemory(table + 16, 8, 0x0000_0001_FEE0_2000); // a QWORD write of the address
        rig.Driver.WriteMemory(table + 24, 4, 0x41);
        rig.Driver.WriteMemory(table + 28, 4, 0xFFFF_FFFE); // only the Mask bit is defined
        Assert.Equal(0x1_FEE0_2000ul, rig.Driver.ReadMemory(table + 16, 8));
        Assert.Equal(0x0000_0000_0000_0041ul, rig.Driver.ReadMemory(table + 24, 8));
        Assert.Equal((new MsiMessage(0x1_FEE0_2000, 0x41), true), rig.MsiX.Last(1)); // masked: MSI-X Enable is clear
    }

    [Fact]
    public void Configure_IsCalledOnEachChangeOfMessageOrEffectiveMask_Only()
    {
        using var rig = new PciRig(queues: 1);
        rig.Driver.Probe();
        Assert.Empty(rig.MsiX.Configured); // masked with message 0: what the embedder assumes
        rig.Driver.EnableMsiX(MessageFor);
        Assert.Equal((MessageFor(0), false), rig.MsiX.Last(0));
        Assert.Equal((MessageFor(1), false), rig.MsiX.Last(1));
        int calls = rig.MsiX.Configured.Count;
        rig.Driver.SetMsiXFunctionMask(false); // no change
        Assert.Equal(calls, rig.MsiX.Configured.Count);
        rig.Driver.SetMsiXFunctionMask(true);
        Assert.Equal((MessageFor(0), true), rig.MsiX.Last(0));
        Assert.Equal((MessageFor(1), true), rig.MsiX.Last(1));
        Assert.Equal(calls + 2, rig.MsiX.Configured.Count);
    }

    [Fact]
    public void MaskedVector_SetsItsPendingBit_AndIsDeliveredWhenUnmasked()
    {
        using var rig = Live();
        rig.Driver.WriteMsiXEntry(1, MessageFor(1), masked: true);
        Complete(rig);
        Assert.Equal(0, rig.MsiX.RaisedCount(1));
        Assert.True(rig.Driver.IsMsiXPending(1));
        Assert.False(rig.Driver.IsMsiXPending(0));
        Complete(rig); // still one pending bit: messages coalesce while masked
        Assert.Equal(0, rig.MsiX.RaisedCount(1));

        rig.Driver.WriteMemory(TableAddress(rig) + 16 + 12, 4, 0); // unmask
        Assert.Equal(1, rig.MsiX.RaisedCount(1));
        Assert.False(rig.Driver.IsMsiXPending(1));
        Assert.Equal((MessageFor(1), false), rig.MsiX.Last(1));

        // Configure (unmasked) came before the raise, so the embedder's route was ready.
        var log = rig.MsiX.Configured.ToArray();
        Assert.Equal((ushort)1, log[^1].Vector);
        Assert.False(log[^1].Masked);
    }

    [Fact]
    public void FunctionMask_HoldsEveryVector_AndReleasesThePendingOnes()
    {
        using var rig = Live();
        rig.Driver.SetMsiXFunctionMask(true);
        Complete(rig);
        rig.Device.ChangeConfig(0, 7);
        Assert.Empty(rig.MsiX.Raised);
        Assert.True(rig.Driver.IsMsiXPending(0));
        Assert.True(rig.Driver.IsMsiXPending(1));
        rig.Driver.SetMsiXFunctionMask(false);
        Assert.Equal(1, rig.MsiX.RaisedCount(0));
        Assert.Equal(1, rig.MsiX.RaisedCount(1));
        Assert.False(rig.Driver.IsMsiXPending(0));
        Assert.False(rig.Driver.IsMsiXPending(1));
    }

    [Fact]
    public void BusMasterClear_HoldsMsiX_TheFunctionMayNotWriteTheMessage()
    {
        using var rig = Live();
        rig.Driver.WriteConfig(0x04, 2, 0x2); // memory on, bus master off
        rig.Device.ChangeConfig(0, 7);
        Assert.Empty(rig.MsiX.Raised);
        Assert.True(rig.Driver.IsMsiXPending(0));
        Assert.Equal((MessageFor(0), true), rig.MsiX.Last(0));
        rig.Driver.WriteConfig(0x04, 2, 0x6);
        Assert.Equal(1, rig.MsiX.RaisedCount(0));
    }

    [Fact]
    public void DisablingMsiX_MasksEveryVector_AndInterruptsGoToIntx()
    {
        using var rig = Live();
        int control = rig.Driver.MsiXCapabilityOffset + 2;
        rig.Driver.WriteConfig(control, 2, rig.Driver.ReadConfig(control, 2) & ~0x8000u);
        Assert.False(rig.Function.IsMsiXEnabled);
        Assert.Equal((MessageFor(1), true), rig.MsiX.Last(1));
        Complete(rig);
        Assert.Empty(rig.MsiX.Raised);
        Assert.False(rig.Driver.IsMsiXPending(1)); // INTx took it: nothing is pending for MSI-X
        Assert.Equal(1, rig.Intx.UsedBuffer);
        Assert.Equal(1, (int)rig.Driver.ReadIsr());
    }

    [Fact]
    public void NoVector_MeansNoInterrupt()
    {
        using var rig = Live();
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 0);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueMsixVector, 2, VirtioPciFunction.NoVector);
        rig.Driver.WriteCommon(VirtioPciCommonConfig.ConfigMsixVector, 2, VirtioPciFunction.NoVector);
        Complete(rig);
        rig.Device.ChangeConfig(0, 3);
        Assert.Empty(rig.MsiX.Raised);
        Assert.Equal(0, rig.Intx.UsedBuffer + rig.Intx.ConfigurationChange);
        Assert.False(rig.Driver.IsMsiXPending(0) || rig.Driver.IsMsiXPending(1));
    }

    [Fact]
    public void ConfigChange_WithMsiX_RaisesTheConfigVector_AndSetsTheIsrConfigBitOnly()
    {
        using var rig = Live();
        rig.Device.ChangeConfig(0, 3);
        Assert.Equal(1, rig.MsiX.RaisedCount(0));
        Complete(rig);
        Assert.Equal(1, rig.MsiX.RaisedCount(1));
        Assert.Equal(2, (int)rig.Function.InterruptStatus); // §4.1.4.5.1: the config bit always; the queue bit only under INTx
        Assert.Equal(0, rig.Intx.UsedBuffer + rig.Intx.ConfigurationChange);
        Assert.False(rig.Function.IsIntxAsserted);
        Assert.Equal(0u, rig.Driver.ReadConfig(0x06, 2) & 0x08); // no INTx pending under MSI-X
    }

    [Fact]
    public void QueuesOnSeparateVectors_RaiseTheirOwn()
    {
        var rig = new PciRig(queues: 2);
        using (rig)
        {
            rig.Driver.Probe();
            rig.Driver.EnableMsiX(MessageFor);
            rig.Driver.Initialize(VirtioFeatures.CoreDefaults, rig.Guest);
            rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, 1);
            Assert.Equal(0xFFFFu, rig.Driver.ReadCommon(VirtioPciCommonConfig.QueueMsixVector, 2)); // not set up
            rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueMsixVector, 2, 2);
            rig.Function.Device.GuestNotifier!.Notify(Virtio.Core.Notifications.InterruptReason.UsedBuffer, 1);
            rig.Function.Device.GuestNotifier!.Notify(Virtio.Core.Notifications.InterruptReason.UsedBuffer, 0);
            Assert.Equal([(ushort)2, (ushort)1], rig.MsiX.Raised.ToArray());
        }
    }

    [Fact]
    public void Pba_IsReadOnly()
    {
        using var rig = Live();
        rig.Driver.SetMsiXFunctionMask(true);
        rig.Device.ChangeConfig(0, 3);
        ulong pba = PbaAddress(rig);
        Assert.Equal(1ul, rig.Driver.ReadMemory(pba, 8));
        rig.Driver.WriteMemory(pba, 8, 0);
        rig.Driver.WriteMemory(pba, 4, 0xFFFF_FFFF);
        Assert.Equal(1ul, rig.Driver.ReadMemory(pba, 8));
        Assert.Equal(1, rig.Logged("PbaWrite"));
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(0, 2)]
    [InlineData(2, 4)]
    [InlineData(4, 8)]
    [InlineData(0, 16)]
    public void TableAccess_NotADwordOrQword_IsIgnoredAndLoggedOnce(int offset, int width)
    {
        using var rig = Live();
        ulong entry = TableAddress(rig) + 16;
        var ones = new byte[width];
        ones.AsSpan().Fill(0xFF);
        Assert.True(rig.Function.TryWriteMemory(entry + (ulong)offset, ones));
        Assert.True(rig.Function.TryWriteMemory(entry + (ulong)offset, ones));
        Assert.Equal(MessageFor(1).Address, rig.Driver.ReadMemory(entry, 8));
        Assert.Equal(MessageFor(1).Data, rig.Driver.ReadMemory(entry + 8, 4));
        Assert.Equal(0ul, rig.Driver.ReadMemory(entry + 12, 4));
        Assert.Equal(1, rig.Logged(width > 8 ? "BarUnused" : "MsiXWrongWidth"));
    }

    [Fact]
    public void BetweenTheTableAndThePba_NothingIsThere()
    {
        using var rig = Live();
        ulong past = TableAddress(rig) + (16ul * (ulong)rig.Function.MsiXVectorCount);
        rig.Driver.WriteMemory(past, 4, 0xFFFF_FFFF);
        Assert.Equal(0ul, rig.Driver.ReadMemory(past, 4));
        Assert.Equal(1, rig.Logged("BarUnused"));
    }

    [Fact]
    public void ResetFunction_MasksTheTableAndDisablesMsiX_AndTellsTheEmbedder()
    {
        using var rig = Live();
        rig.Driver.SetMsiXFunctionMask(true);
        rig.Device.ChangeConfig(0, 3);
        rig.Function.ResetFunction();
        Assert.False(rig.Function.IsMsiXEnabled);
        Assert.Equal((new MsiMessage(0, 0), true), rig.MsiX.Last(0));
        Assert.Equal((new MsiMessage(0, 0), true), rig.MsiX.Last(1));
        rig.Driver.Probe();
        Assert.False(rig.Driver.IsMsiXPending(0));
        Assert.Equal(1ul, rig.Driver.ReadMemory(TableAddress(rig) + 12, 4));
        Assert.Equal(0u, rig.Driver.ReadConfig(rig.Driver.MsiXCapabilityOffset + 2, 2) & 0xC000);
    }

    private static ulong TableAddress(PciRig rig)
    {
        Assert.True(rig.Function.TryGetBarAddress(1, out ulong bar1));
        return bar1 + (rig.Driver.ReadConfig(rig.Driver.MsiXCapabilityOffset + 4, 4) & ~7u);
    }

    private static ulong PbaAddress(PciRig rig)
    {
        Assert.True(rig.Function.TryGetBarAddress(1, out ulong bar1));
        return bar1 + (rig.Driver.ReadConfig(rig.Driver.MsiXCapabilityOffset + 8, 4) & ~7u);
    }
}
