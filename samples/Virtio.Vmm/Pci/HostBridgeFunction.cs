using System;
using System.Buffers.Binary;

namespace Virtio.Vmm.Pci;

/// <summary>
/// Device 0 of bus 0: a host bridge (class 06/00/00) with a read-only type-0 header and nothing behind
/// it: no BARs, no capabilities, no interrupt. Writes are ignored, as a bridge whose registers are all
/// hardwired would.
/// </summary>
internal sealed class HostBridgeFunction : IPciConfigSpace
{
    /// <summary>Red Hat, Inc., the vendor of QEMU's generic PCIe host bridge.</summary>
    public const ushort VendorId = 0x1B36;

    /// <summary>QEMU's generic host bridge (gpex).</summary>
    public const ushort DeviceId = 0x0008;

    private readonly byte[] _header = new byte[256];

    public HostBridgeFunction()
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_header, VendorId);
        BinaryPrimitives.WriteUInt16LittleEndian(_header.AsSpan(2), DeviceId);
        _header[0x0B] = 0x06; // base class: bridge device
        _header[0x0A] = 0x00; // subclass: host bridge
    }

    public void Read(int offset, Span<byte> data) => _header.AsSpan(offset, data.Length).CopyTo(data);

    public void Write(int offset, ReadOnlySpan<byte> data)
    {
        // Hardwired: nothing to change.
    }
}
