using System;
using System.Collections.Generic;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>The capability list against virtio 1.2 §4.1.4 (struct virtio_pci_cap) and PCI 3.0 §6.8.2 (MSI-X).</summary>
public sealed class PciCapabilityLayoutTests
{
    private readonly record struct Cap(int At, uint Id, uint Length, uint CfgType, uint Bar, uint Offset, uint CapLength);

    private static List<Cap> Walk(PciDriver d)
    {
        var caps = new List<Cap>();
        var seen = new HashSet<int>();
        int at = (int)d.ReadConfig(0x34, 1);
        while (at != 0)
        {
            Assert.True(seen.Add(at), "the list loops");
            Assert.InRange(at, 0x40, 0xFC);
            Assert.Equal(0, at % 4); // PCI 3.0 §6.7: capabilities are DWORD aligned
            caps.Add(new Cap(at, d.ReadConfig(at, 1), d.ReadConfig(at + 2, 1), d.ReadConfig(at + 3, 1), d.ReadConfig(at + 4, 1), d.ReadConfig(at + 8, 4), d.ReadConfig(at + 12, 4)));
            at = (int)d.ReadConfig(at + 1, 1);
        }

        return caps;
    }

    private static Cap Only(List<Cap> caps, uint cfgType) => Assert.Single(caps, c => c.Id == 0x09 && c.CfgType == cfgType);

    [Fact]
    public void VirtioCapabilities_HaveTheSpecifiedTypesLengthsAndPlacesInBar0()
    {
        using var rig = new PciRig(queues: 3);
        List<Cap> caps = Walk(rig.Driver);
        Assert.Equal(6, caps.Count);
        ulong bar0 = rig.Function.GetBarSize(0);

        Cap common = Only(caps, 1);
        Assert.Equal(16u, common.Length);
        Assert.Equal(0u, common.Bar);
        Assert.Equal(0x38u, common.CapLength); // struct virtio_pci_common_cfg up to queue_device

        Cap notify = Only(caps, 2);
        Assert.Equal(20u, notify.Length); // struct virtio_pci_notify_cap
        Assert.Equal(4u, rig.Driver.ReadConfig(notify.At + 16, 4)); // notify_off_multiplier, default 4

        Cap isr = Only(caps, 3);
        Assert.Equal(16u, isr.Length);
        Assert.True(isr.CapLength >= 1);

        Cap device = Only(caps, 4);
        Assert.Equal(16u, device.Length);
        Assert.Equal(0x100u, device.CapLength);

        Cap pciCfg = Only(caps, 5);
        Assert.Equal(20u, pciCfg.Length); // struct virtio_pci_cfg_cap

        foreach (Cap c in new[] { common, notify, isr, device })
        {
            Assert.Equal(0u, c.Bar);
            Assert.Equal(0u, c.Offset % 4); // §4.1.4: offset 4-byte aligned
            Assert.True(c.Offset + (ulong)c.CapLength <= bar0, $"cfg_type {c.CfgType} runs past BAR 0");
            Assert.Equal(0u, c.Offset % 0x1000); // each on its own page (our layout)
        }

        // The structures do not overlap.
        var regions = new[] { common, notify, isr, device };
        for (int i = 0; i < regions.Length; i++)
        {
            for (int j = i + 1; j < regions.Length; j++)
            {
                Assert.True(regions[i].Offset + regions[i].CapLength <= regions[j].Offset || regions[j].Offset + regions[j].CapLength <= regions[i].Offset);
            }
        }
    }

    [Theory]
    [InlineData(4u)]
    [InlineData(0u)]
    [InlineData(2u)]
    [InlineData(4096u)]
    public void NotifyLength_CoversEveryQueuesDoorbell(uint multiplier)
    {
        using var rig = new PciRig(queues: 5, options: new VirtioPciFunctionOptions { NotifyOffMultiplier = multiplier });
        Cap notify = Only(Walk(rig.Driver), 2);
        Assert.Equal(multiplier, rig.Driver.ReadConfig(notify.At + 16, 4));
        rig.Driver.Probe();
        for (ushort q = 0; q < 5; q++)
        {
            rig.Driver.WriteCommon(VirtioPciCommonConfig.QueueSelect, 2, q);
            uint notifyOff = rig.Driver.ReadCommon(VirtioPciCommonConfig.QueueNotifyOff, 2);
            Assert.Equal(q, notifyOff);

            // §4.1.4.4.1: cap.length >= queue_notify_off * notify_off_multiplier + 2.
            Assert.True(notify.CapLength >= (notifyOff * multiplier) + 2);
        }

        Assert.True(notify.Offset + (ulong)notify.CapLength <= rig.Function.GetBarSize(0));
    }

