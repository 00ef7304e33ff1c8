using System;
using System.Buffers.Binary;

namespace Virtio.Bench.Soak;

/// <summary>
/// The frames of the soak's net load: ARP requests for the peer (the tap's address in the private
/// namespace) and ICMP echo requests to it, and a parser that recognises the peer's answers.
/// Addresses are the namespace's: we are 10.0.2.15 with <see cref="OurMac"/>, the peer 10.0.2.1.
/// </summary>
internal static class NetFrames
{
    public const uint OurIp = 0x0A00020F;  // 10.0.2.15
    public const uint PeerIp = 0x0A000201; // 10.0.2.1
    public const ushort EchoId = 0x50AC;
    public const int MinFrame = 60;
    private const ushort EtherArp = 0x0806;
    private const ushort EtherIpv4 = 0x0800;

    /// <summary>52:54:00:50:ac:0f: a locally administered address (the script adds it as a permanent neighbour).</summary>
    public static ReadOnlySpan<byte> OurMac => [0x52, 0x54, 0x00, 0x50, 0xAC, 0x0F];

    /// <summary>Writes "who has 10.0.2.1, tell 10.0.2.15" (broadcast), padded to 60 bytes; returns the length.</summary>
    public static int WriteArpRequest(Span<byte> frame)
    {
        frame[..MinFrame].Clear();
        frame[..6].Fill(0xFF);
        OurMac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], EtherArp);
        Span<byte> arp = frame[14..];
        BinaryPrimitives.WriteUInt16BigEndian(arp, 1);             // Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(arp[2..], EtherIpv4);
        arp[4] = 6;
        arp[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(arp[6..], 1);        // request
        OurMac.CopyTo(arp[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(arp[14..], OurIp);
        BinaryPrimitives.WriteUInt32BigEndian(arp[24..], PeerIp);
        return MinFrame;
    }

    /// <summary>Writes an ICMP echo request to the peer with <paramref name="payload"/> bytes of data; returns the length.</summary>
    public static int WriteEchoRequest(Span<byte> frame, ReadOnlySpan<byte> peerMac, ushort sequence, int payload)
    {
        int ipLength = 20 + 8 + payload;
        int length = Math.Max(MinFrame, 14 + ipLength);
        frame[..length].Clear();
        peerMac.CopyTo(frame);
        OurMac.CopyTo(frame[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], EtherIpv4);
        Span<byte> ip = frame.Slice(14, ipLength);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)ipLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], sequence);
        ip[8] = 64;
        ip[9] = 1; // ICMP
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], OurIp);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], PeerIp);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip[..20]));
        Span<byte> icmp = ip[20..];
        icmp[0] = 8; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], EchoId);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], sequence);
        for (int i = 0; i < payload; i++)
        {
            icmp[8 + i] = (byte)(sequence + i);
        }

        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
        return length;
    }

    /// <summary>An ARP reply from the peer: copies its MAC into <paramref name="peerMac"/>.</summary>
    public static bool IsPeerArpReply(ReadOnlySpan<byte> frame, Span<byte> peerMac)
    {
        if (frame.Length < 42 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherArp)
        {
            return false;
        }

        ReadOnlySpan<byte> arp = frame[14..];
        if (BinaryPrimitives.ReadUInt16BigEndian(arp[6..]) != 2 || BinaryPrimitives.ReadUInt32BigEndian(arp[14..]) != PeerIp)
        {
            return false;
        }

        arp.Slice(8, 6).CopyTo(peerMac);
        return true;
    }

    /// <summary>An ICMP echo reply from the peer to our id, its data intact.</summary>
    public static bool IsEchoReply(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < 42 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != EtherIpv4)
        {
            return false;
        }

        ReadOnlySpan<byte> ip = frame[14..];
        int ipLength = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (ip[0] != 0x45 || ip[9] != 1 || ipLength > ip.Length || ipLength < 28 || BinaryPrimitives.ReadUInt32BigEndian(ip[12..]) != PeerIp)
        {
            return false;
        }

        ReadOnlySpan<byte> icmp = ip[20..ipLength];
        if (icmp[0] != 0 || BinaryPrimitives.ReadUInt16BigEndian(icmp[4..]) != EchoId || Checksum(icmp) != 0)
        {
            return false;
        }

        ushort sequence = BinaryPrimitives.ReadUInt16BigEndian(icmp[6..]);
        for (int i = 8; i < icmp.Length; i++)
        {
            if (icmp[i] != (byte)(sequence + i - 8))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The Internet checksum (RFC 1071) of <paramref name="data"/>; 0 over data that carries a correct one.</summary>
    private static ushort Checksum(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        for (int i = 0; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if ((data.Length & 1) != 0)
        {
            sum += (uint)data[^1] << 8;
        }

        while (sum >> 16 != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }
}
