using System;
using System.Text;
using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Devices;
using Virtio.Testing;
using Xunit;

namespace Virtio.Blk.Tests;

public sealed class BlockRequestTests
{
    private const ulong Capacity = 1 << 20;

    private static BlkRig NewRig(out MemoryBlockBackend disk, bool indirect = false, bool eventIdx = true, BlockDeviceOptions? options = null, ulong wanted = ulong.MaxValue)
    {
        disk = new MemoryBlockBackend(Capacity);
        return new BlkRig(disk, options, wanted, eventIdx, indirect);
    }

    [Theory]
    [InlineData(false, true, 4096)]
    [InlineData(true, true, 4096)]
    [InlineData(false, false, 512)]
    [InlineData(true, false, 1024)]
    public void WriteThenRead_RoundTrips_UsedLengthIsDataPlusStatus(bool indirect, bool eventIdx, int segment)
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk, indirect, eventIdx);
        byte[] data = BlkRig.Pattern(16384, 1);

        Completion write = rig.Write(8, data, segment: segment);
        Assert.Equal(BlockStatus.Ok, write.BlockStatus);
        Assert.Equal(1u, write.Length);
        Assert.Equal(data, disk.GetSpan(8 * 512, data.Length).ToArray());

        Completion read = rig.Read(8, data.Length, segment: segment);
        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.Equal((uint)data.Length + 1, read.Length);
        Assert.Equal(data, read.Data);
    }

    [Fact]
    public void Read_HeaderSplitAcrossTwoBuffers_IsParsed()
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        BlkRig.Pattern(1024, 3).CopyTo(disk.GetSpan(512, 1024));

        Completion read = rig.Run(0, (uint)BlockRequestType.In, 1, inLength: 1024, splitHeader: true);

        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.Equal(BlkRig.Pattern(1024, 3), read.Data);
    }

    [Fact]
    public void Read_StatusIsLastByteOfDataBuffer_DataBeforeItIsRead()
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        BlkRig.Pattern(512, 5).CopyTo(disk.GetSpan(0, 512));

        Completion read = rig.Run(0, (uint)BlockRequestType.In, 0, inLength: 512, mergeStatus: true);

        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.Equal(513u, read.Length);
        Assert.Equal(BlkRig.Pattern(512, 5), read.Data);
    }

    [Fact]
    public void Flush_CompletesOk_WithLengthOne()
    {
        using BlkRig rig = NewRig(out _);
        Completion flush = rig.Flush();
        Assert.Equal(BlockStatus.Ok, flush.BlockStatus);
        Assert.Equal(1u, flush.Length);
    }

    [Fact]
    public void GetId_WritesTwentyBytesOfSerial()
    {
        using BlkRig rig = NewRig(out _);
        Completion id = rig.Run(0, (uint)BlockRequestType.GetId, 0, inLength: 20);
        Assert.Equal(BlockStatus.Ok, id.BlockStatus);
        Assert.Equal(21u, id.Length);
        Assert.Equal(Encoding.ASCII.GetBytes("virtio-blk-serial-01"), id.Data);
    }

    [Fact]
    public void GetId_ShortSerialIsZeroPadded_ShortBufferGetsWhatFits()
    {
        var options = new BlockDeviceOptions { QueueSize = 64, Serial = "abc" };
        using BlkRig rig = NewRig(out _, options: options);

        Completion full = rig.Run(0, (uint)BlockRequestType.GetId, 0, inLength: 20);
        Assert.Equal("abc"u8.ToArray(), full.Data[..3]);
        Assert.All(full.Data[3..], b => Assert.Equal(0, b));

        Completion small = rig.Run(0, (uint)BlockRequestType.GetId, 0, inLength: 2);
        Assert.Equal(BlockStatus.Ok, small.BlockStatus);
        Assert.Equal(3u, small.Length);
        Assert.Equal("ab"u8.ToArray(), small.Data);
    }

    [Fact]
    public void Discard_ZeroesTheRanges_OthersUntouched()
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        disk.GetSpan(0, 8192).Fill(0x77);

        Completion discard = rig.Ranges(BlockRequestType.Discard, 0, (2, 2, 0), (8, 4, 0));

        Assert.Equal(BlockStatus.Ok, discard.BlockStatus);
        Assert.Equal(1u, discard.Length);
        Assert.All(disk.GetSpan(0, 1024).ToArray(), b => Assert.Equal(0x77, b));
        Assert.All(disk.GetSpan(1024, 1024).ToArray(), b => Assert.Equal(0, b));
        Assert.All(disk.GetSpan(2048, 2048).ToArray(), b => Assert.Equal(0x77, b));
        Assert.All(disk.GetSpan(4096, 2048).ToArray(), b => Assert.Equal(0, b));
        Assert.All(disk.GetSpan(6144, 2048).ToArray(), b => Assert.Equal(0x77, b));
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(1u)]
    public void WriteZeroes_ZeroesTheRange_WithOrWithoutUnmap(uint flags)
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        disk.GetSpan(0, 4096).Fill(0x55);

        Completion zeroes = rig.Ranges(BlockRequestType.WriteZeroes, 0, (1, 3, flags));

        Assert.Equal(BlockStatus.Ok, zeroes.BlockStatus);
        Assert.All(disk.GetSpan(0, 512).ToArray(), b => Assert.Equal(0x55, b));
        Assert.All(disk.GetSpan(512, 1536).ToArray(), b => Assert.Equal(0, b));
        Assert.All(disk.GetSpan(2048, 2048).ToArray(), b => Assert.Equal(0x55, b));
    }

    [Fact]
    public void Discard_SegmentStraddlingTwoBuffers_IsParsed()
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        disk.GetSpan(0, 4096).Fill(0x11);

        // 32 bytes of segments in buffers of 8 bytes: every segment spans two buffers.
        Completion discard = rig.Run(0, (uint)BlockRequestType.Discard, 0, BlkRig.Segments((1, 1, 0), (3, 1, 0)), segment: 8);

        Assert.Equal(BlockStatus.Ok, discard.BlockStatus);
        Assert.All(disk.GetSpan(512, 512).ToArray(), b => Assert.Equal(0, b));
        Assert.All(disk.GetSpan(1024, 512).ToArray(), b => Assert.Equal(0x11, b));
        Assert.All(disk.GetSpan(1536, 512).ToArray(), b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData(BlockRequestType.In, Capacity / 512, 512)]            // starts at the end
    [InlineData(BlockRequestType.In, (Capacity / 512) - 1, 1024)]     // runs past the end
    [InlineData(BlockRequestType.Out, ulong.MaxValue, 512)]           // sector * 512 overflows
    [InlineData(BlockRequestType.In, ulong.MaxValue / 512, 4096)]     // sector + count overflows the range check
    [InlineData(BlockRequestType.In, 0, 100)]                         // not a multiple of 512
    [InlineData(BlockRequestType.Out, 0, 700)]
    public void DataRequest_OutsideCapacityOrMisSized_GetsIoError(BlockRequestType type, ulong sector, int length)
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        Completion result = type == BlockRequestType.In
            ? rig.Read(sector, length)
            : rig.Write(sector, BlkRig.Pattern(length, 2));

        Assert.Equal(BlockStatus.IoError, result.BlockStatus);
        Assert.Equal(1u, result.Length);
        Assert.All(disk.GetSpan(0, 4096).ToArray(), b => Assert.Equal(0, b));

        // Nothing else broke.
        Assert.Equal(BlockStatus.Ok, rig.Write(0, BlkRig.Pattern(512, 9)).BlockStatus);
        Assert.Equal(BlkRig.Pattern(512, 9), rig.Read(0, 512).Data);
    }

    [Theory]
    [InlineData(2u)]    // VIRTIO_BLK_T_SCSI_CMD (legacy)
    [InlineData(10u)]   // GET_LIFETIME
    [InlineData(14u)]   // SECURE_ERASE
    [InlineData(0x80000000u)]
    public void UnknownType_GetsUnsupported(uint type)
    {
        using BlkRig rig = NewRig(out _);
        Completion result = rig.Run(0, type, 0, inLength: 512);
        Assert.Equal(BlockStatus.Unsupported, result.BlockStatus);
        Assert.Equal(1u, result.Length);
        Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(15)]
    public void ShortHeader_GetsIoError(int headerLength)
    {
        using BlkRig rig = NewRig(out _);
        Completion result = rig.Run(0, (uint)BlockRequestType.In, 0, inLength: 512, headerLength: headerLength);
        Assert.Equal(BlockStatus.IoError, result.BlockStatus);
        Assert.Equal(1u, result.Length);
    }

    [Fact]
    public void ChainWithoutWritableByte_ReturnedWithLengthZero_AndCounted()
    {
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        Completion result = rig.Run(0, (uint)BlockRequestType.Out, 0, BlkRig.Pattern(512, 1), withStatus: false);

        Assert.Equal(0u, result.Length);
        Assert.All(disk.GetSpan(0, 512).ToArray(), b => Assert.Equal(0, b));
        Assert.Contains(rig.Logger.Entries, e => e.Message.Contains("no writable status byte", StringComparison.Ordinal));
        Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
    }

    [Fact]
    public void StatusBufferNotWritable_ReadableAfterTheData_BreaksTheQueue_NothingWritten()
    {
        // The other way to lack a writable status: a readable buffer after the writable ones. Core's
        // chain walk refuses the order (virtio 1.2 §2.7.4.2), so the queue stops with DEVICE_NEEDS_RESET
        // and the device writes neither the data nor a status, and returns nothing.
        using BlkRig rig = NewRig(out MemoryBlockBackend disk);
        disk.GetSpan(0, 512).Fill(0x77);
        GuestDriver guest = rig.Guests[0];
        ushort head = guest.AddChain(BufferSpec.Readable(16), BufferSpec.Write(512), BufferSpec.Readable(1));
        var buffers = guest.ChainBuffers(head);
        guest.Span(buffers[0].Address, 16).Clear(); // VIRTIO_BLK_T_IN, sector 0
        guest.Span(buffers[1].Address, 512).Fill(0xCC);
        guest.Span(buffers[2].Address, 1)[0] = BlkRig.StatusSentinel;
        rig.Kick(0);

        Assert.True(SpinWait.SpinUntil(() => (rig.Mmio.Status & DeviceStatus.DeviceNeedsReset) != 0, TimeSpan.FromSeconds(10)));
        Assert.False(guest.TryGetUsed(out _, out _));
        Assert.True(guest.Span(buffers[1].Address, 512).IndexOfAnyExcept((byte)0xCC) < 0, "the data buffer was written");
        Assert.Equal(BlkRig.StatusSentinel, guest.Span(buffers[2].Address, 1)[0]);

        // A reset brings the device back.
        rig.Probe();
        Assert.Equal(BlockStatus.Ok, rig.Flush().BlockStatus);
    }

    [Fact]
    public void WriteToReadOnlyDisk_GetsIoError_ReadsWork()
    {
        var options = new BlockDeviceOptions { QueueSize = 64, ReadOnly = true };
        using BlkRig rig = NewRig(out MemoryBlockBackend disk, options: options);
        disk.GetSpan(0, 512).Fill(0x42);

        Assert.NotEqual(0UL, rig.Negotiated & BlockFeatures.ReadOnly);
        Assert.Equal(BlockStatus.IoError, rig.Write(0, BlkRig.Pattern(512, 1)).BlockStatus);
        Assert.All(disk.GetSpan(0, 512).ToArray(), b => Assert.Equal(0x42, b));
        Assert.Equal(BlockStatus.Ok, rig.Read(0, 512).BlockStatus);
    }

    [Fact]
    public void Discard_WithUnmapFlag_GetsUnsupported()
    {
        using BlkRig rig = NewRig(out _);
        Assert.Equal(BlockStatus.Unsupported, rig.Ranges(BlockRequestType.Discard, 0, (0, 1, 1)).BlockStatus);
    }

    [Theory]
    [InlineData(BlockRequestType.Discard)]
    [InlineData(BlockRequestType.WriteZeroes)]
    public void RangeRequest_UnknownFlag_GetsUnsupported(BlockRequestType type)
    {
        using BlkRig rig = NewRig(out _);
        Assert.Equal(BlockStatus.Unsupported, rig.Ranges(type, 0, (0, 1, 2)).BlockStatus);
    }

    [Theory]
    [InlineData(BlockRequestType.Discard)]
    [InlineData(BlockRequestType.WriteZeroes)]
    public void RangeRequest_OverLimitsOrCapacity_GetsIoError(BlockRequestType type)
    {
        var options = new BlockDeviceOptions { QueueSize = 64, MaxDiscardSegments = 2, MaxWriteZeroesSegments = 2, MaxDiscardSectors = 8, MaxWriteZeroesSectors = 8 };
        using BlkRig rig = NewRig(out MemoryBlockBackend disk, options: options);
        disk.GetSpan(0, 4096).Fill(0x33);

        Assert.Equal(BlockStatus.IoError, rig.Ranges(type, 0, (0, 1, 0), (1, 1, 0), (2, 1, 0)).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Ranges(type, 0, (0, 9, 0)).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Ranges(type, 0, ((Capacity / 512) - 1, 2, 0)).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Ranges(type, 0, (ulong.MaxValue - 1, 4, 0)).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Run(0, (uint)type, 0, new byte[20]).BlockStatus);
        Assert.Equal(BlockStatus.IoError, rig.Run(0, (uint)type, 0).BlockStatus);

        // A rejected list touches nothing, even its valid segments.
        Assert.All(disk.GetSpan(0, 4096).ToArray(), b => Assert.Equal(0x33, b));
        Assert.Equal(BlockStatus.Ok, rig.Ranges(type, 0, (0, 8, 0), (8, 1, 0)).BlockStatus);
    }

    [Theory]
    [InlineData(BlockRequestType.Discard)]
    [InlineData(BlockRequestType.WriteZeroes)]
    public void RangeRequest_FeatureNotNegotiated_GetsUnsupported(BlockRequestType type)
    {
        using BlkRig rig = NewRig(out _, wanted: ~(BlockFeatures.Discard | BlockFeatures.WriteZeroes));
        Assert.Equal(BlockStatus.Unsupported, rig.Ranges(type, 0, (0, 1, 0)).BlockStatus);
    }

    [Fact]
    public void ZeroLengthRead_CompletesOk()
    {
        using BlkRig rig = NewRig(out _);
        Completion result = rig.Read(0, 0);
        Assert.Equal(BlockStatus.Ok, result.BlockStatus);
        Assert.Equal(1u, result.Length);
    }
}
