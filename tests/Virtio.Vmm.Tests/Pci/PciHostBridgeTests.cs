using System;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Vmm.Pci;
using Xunit;

namespace Virtio.Vmm.Tests.Pci;

/// <summary>
/// Configuration mechanism #1 as the guest drives it, through the same handler the VMM puts on ports
/// 0xCF8-0xCFF: the enable bit, bus 0 only, absent devices and functions reading all ones, every width
/// and byte position of CONFIG_DATA, and the accesses the mechanism does not define ignored.
/// </summary>
public sealed class PciHostBridgeTests
{
    private const ulong Data = 4; // CONFIG_DATA's offset in the handler's window

    private readonly PciHostBridge _bridge = new(NullLogger.Instance);
    private readonly RecordingFunction _function = new();

    public PciHostBridgeTests() => _bridge.Attach(3, _function);

    [Fact]
    public void Read_HostBridgeAtDevice0_GivesItsIdsAndClassAtEveryWidth()
    {
        Select(bus: 0, device: 0, function: 0, register: 0);

        Assert.Equal(((uint)HostBridgeFunction.DeviceId << 16) | HostBridgeFunction.VendorId, ReadData(0, 4));
        Assert.Equal(HostBridgeFunction.VendorId, ReadData(0, 2));
        Assert.Equal(HostBridgeFunction.DeviceId, ReadData(2, 2));
        Assert.Equal((uint)(HostBridgeFunction.DeviceId >> 8), ReadData(3, 1));
        Select(0, 0, 0, 0x08);
        Assert.Equal(0x0600_0000u, ReadData(0, 4) & 0xFFFF_FF00);
    }

    [Theory]
    [InlineData(false, 0, 3, 0)] // enable bit clear
    [InlineData(true, 1, 3, 0)]  // another bus
    [InlineData(true, 0, 4, 0)]  // no device there
    [InlineData(true, 0, 3, 1)]  // function 1 of a single-function device
    public void Read_NothingSelected_IsAllOnesAndWritesAreDropped(bool enable, int bus, int device, int function)
    {
        Select(bus, device, function, 0x10, enable);

        Assert.Equal(0xFFFF_FFFFu, ReadData(0, 4));
        Assert.Equal(0xFFu, ReadData(1, 1));
        WriteData(0, 4, 0x1234_5678);
        Assert.Equal(0, _function.Writes);
    }

    [Fact]
    public void Access_ReachesTheSelectedRegisterByte_AndAnUnalignedWordIsSplit()
    {
        Select(0, 3, 0, 0x3C);
        WriteData(1, 1, 0xAB);
        Assert.Equal((0x3D, 1), _function.LastWrite);

        Assert.Equal(0x3E3Du, ReadData(1, 2)); // bytes 0x3D and 0x3E, one at a time
        Assert.Equal((0x3E, 1), _function.LastRead);
        Assert.Equal(0x3F3Eu, ReadData(2, 2));
        Assert.Equal((0x3E, 2), _function.LastRead);
    }

    [Fact]
    public void ConfigAddress_ReadsBackWithoutReservedBits_AndOnlyA32BitWriteSetsIt()
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, 0xFF00_1803);
        _bridge.Write(0, word);
        word.Clear();
        _bridge.Read(0, word);
        Assert.Equal(0x8000_1800u, BinaryPrimitives.ReadUInt32LittleEndian(word));

        _bridge.Write(0, [0x00, 0x00]); // a 16-bit write is not CONFIG_ADDRESS
        _bridge.Read(0, word);
        Assert.Equal(0x8000_1800u, BinaryPrimitives.ReadUInt32LittleEndian(word));
        Span<byte> narrow = stackalloc byte[2];
        _bridge.Read(0, narrow);
        Assert.Equal(0xFFFF, BinaryPrimitives.ReadUInt16LittleEndian(narrow));
    }

    [Fact]
    public void Access_PastTheDataDword_IsIgnored()
    {
        Select(0, 3, 0, 0x10);

        Assert.Equal(0xFFFF_FFFFu, ReadData(2, 4));
        WriteData(3, 2, 0xFFFF);
        Assert.Equal(0, _function.Writes);
        Assert.Equal(0, _function.Reads);
    }

    [Fact]
    public void Write_ToTheHostBridge_ChangesNothing()
    {
        Select(0, 0, 0, 0);
        WriteData(0, 4, 0);

        Assert.Equal(HostBridgeFunction.VendorId, ReadData(0, 2));
    }

    [Fact]
    public void Attach_Device0OrATakenOrOutOfRangeSlot_IsRefused()
    {
        Assert.Throws<ArgumentException>(() => _bridge.Attach(0, new RecordingFunction()));
        Assert.Throws<ArgumentException>(() => _bridge.Attach(3, new RecordingFunction()));
        Assert.Throws<ArgumentException>(() => _bridge.Attach(32, new RecordingFunction()));
    }

    private void Select(int bus, int device, int function, int register, bool enable = true)
    {
        uint address = (enable ? 0x8000_0000u : 0) | ((uint)bus << 16) | ((uint)device << 11) | ((uint)function << 8) | (uint)register;
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, address);
        _bridge.Write(0, word);
    }

    private uint ReadData(int at, int width)
    {
        Span<byte> value = stackalloc byte[4];
        _bridge.Read(Data + (ulong)at, value[..width]);
        value[width..].Clear();
        return BinaryPrimitives.ReadUInt32LittleEndian(value);
    }

    private void WriteData(int at, int width, uint value)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        _bridge.Write(Data + (ulong)at, bytes[..width]);
    }

    /// <summary>A function whose register bytes read as their own offsets, recording each access.</summary>
    private sealed class RecordingFunction : IPciConfigSpace
    {
        public int Reads { get; private set; }

        public int Writes { get; private set; }

        public (int Offset, int Length) LastRead { get; private set; }

        public (int Offset, int Length) LastWrite { get; private set; }

        public void Read(int offset, Span<byte> data)
        {
            Reads++;
            LastRead = (offset, data.Length);
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (byte)(offset + i);
            }
        }

        public void Write(int offset, ReadOnlySpan<byte> data)
        {
            Writes++;
            LastWrite = (offset, data.Length);
        }
    }
}
