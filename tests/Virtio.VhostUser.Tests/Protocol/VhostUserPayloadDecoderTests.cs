using System;
using System.Buffers.Binary;
using System.IO;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.Tests.Protocol;

/// <summary>
/// The payload decoder on its own: each typed payload read from its bytes, and each rule the
/// message alone can break refused with its reason (the socket-level tests check that such a
/// message closes the connection).
/// </summary>
public sealed class VhostUserPayloadDecoderTests
{
    [Fact]
    public void VringState_ReadsIndexAndValue_AndWritesThemBack()
    {
        VhostUserMessage m = Message(VhostUserRequest.SetVringNum, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload.AsSpan(4), 256);

        VringState state = VhostUserPayloadDecoder.ReadVringState(m);

        Assert.Equal(new VringState(1, 256), state);
        byte[] written = new byte[VringState.Size];
        state.Write(written);
        Assert.Equal(m.PayloadSpan.ToArray(), written);
    }

    [Fact]
    public void VringAddress_WithAFlagButLog_IsRefused()
    {
        VhostUserMessage m = Message(VhostUserRequest.SetVringAddr, VringAddress.Size);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload.AsSpan(4), 0x3);

        AssertRefused(() => VhostUserPayloadDecoder.ReadVringAddress(m), "unknown flags 0x3");
    }

    [Fact]
    public void VringFile_WithTheNoFdBit_TakesNoFd()
    {
        VhostUserMessage m = Message(VhostUserRequest.SetVringCall, 8);
        BinaryPrimitives.WriteUInt64LittleEndian(m.Payload, VringFile.NoFdFlag | 3);

        Assert.Equal(new VringFile(3, NoFd: true), VhostUserPayloadDecoder.ReadVringFile(m));
    }

    [Fact]
    public void VringFile_WithUnknownBits_IsRefused()
    {
        VhostUserMessage m = Message(VhostUserRequest.SetVringKick, 8);
        BinaryPrimitives.WriteUInt64LittleEndian(m.Payload, 0x200);

        AssertRefused(() => VhostUserPayloadDecoder.ReadVringFile(m), "unknown bits in 0x200");
    }

    [Fact]
    public void MemoryTable_OfNineRegions_IsRefused()
    {
        VhostUserMessage m = Message(VhostUserRequest.SetMemTable, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload, 9);

        AssertRefused(() => VhostUserPayloadDecoder.ReadMemoryTable(m), "9 regions, at most 8");
    }

    [Fact]
    public void MemoryTable_WithARegionOffAPage_IsRefused()
    {
        VhostUserMessage m = Message(VhostUserRequest.SetMemTable, 8 + MemoryRegionDescription.WireSize, fds: 1);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload, 1);
        WriteRegion(m.Payload.AsSpan(8), new MemoryRegionDescription(0x800, 0x10000, 0x7000_0000, 0));

        AssertRefused(() => VhostUserPayloadDecoder.ReadMemoryTable(m), "non-zero page multiples");
        m.ClearFds();
    }

    [Fact]
    public void MemoryTable_WithARegionWrappingAround_IsRefused()
    {
        VhostUserMessage m = Message(VhostUserRequest.SetMemTable, 8 + MemoryRegionDescription.WireSize, fds: 1);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload, 1);
        WriteRegion(m.Payload.AsSpan(8), new MemoryRegionDescription(0, 0x10000, ulong.MaxValue - 0xfff, 0));

        AssertRefused(() => VhostUserPayloadDecoder.ReadMemoryTable(m), "wraps around");
        m.ClearFds();
    }

    [Fact]
    public void RemoveRegion_IsOnlyRead_NotChecked()
    {
        // REM_MEM_REG is matched against the table; a region no table could hold is "not found" there.
        var region = new MemoryRegionDescription(0x800, 1, 0x7000_0000, 0);
        VhostUserMessage m = Message(VhostUserRequest.RemMemReg, 8 + MemoryRegionDescription.WireSize);
        WriteRegion(m.Payload.AsSpan(8), region);

        Assert.Equal(region, VhostUserPayloadDecoder.ReadSingleMemoryRegion(m));
    }

    [Fact]
    public void ConfigAccess_PastTheConfigSpace_IsRefused()
    {
        VhostUserMessage m = ConfigMessage(offset: 250, size: 8);

        AssertRefused(() => VhostUserPayloadDecoder.ReadConfigAccess(m, out _), "offset 250 size 8 is outside the 256-byte config space");
    }

    [Fact]
    public void ConfigAccess_ReadsTheHeaderAndData_AndEchoesTheHeader()
    {
        VhostUserMessage m = ConfigMessage(offset: 4, size: 2, flags: 1);
        m.Payload[12] = 0xAB;
        m.Payload[13] = 0xCD;

        ConfigSpaceAccess access = VhostUserPayloadDecoder.ReadConfigAccess(m, out ReadOnlySpan<byte> data);

        Assert.Equal(new ConfigSpaceAccess(4, 2, 1), access);
        Assert.Equal(new byte[] { 0xAB, 0xCD }, data.ToArray());
        byte[] header = new byte[ConfigSpaceAccess.HeaderSize];
        access.WriteHeader(header);
        Assert.Equal(m.PayloadSpan[..ConfigSpaceAccess.HeaderSize].ToArray(), header);
    }

    [Fact]
    public void ConfigAccess_WithMoreDataThanItsSize_IsRefused()
    {
        VhostUserMessage m = ConfigMessage(offset: 0, size: 4);
        m.Size += 1;

        AssertRefused(() => VhostUserPayloadDecoder.ReadConfigAccess(m, out _), "expected 16 for a 4-byte access");
    }

    [Fact]
    public void InFlightDescription_Of20Bytes_IsRead()
    {
        VhostUserMessage m = Message(VhostUserRequest.GetInFlightFd, InFlightDescription.Size - 4);
        BinaryPrimitives.WriteUInt16LittleEndian(m.Payload.AsSpan(16), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(m.Payload.AsSpan(18), 64);

        Assert.Equal(new InFlightDescription(0, 0, 2, 64), VhostUserPayloadDecoder.ReadInFlightDescription(m, deviceQueues: 2));
    }

    [Fact]
    public void InFlightDescription_WithAQueueSizeNotAPowerOfTwo_IsRefused()
    {
        VhostUserMessage m = Message(VhostUserRequest.GetInFlightFd, InFlightDescription.Size);
        BinaryPrimitives.WriteUInt16LittleEndian(m.Payload.AsSpan(16), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(m.Payload.AsSpan(18), 100);

        AssertRefused(() => VhostUserPayloadDecoder.ReadInFlightDescription(m, deviceQueues: 1), "queue size 100 is not a power of two");
    }

    private static VhostUserMessage Message(VhostUserRequest request, int size, int fds = 0)
    {
        var m = new VhostUserMessage { Request = request, Flags = VhostUserMessage.Version, Size = size };
        for (int i = 0; i < fds; i++)
        {
            m.AddFd(File.OpenHandle("/dev/null"));
        }

        return m;
    }

    private static VhostUserMessage ConfigMessage(uint offset, uint size, uint flags = 0)
    {
        VhostUserMessage m = Message(VhostUserRequest.GetConfig, ConfigSpaceAccess.HeaderSize + (int)size);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload, offset);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload.AsSpan(4), size);
        BinaryPrimitives.WriteUInt32LittleEndian(m.Payload.AsSpan(8), flags);
        return m;
    }

    private static void WriteRegion(Span<byte> into, MemoryRegionDescription region) =>
        TestFrontEnd.WriteRegion(into, region.GuestAddress, region.Size, region.UserAddress, region.MmapOffset);

    private static void AssertRefused(Action decode, string reason)
    {
        var exception = Assert.Throws<VhostUserProtocolException>(decode);
        Assert.Contains(reason, exception.Message, StringComparison.Ordinal);
    }
}
