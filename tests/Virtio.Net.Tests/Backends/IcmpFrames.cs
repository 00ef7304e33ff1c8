using System;
using System.Buffers.Binary;

namespace Virtio.Net.Tests.Backends;

/// <summary>ARP and ICMP echo frames between the test's guest (10.99.0.2) and the kernel in a <see cref="TapNamespace"/> (10.99.0.1).</summary>
internal static class IcmpFrames
{
    public static readonly byte[] GuestIp = [10, 99, 0, 2];
    public static readonly byte[] HostIp = [10, 99, 0, 1];

    public static byte[] ArpRequest()
    {
        byte[] frame = new byte[42];
        Frames.Broadcast.CopyTo(frame, 0);
        Frames.GuestMac.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), 1);      // Ethernet
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), 0x0800); // IPv4
        frame[18] = 6;
        frame[19] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(20), 1);      // request
        Frames.GuestMac.CopyTo(frame, 22);
        GuestIp.CopyTo(frame, 28);
        HostIp.CopyTo(frame, 38);
        return frame;
    }

    public static bool IsArpReplyFromHost(byte[] frame) =>
        frame.Length >= 42
        && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == 0x0806
        && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(20)) == 2
        && frame.AsSpan(28, 4).SequenceEqual(HostIp)
        && frame.AsSpan(38, 4).SequenceEqual(GuestIp);

    public static byte[] EchoRequest(byte[] hostMac, ushort identifier, ushort sequence, int payload = 32)
    {
        byte[] frame = new byte[14 + 20 + 8 + payload];
        hostMac.CopyTo(frame, 0);
        Frames.GuestMac.CopyTo(frame, 6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0800);
        Span<byte> ip = frame.AsSpan(14, 20);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + payload));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 0x1234);
        ip[8] = 64;
        ip[9] = 1; // ICMP
        GuestIp.CopyTo(ip[12..]);
        HostIp.CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum(ip));
        Span<byte> icmp = frame.AsSpan(34);
        icmp[0] = 8; // echo request
        BinaryPrimitives.WriteUInt16BigEndian(icmp[4..], identifier);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[6..], sequence);
        for (int i = 8; i < icmp.Length; i++)
        {
            icmp[i] = (byte)i;
        }

        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum(icmp));
        return frame;
    }

    public static bool IsEchoReply(ReadOnlySpan<byte> frame, ushort identifier, ushort sequence) =>
        IsEchoReply(frame, identifier) && BinaryPrimitives.ReadUInt16BigEndian(frame[40..]) == sequence;

    public static bool IsEchoReply(ReadOnlySpan<byte> frame, ushort identifier) =>
        frame.Length >= 42
        && BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == 0x0800
        && frame[23] == 1
        && frame.Slice(26, 4).SequenceEqual(HostIp)
        && frame[34] == 0
        && BinaryPrimitives.ReadUInt16BigEndian(frame[38..]) == identifier;

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

        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }

        return (ushort)~sum;
    }
}
