using System;
using System.Collections.Generic;
using Virtio.Core.Transport.Pci;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>BAR sizing (PCI 3.0 §6.2.5.1), decoding under Memory Space Enable, and the moves the embedder is told of.</summary>
public sealed class PciBarTests
{
    [Fact]
    public void Sizing_AllOnesReadsBackTheSizeMask_OfTwo32BitMemoryBars()
    {
        using var rig = new PciRig(queues: 2);
        Assert.Equal(0x4000ul, rig.Function.GetBarSize(0)); // 4 pages: common, ISR, device, notify
        Assert.Equal(0x2000ul, rig.Function.GetBarSize(1)); // table page, PBA page
        rig.Driver.WriteConfig(0x10, 4, 0xFFFF_FFFF);
        rig.Driver.WriteConfig(0x14, 4, 0xFFFF_FFFF);
        Assert.Equal(0xFFFF_C000u, rig.Driver.ReadConfig(0x10, 4)); // bits 3..0 = 0: memory, 32-bit, not prefetchable
        Assert.Equal(0xFFFF_E000u, rig.Driver.ReadConfig(0x14, 4));
        for (int bar = 2; bar < 6; bar++)
        {
            rig.Driver.WriteConfig(0x10 + (4 * bar), 4, 0xFFFF_FFFF);
            Assert.Equal(0u, rig.Driver.ReadConfig(0x10 + (4 * bar), 4));
            Assert.Equal(0ul, rig.Function.GetBarSize(bar));
        }

        rig.Driver.WriteConfig(0x10, 4, 0xC000_1234); // low bits within the size are not the guest's
        Assert.Equal(0xC000_0000u, rig.Driver.ReadConfig(0x10, 4));
    }

    [Fact]
    public void Bar0_GrowsWithTheDoorbells()
    {
        using var rig = new PciRig(queues: 2000, queueMaxSize: 16);
        Assert.Equal(0x8000ul, rig.Function.GetBarSize(0)); // 0x3000 + 8000 bytes of doorbells, to a power of two
        Assert.Equal(2001, rig.Function.MsiXVectorCount);
    }

    [Fact]
    public void MemorySpaceEnable_GatesDecoding()
    {
        using var rig = new PciRig();
        rig.Driver.WriteConfig(0x10, 4, 0xC000_0000);
        var data = new byte[1];
        Assert.False(rig.Function.TryReadMemory(0xC000_0000, data));
        Assert.False(rig.Function.TryGetBarAddress(0, out _));
        Assert.False(rig.Function.TryGetNotifyAddress(0, out _));
        rig.Driver.WriteConfig(0x04, 2, 0x2);
        Assert.True(rig.Function.TryReadMemory(0xC000_0000, data));
        Assert.True(rig.Function.TryReadMemory(0xC000_3FFF, data));
        Assert.False(rig.Function.TryReadMemory(0xC000_4000, data));
        Assert.False(rig.Function.TryReadMemory(0xBFFF_FFFF, data));
        Assert.True(rig.Function.TryGetBarAddress(0, out ulong address));
        Assert.Equal(0xC000_0000ul, address);
        rig.Driver.WriteConfig(0x04, 2, 0);
        Assert.False(rig.Function.TryWriteMemory(0xC000_0000, data));
    }

    [Fact]
    public void AnAccessRunningPastTheBarsEnd_IsClaimedButIgnored()
    {
        using var rig = new PciRig();
        rig.Driver.Probe(0xC000_0000);
        var data = new byte[4];
        data.AsSpan().Fill(0xFF);
        Assert.True(rig.Function.TryReadMemory(0xC000_3FFE, data));
        Assert.All(data, b => Assert.Equal(0, b));
        Assert.Equal(1, rig.Logged("BarUnused"));
    }

    [Fact]
    public void BarsChanged_WhenTheGuestMovesADecodingBarOrTogglesDecoding_NotWhileDecodingIsOff()
    {
        using var rig = new PciRig();
        var seen = new List<(bool, ulong)>();
        rig.Function.BarsChanged += f => seen.Add((f.TryGetBarAddress(0, out ulong a), a));
        rig.Driver.WriteConfig(0x10, 4, 0xFFFF_FFFF); // sizing with decoding off: nothing to move
        rig.Driver.WriteConfig(0x10, 4, 0xC000_0000);
        rig.Driver.WriteConfig(0x14, 4, 0xC001_0000);
        Assert.Empty(seen);
        rig.Driver.WriteConfig(0x04, 2, 0x6);
        Assert.Equal([(true, 0xC000_0000ul)], seen);
        rig.Driver.WriteConfig(0x04, 2, 0x6); // no change
        Assert.Single(seen);
        rig.Driver.WriteConfig(0x10, 4, 0xD000_0000);
        Assert.Equal((true, 0xD000_0000ul), seen[^1]);
        Assert.True(rig.Function.TryGetNotifyAddress(1, out ulong doorbell));
        Assert.Equal(0xD000_3004ul, doorbell);
        rig.Driver.WriteConfig(0x14, 4, 0xD001_0000); // BAR 1 moved: the embedder hears of it too
        Assert.Equal(3, seen.Count);
        rig.Driver.WriteConfig(0x04, 2, 0);
        Assert.Equal((false, 0ul), seen[^1]);
        Assert.Equal(4, seen.Count);
    }

    [Fact]
    public void ResetFunction_ReturnsTheHeaderToPowerOn_AndTellsTheEmbedder()
    {
        using var rig = new PciRig();
        rig.Driver.Probe(0xC000_0000);
        rig.Function.InterruptLine = 9;
        int moves = 0;
        rig.Function.BarsChanged += _ => moves++;
        rig.Function.ResetFunction();
        Assert.Equal(1, moves);
        Assert.Equal(0u, rig.Driver.ReadConfig(0x04, 2));
        Assert.Equal(0u, rig.Driver.ReadConfig(0x10, 4));
        Assert.Equal(0u, rig.Driver.ReadConfig(0x14, 4));
        Assert.Equal(9u, rig.Driver.ReadConfig(0x3C, 1));
        Assert.Equal(0x1AF4u, rig.Driver.ReadConfig(0, 2));
    }

    [Theory]
    [InlineData(4u, 2, 0xC000_3008ul)]
    [InlineData(0u, 2, 0xC000_3000ul)]
    [InlineData(4096u, 2, 0xC000_5000ul)]
    public void NotifyAddress_IsTheRegionPlusNotifyOffTimesTheMultiplier(uint multiplier, ushort queue, ulong expected)
    {
        using var rig = new PciRig(queues: 3, options: new VirtioPciFunctionOptions { NotifyOffMultiplier = multiplier });
        rig.Driver.Probe(0xC000_0000);
        Assert.Equal(multiplier, rig.Function.NotifyOffMultiplier);
        Assert.True(rig.Function.TryGetNotifyAddress(queue, out ulong address));
        Assert.Equal(expected, address);
        Assert.Equal(rig.Driver.NotifyBaseAddress + (queue * rig.Driver.NotifyOffMultiplier), address);
        Assert.False(rig.Function.TryGetNotifyAddress(3, out _));
    }
}
