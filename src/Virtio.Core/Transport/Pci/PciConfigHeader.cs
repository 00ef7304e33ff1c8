using System;
using System.Buffers.Binary;

namespace Virtio.Core.Transport.Pci;

/// <summary>
/// The first 256 bytes of a type-0 PCI configuration space (PCI Local Bus 3.0 §6.1) as bytes with a
/// write mask: a guest write changes only the bits the mask allows, so read-only fields ignore writes
/// and a BAR keeps its size bits at zero (the sizing protocol: write all ones, read back the size mask).
/// The virtio capabilities and MSI-X capability live in it too (<see cref="VirtioPciLayout"/>).
/// Not thread-safe: one vCPU thread at a time.
/// </summary>
internal sealed class PciConfigHeader
{
    public const int Size = 256;

    public const int VendorIdOffset = 0x00;
    public const int DeviceIdOffset = 0x02;
    public const int CommandOffset = 0x04;
    public const int StatusOffset = 0x06;
    public const int RevisionOffset = 0x08;
    public const int ClassCodeOffset = 0x09;
    public const int CacheLineSizeOffset = 0x0C;
    public const int HeaderTypeOffset = 0x0E;
    public const int Bar0Offset = 0x10;
    public const int SubsystemVendorIdOffset = 0x2C;
    public const int SubsystemIdOffset = 0x2E;
    public const int CapabilitiesPointerOffset = 0x34;
    public const int InterruptLineOffset = 0x3C;
    public const int InterruptPinOffset = 0x3D;

    public const ushort CommandMemorySpace = 1 << 1;
    public const ushort CommandBusMaster = 1 << 2;
    public const ushort CommandInterruptDisable = 1 << 10;
    public const ushort StatusInterrupt = 1 << 3;
    public const ushort StatusCapabilitiesList = 1 << 4;

    private readonly byte[] _bytes = new byte[Size];
    private readonly byte[] _writable = new byte[Size];
    private readonly byte[] _powerOn = new byte[Size];

    /// <summary>The bytes as they read, before the computed bits (Interrupt Status, the window's data).</summary>
    public Span<byte> Bytes => _bytes;

    public ushort Command => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan(CommandOffset));

    public bool MemorySpaceEnabled => (Command & CommandMemorySpace) != 0;

    public bool BusMasterEnabled => (Command & CommandBusMaster) != 0;

    public bool InterruptDisabled => (Command & CommandInterruptDisable) != 0;

    public byte InterruptLine
    {
        get => _bytes[InterruptLineOffset];
        set => _bytes[InterruptLineOffset] = value;
    }

    public byte this[int offset] => _bytes[offset];

    public ushort ReadUInt16(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan(offset));

    public uint ReadUInt32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan(offset));

    /// <summary>Sets a read-only value while the header is built.</summary>
    public void Set8(int offset, byte value) => _bytes[offset] = value;

    public void Set16(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan(offset), value);

    public void Set32(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_bytes.AsSpan(offset), value);

    /// <summary>Makes the bits of <paramref name="mask"/> at <paramref name="offset"/> writable by the guest.</summary>
    public void SetWritable(int offset, ReadOnlySpan<byte> mask) => mask.CopyTo(_writable.AsSpan(offset));

    public void SetWritable16(int offset, ushort mask) => BinaryPrimitives.WriteUInt16LittleEndian(_writable.AsSpan(offset), mask);

    public void SetWritable32(int offset, uint mask) => BinaryPrimitives.WriteUInt32LittleEndian(_writable.AsSpan(offset), mask);

    /// <summary>Remembers the built header as the power-on state <see cref="Reset"/> returns to.</summary>
    public void Seal() => _bytes.CopyTo(_powerOn, 0);

    /// <summary>Back to the power-on state (a PCI reset), keeping the Interrupt Line the embedder set.</summary>
    public void Reset()
    {
        byte line = InterruptLine;
        _powerOn.CopyTo(_bytes, 0);
        InterruptLine = line;
    }

    /// <summary>Applies a guest write: each bit changes only where the write mask allows it.</summary>
    public void Write(int offset, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            byte mask = _writable[offset + i];
            _bytes[offset + i] = (byte)((_bytes[offset + i] & ~mask) | (data[i] & mask));
        }
    }
}