    [Fact]
    public void MsiXCapability_DescribesTheTableAndPbaInBar1()
    {
        using var rig = new PciRig(queues: 3);
        Cap msix = Assert.Single(Walk(rig.Driver), c => c.Id == 0x11);
        Assert.Equal(0u, rig.Driver.ReadConfig(msix.At + 1, 1)); // the last capability
        uint control = rig.Driver.ReadConfig(msix.At + 2, 2);
        Assert.Equal(3u, control & 0x7FF); // 4 entries (3 queues + config), encoded as N - 1
        Assert.Equal(0u, control & 0xC000); // disabled, not function-masked at reset
        Assert.Equal(4, rig.Function.MsiXVectorCount);

        uint table = rig.Driver.ReadConfig(msix.At + 4, 4);
        uint pba = rig.Driver.ReadConfig(msix.At + 8, 4);
        Assert.Equal(1u, table & 7); // BIR 1
        Assert.Equal(1u, pba & 7);
        Assert.Equal(0u, table & ~7u);
        ulong bar1 = rig.Function.GetBarSize(1);
        Assert.True((table & ~7u) + (4 * 16u) <= (pba & ~7u), "the PBA overlaps the table");
        Assert.True((pba & ~7u) + 8u <= bar1, "the PBA runs past BAR 1");
    }

    [Fact]
    public void WithoutMsiXDelivery_ThereIsNoMsiXCapabilityAndNoBar1()
    {
        using var rig = new PciRig(msiX: false);
        List<Cap> caps = Walk(rig.Driver);
        Assert.DoesNotContain(caps, c => c.Id == 0x11);
        Assert.Equal(5, caps.Count);
        Assert.Equal(0, rig.Function.MsiXVectorCount);
        Assert.Equal(0ul, rig.Function.GetBarSize(1));
        rig.Driver.WriteConfig(0x14, 4, 0xFFFF_FFFF);
        Assert.Equal(0u, rig.Driver.ReadConfig(0x14, 4));
    }

    [Fact]
    public void MsiXVectorCount_IsTheEmbeddersChoice()
    {
        using var rig = new PciRig(queues: 2, options: new VirtioPciFunctionOptions { MsiXVectorCount = 100 });
        Cap msix = Assert.Single(Walk(rig.Driver), c => c.Id == 0x11);
        Assert.Equal(99u, rig.Driver.ReadConfig(msix.At + 2, 2) & 0x7FF);
        uint pba = rig.Driver.ReadConfig(msix.At + 8, 4) & ~7u;
        Assert.True(pba >= 100 * 16);
        Assert.True(pba + 16u <= rig.Function.GetBarSize(1)); // 100 bits: two qwords
    }

    [Theory]
    [InlineData(1u, null, 0x100)]
    [InlineData(3u, null, 0x100)]
    [InlineData(8192u, null, 0x100)]
    [InlineData(4u, 0, 0x100)]
    [InlineData(4u, 2049, 0x100)]
    [InlineData(4u, null, 0)]
    [InlineData(4u, null, 0x1001)]
    public void BadOptions_Throw(uint multiplier, int? vectors, int deviceConfigLength)
    {
        using var guest = new GuestDriver();
        var device = new RecordingDevice(guest.Memory);
        var options = new VirtioPciFunctionOptions { NotifyOffMultiplier = multiplier, MsiXVectorCount = vectors, DeviceConfigLength = deviceConfigLength };
        Assert.Throws<ArgumentException>(() => new VirtioPciFunction(device, new InterruptRecorder(), new MsiXRecorder(), options));
    }
}
