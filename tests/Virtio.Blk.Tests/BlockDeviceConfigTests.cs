using System;
using System.Buffers.Binary;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Xunit;

namespace Virtio.Blk.Tests;

public sealed class BlockDeviceConfigTests
{
    [Fact]
    public void Features_OfferedFromOptionsAndBackend()
    {
        using var disk = new MemoryBlockBackend(1 << 20);
        using var rig = new BlkRig(disk, new BlockDeviceOptions { QueueSize = 64, QueueCount = 2, SizeMax = 65536 });

        ulong offered = rig.Mmio.ReadDeviceFeatures();
        ulong expected = VirtioFeatures.Version1 | VirtioFeatures.IndirectDescriptors | VirtioFeatures.EventIdx
            | BlockFeatures.SizeMax | BlockFeatures.SegMax | BlockFeatures.BlockSize | BlockFeatures.Flush
            | BlockFeatures.Topology | BlockFeatures.ConfigWce | BlockFeatures.MultiQueue
            | BlockFeatures.Discard | BlockFeatures.WriteZeroes;
        Assert.Equal(expected, offered);
        Assert.Equal(2, rig.Device.DeviceId);
    }

    [Fact]
    public void Features_ReadOnlyBackend_OffersRoWithoutDiscardOrWriteZeroes()
    {
        using var disk = new MemoryBlockBackend(1 << 20, readOnly: true);
        using var rig = new BlkRig(disk);

        ulong offered = rig.Mmio.ReadDeviceFeatures();
        Assert.NotEqual(0UL, offered & BlockFeatures.ReadOnly);
        Assert.Equal(0UL, offered & (BlockFeatures.Discard | BlockFeatures.WriteZeroes | BlockFeatures.MultiQueue | BlockFeatures.SizeMax));
    }

    [Fact]
    public void Config_LayoutMatchesVirtioBlkConfig()
    {
        using var disk = new MemoryBlockBackend(3 << 20);
        var options = new BlockDeviceOptions
        {
            QueueSize = 64, QueueCount = 3, SizeMax = 0x10000, BlockSize = 4096, PhysicalBlockExponent = 3, AlignmentOffset = 1,
            MinIoSize = 8, OptimalIoSize = 256, MaxDiscardSectors = 1000, MaxDiscardSegments = 7, DiscardSectorAlignment = 8,
            MaxWriteZeroesSectors = 2000, MaxWriteZeroesSegments = 9,
        };
        using var rig = new BlkRig(disk, options);

        byte[] c = rig.ReadConfig(0, BlockDevice.ConfigSize);
        Assert.Equal((3UL << 20) / 512, BinaryPrimitives.ReadUInt64LittleEndian(c));
        Assert.Equal(0x10000u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(8)));
        Assert.Equal(62u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(12)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(16)));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(20)));
        Assert.Equal(3, c[24]);
        Assert.Equal(1, c[25]);
        Assert.Equal(8, BinaryPrimitives.ReadUInt16LittleEndian(c.AsSpan(26)));
        Assert.Equal(256u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(28)));
        Assert.Equal(1, c[32]);
        Assert.Equal(3, BinaryPrimitives.ReadUInt16LittleEndian(c.AsSpan(34)));
        Assert.Equal(1000u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(36)));
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(40)));
        Assert.Equal(8u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(44)));
        Assert.Equal(2000u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(48)));
        Assert.Equal(9u, BinaryPrimitives.ReadUInt32LittleEndian(c.AsSpan(52)));
        Assert.Equal(1, c[56]);

        // Bytes past the structure read as zero, and a read at an odd offset sees the same bytes.
        Assert.All(rig.ReadConfig(BlockDevice.ConfigSize, 8), b => Assert.Equal(0, b));
        Assert.Equal(c.AsSpan(34, 2).ToArray(), rig.ReadConfig(34, 2));
    }

    [Fact]
    public void Writeback_DriverTogglesIt_WritethroughFlushesEveryWrite()
    {
        var fault = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(fault);
        Assert.True(rig.Device.IsWritebackActive);

        Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(512, 1)).BlockStatus);
        Assert.Equal(0, fault.Flushes);

        rig.WriteConfig(32, 0);
        Assert.Equal(0, rig.ReadConfig(32, 1)[0]);
        Assert.False(rig.Device.IsWritebackActive);
        Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(512, 2)).BlockStatus);
        Assert.Equal(1, fault.Flushes);

        rig.WriteConfig(32, 1);
        Assert.True(rig.Device.IsWritebackActive);
        Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(512, 3)).BlockStatus);
        Assert.Equal(1, fault.Flushes);
    }

    [Fact]
    public void Writeback_WritethroughFlushFails_WriteGetsIoError()
    {
        var fault = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(fault, new BlockDeviceOptions { QueueSize = 64, Writeback = false });
        fault.Rule = io => io.Operation == BlockOperation.Flush ? Fault.IoError : Fault.None;

        Assert.Equal(BlockStatus.IoError, rig.Write(0, BlkRig.Pattern(512, 1)).BlockStatus);
        Assert.Equal(1, fault.Flushes);
    }

    [Fact]
    public void Writeback_WithoutConfigWce_WriteIgnored_AndWithoutFlushIsWritethrough()
    {
        var fault = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(fault, wanted: ~BlockFeatures.ConfigWce);
        rig.WriteConfig(32, 0);
        Assert.Equal(1, rig.ReadConfig(32, 1)[0]);
        Assert.True(rig.Device.IsWritebackActive);

        rig.Probe(~(BlockFeatures.ConfigWce | BlockFeatures.Flush));
        Assert.False(rig.Device.IsWritebackActive);
        Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(512, 1)).BlockStatus);
        Assert.Equal(1, fault.Flushes);

        // CONFIG_WCE without FLUSH starts in writethrough (virtio 1.2 §5.2.5.1).
        rig.Probe(~BlockFeatures.Flush);
        Assert.Equal(0, rig.ReadConfig(32, 1)[0]);
    }

    [Fact]
    public void Writeback_ResetRestoresTheDefault()
    {
        using var disk = new MemoryBlockBackend(1 << 20);
        using var rig = new BlkRig(disk);
        rig.WriteConfig(32, 0);
        Assert.Equal(0, rig.ReadConfig(32, 1)[0]);

        rig.Probe();
        Assert.Equal(1, rig.ReadConfig(32, 1)[0]);
    }
}
