using System;
using System.Buffers.Binary;

namespace Virtio.Net;

/// <summary>
/// The 12-byte virtio_net_hdr_v1 (virtio 1.2 §5.1.6) that precedes every frame on the queues:
/// checksum and segmentation offload fields, and the number of merged receive buffers.
/// </summary>
/// <param name="Flags">VIRTIO_NET_HDR_F_* (<see cref="FlagNeedsCsum"/>, <see cref="FlagDataValid"/>).</param>
/// <param name="GsoType">VIRTIO_NET_HDR_GSO_* (<see cref="GsoNone"/>, <see cref="GsoTcpV4"/>, ...), possibly with <see cref="GsoEcn"/>.</param>
/// <param name="HeaderLength">hdr_len: Ethernet + IP + TCP/UDP header bytes (a hint).</param>
/// <param name="GsoSize">gso_size: the segment payload size.</param>
/// <param name="ChecksumStart">csum_start: where checksumming starts.</param>
/// <param name="ChecksumOffset">csum_offset: where, after csum_start, the checksum goes.</param>
/// <param name="NumBuffers">num_buffers: receive buffers a frame spans (1 without VIRTIO_NET_F_MRG_RXBUF).</param>
public readonly record struct VirtioNetHeader(byte Flags, byte GsoType, ushort HeaderLength, ushort GsoSize, ushort ChecksumStart, ushort ChecksumOffset, ushort NumBuffers)
{
    /// <summary>The header's size in bytes.</summary>
    public const int Size = 12;

    /// <summary>VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum at csum_start + csum_offset is partial.</summary>
    public const byte FlagNeedsCsum = 1;

    /// <summary>VIRTIO_NET_HDR_F_DATA_VALID: the checksum has been validated (receive only).</summary>
    public const byte FlagDataValid = 2;

    /// <summary>VIRTIO_NET_HDR_GSO_NONE: not a GSO frame.</summary>
    public const byte GsoNone = 0;

    /// <summary>VIRTIO_NET_HDR_GSO_TCPV4.</summary>
    public const byte GsoTcpV4 = 1;

    /// <summary>VIRTIO_NET_HDR_GSO_UDP (UFO).</summary>
    public const byte GsoUdp = 3;

    /// <summary>VIRTIO_NET_HDR_GSO_TCPV6.</summary>
    public const byte GsoTcpV6 = 4;

    /// <summary>VIRTIO_NET_HDR_GSO_ECN: the TCP segments carry ECN (a bit or-ed into the type).</summary>
    public const byte GsoEcn = 0x80;

    /// <summary>Reads a header from its little-endian wire form. Any thread.</summary>
    /// <param name="source">At least <see cref="Size"/> bytes.</param>
    /// <returns>The header.</returns>
    public static VirtioNetHeader Read(ReadOnlySpan<byte> source) => new(
        source[0],
        source[1],
        BinaryPrimitives.ReadUInt16LittleEndian(source[2..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[4..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[6..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[8..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[10..Size]));

    /// <summary>Writes the header in its little-endian wire form. Any thread.</summary>
    /// <param name="destination">At least <see cref="Size"/> bytes.</param>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(destination[10..Size], NumBuffers);
        destination[0] = Flags;
        destination[1] = GsoType;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], HeaderLength);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[4..], GsoSize);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[6..], ChecksumStart);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[8..], ChecksumOffset);
    }
}
