using System;
using Virtio.Core.Transport.Pci;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Transport.Pci;

/// <summary>The type-0 header (PCI 3.0 §6.1, §6.2) and virtio 1.2 §4.1.2's IDs.</summary>
public sealed class PciConfigSpaceTests
{
    [Fact]
    public void Header_ReadsTheSpecifiedIds()
    {
        using var rig = new PciRig();
        PciDriver d = rig.Driver;
        Assert.Equal(0x1AF4u, d.ReadConfig(0x00, 2));
        Assert.Equal(0x1040u + RecordingDevice.TestDeviceId, d.ReadConfig(0x02, 2));
        Assert.Equal((0x1040u + RecordingDevice.TestDeviceId) << 16 | 0x1AF4u, d.ReadConfig(0x00, 4));
        Assert.Equal(0u, d.ReadConfig(0x04, 2)); // command: everything off at power-on
        Assert.Equal(0x10u, d.ReadConfig(0x06, 2)); // status: capability list only
        Assert.Equal(1u, d.ReadConfig(0x08, 1)); // revision 1: modern
        Assert.Equal(0xFF0000u, d.ReadConfig(0x08, 4) >> 8); // class: other (an unknown device type)
        Assert.Equal(0u, d.ReadConfig(0x0E, 1)); // header type 0, single function
        Assert.Equal(0x1AF4u, d.ReadConfig(0x2C, 2));
        Assert.Equal(0x1100u, d.ReadConfig(0x2E, 2));
        Assert.Equal(0x40u, d.ReadConfig(0x34, 1));
        Assert.Equal(1u, d.ReadConfig(0x3D, 1)); // INTA#
        Assert.Equal(0u, d.ReadConfig(0x30, 4)); // no expansion ROM
    }

    [Fact]
    public void SubsystemIds_AreTheEmbeddersChoice()
    {
        using var rig = new PciRig(options: new VirtioPciFunctionOptions { SubsystemVendorId = 0x1234, SubsystemId = 0x5678 });
        Assert.Equal(0x5678_1234u, rig.Driver.ReadConfig(0x2C, 4));
    }

    [Theory]
    [InlineData((ushort)1, 0x020000u)]
    [InlineData((ushort)2, 0x010000u)]
    [InlineData((ushort)3, 0x078000u)]
    [InlineData((ushort)8, 0x010000u)]
    [InlineData((ushort)16, 0x038000u)]
    [InlineData((ushort)18, 0x098000u)]
    [InlineData((ushort)4, 0xFF0000u)]
    [InlineData((ushort)0x3F, 0xFF0000u)]
    public void ClassCode_IsWhatLinuxAndQemuUseForTheDeviceType(ushort deviceId, uint classCode) =>
        Assert.Equal(classCode, VirtioPciFunction.ClassCodeFor(deviceId));

    [Fact]
    public void ReadOnlyFields_IgnoreWrites()
    {
        using var rig = new PciRig();
        PciDriver d = rig.Driver;
        var before = new byte[256];
        rig.Function.ReadConfigSpace(0, before.AsSpan(0, 4));
        foreach (int offset in new[] { 0x00, 0x08, 0x0C, 0x18, 0x1C, 0x20, 0x24, 0x28, 0x2C, 0x30, 0x34, 0x38, 0x40, 0x44, 0x48, 0x4C, 0x50, 0x98 })
        {
            uint value = d.ReadConfig(offset, 4);
            d.WriteConfig(offset, 4, ~value);
            uint after = d.ReadConfig(offset, 4);
            uint writable = offset switch
            {
                0x0C => 0xFF, // cache line size
                0x98 => 0xC000_0000, // MSI-X Enable and Function Mask
                _ => 0,
            };
            Assert.Equal(value & ~writable, after & ~writable);
        }

        // Status: nothing in it is the guest's (no RW1C error bits are ever set).
        d.WriteConfig(0x06, 2, 0xFFFF);
        Assert.Equal(0x10u, d.ReadConfig(0x06, 2));
        Assert.Equal(0x1AF4u, d.ReadConfig(0x00, 2));
    }

    [Fact]
    public void Command_KeepsOnlyMemoryBusMasterAndInterruptDisable()
    {
        using var rig = new PciRig();
        rig.Driver.WriteConfig(0x04, 2, 0xFFFF);
        Assert.Equal(0x0406u, rig.Driver.ReadConfig(0x04, 2)); // no I/O BAR, so I/O Space stays 0
        Assert.True(rig.Function.IsMemorySpaceEnabled);
        Assert.True(rig.Function.IsBusMasterEnabled);
        rig.Driver.WriteConfig(0x04, 2, 0);
        Assert.False(rig.Function.IsMemorySpaceEnabled);
        Assert.False(rig.Function.IsBusMasterEnabled);
    }

    [Fact]
    public void InterruptLine_IsSetByTheEmbedder_AndWritableByTheGuest()
    {
        using var rig = new PciRig();
        rig.Function.InterruptLine = 11;
        Assert.Equal(11u, rig.Driver.ReadConfig(0x3C, 1));
        rig.Driver.WriteConfig(0x3C, 2, 0xFF05); // the pin byte is read-only
        Assert.Equal(5, rig.Function.InterruptLine);
        Assert.Equal(1u, rig.Driver.ReadConfig(0x3D, 1));
    }

    [Fact]
    public void ExtendedSpace_ReadsZero_AndIgnoresWritesSilently()
    {
        using var rig = new PciRig();
        for (int offset = 0x100; offset < 0x1000; offset += 0x1FC)
        {
            rig.Driver.WriteConfig(offset, 4, 0xFFFF_FFFF);
            Assert.Equal(0u, rig.Driver.ReadConfig(offset, 4));
        }

        Assert.Equal(0, rig.Logged("ConfigOutOfRange"));
        Assert.Equal(0, rig.Logged("ConfigWrongWidth"));
    }

    [Theory]
    [InlineData(0x1000, 4, "ConfigOutOfRange")]
    [InlineData(-4, 4, "ConfigOutOfRange")]
    [InlineData(int.MaxValue, 1, "ConfigOutOfRange")]
    [InlineData(0x01, 2, "ConfigWrongWidth")]
    [InlineData(0x02, 4, "ConfigWrongWidth")]
    [InlineData(0x00, 3, "ConfigWrongWidth")]
    [InlineData(0x00, 8, "ConfigWrongWidth")]
    [InlineData(0x00, 0, "ConfigWrongWidth")]
    public void BadConfigAccess_ReadsZero_IsIgnored_AndLoggedOnce(int offset, int width, string kind)
    {
        using var rig = new PciRig();
        var data = new byte[width];
        data.AsSpan().Fill(0xFF);
        rig.Function.WriteConfigSpace(offset, data);
        rig.Function.WriteConfigSpace(offset, data);
        rig.Function.ReadConfigSpace(offset, data);
        Assert.All(data, b => Assert.Equal(0, b));
        Assert.Equal(1, rig.Logged(kind));
        Assert.Equal(0x1AF4u, rig.Driver.ReadConfig(0, 2));
        Assert.Equal(0u, rig.Driver.ReadConfig(0x04, 2)); // nothing landed on the header
    }
}
