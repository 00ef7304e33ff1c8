using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO;
using System.Net.NetworkInformation;
using Virtio.Net.Backends;
using Xunit;

namespace Virtio.Net.Tests.Backends;

/// <summary>
/// The real kernel on the other side: a TAP interface moved into a network namespace made for the test,
/// addressed 10.99.0.1/24 there; the test driver plays a guest at 10.99.0.2 and must get the Linux
/// stack's ARP reply and ICMP echo reply back through the receive queue.
/// </summary>
public sealed class TapNetBackendTests
{
    private static readonly byte[] GuestIp = [10, 99, 0, 2];
    private static readonly byte[] HostIp = [10, 99, 0, 1];

    [Fact]
    public void Tap_InANamespace_AnswersArpAndPing_ThroughTheDevice()
    {
        SkipUnlessTapUsable();
        string suffix = Random.Shared.Next(0x10000, 0xFFFFF).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        string ns = "vnt-" + suffix;
        string tapName = "vnt" + suffix;
        Ip($"netns add {ns}");
        try
        {
            using TapNetBackend tap = TapNetBackend.Create(tapName);
            Assert.Equal(tapName, tap.InterfaceName);
            Ip($"link set {tapName} netns {ns}");
            Ip($"netns exec {ns} ip addr add 10.99.0.1/24 dev {tapName}");
            Ip($"netns exec {ns} ip link set {tapName} up");

            using var rig = new NetRig([tap], new NetDeviceOptions { MacAddress = new PhysicalAddress(Frames.GuestMac) }, queueSize: 64);
            Assert.True((rig.Features & NetFeatures.GuestCsum) != 0, "TAP offloads should be negotiated.");
            rig.AddRxBuffers(32, 2048);

            rig.Send(ArpRequest());
            byte[] arp = WaitForFrame(rig, IsArpReplyFromHost);
            byte[] hostMac = arp[6..12];

            rig.Send(EchoRequest(hostMac, identifier: 0x7A7A, sequence: 1));
            byte[] reply = WaitForFrame(rig, f => IsEchoReply(f, 0x7A7A, 1));
            Assert.Equal(Frames.GuestMac, reply[0..6]);
            Assert.Equal(hostMac, reply[6..12]);
            Assert.True(rig.Device.Counters.TxFrames >= 2);
        }
        finally
        {
            Ip($"netns del {ns}", check: false);
        }
    }

    [Fact]
    public void Tap_MultiQueue_GivesOneFdPerPair_OnOneInterface_AndTheDeviceOffersMq()
    {
        SkipUnlessTapUsable();
        string name = "vnq" + Random.Shared.Next(0x10000, 0xFFFFF).ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        TapNetBackend[] queues = TapNetBackend.CreateMultiQueue(name, 2);
        try
        {
            Assert.All(queues, q => Assert.Equal(name, q.InterfaceName));
            Assert.NotEqual(queues[0].ReceiveReadyHandle.DangerousGetHandle(), queues[1].ReceiveReadyHandle.DangerousGetHandle());
            using var rig = new NetRig(queues, new NetDeviceOptions());
            Assert.True((rig.Features & NetFeatures.Mq) != 0);
            Assert.Equal(0, rig.Command(4, 0, [2, 0]));
        }
        finally
        {
            foreach (TapNetBackend queue in queues)
            {
                queue.Dispose();
            }
        }
    }

    private static void SkipUnlessTapUsable()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "TAP interfaces need Linux.");
        Assert.SkipUnless(Environment.IsPrivilegedProcess, "Needs root (CAP_NET_ADMIN) to create a TAP interface and a network namespace.");
        Assert.SkipUnless(File.Exists("/dev/net/tun"), "/dev/net/tun is missing.");
        Assert.SkipUnless(FindOnPath("ip"), "The ip tool (iproute2) is not installed.");
    }

    private static bool FindOnPath(string tool)
    {
        foreach (string directory in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':'))
        {
            if (File.Exists(Path.Combine(directory, tool)))
            {
                return true;
            }
        }

        return false;
    }

    private static void Ip(string arguments, bool check = true)
    {
        var start = new ProcessStartInfo("ip", arguments) { RedirectStandardError = true, RedirectStandardOutput = true };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("ip did not start.");
        string error = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(NetRig.Timeout), $"ip {arguments} did not finish.");
        if (check)
        {
            Assert.True(process.ExitCode == 0, $"ip {arguments} failed ({process.ExitCode}): {error}");
        }
    }

    private static byte[] WaitForFrame(NetRig rig, Func<byte[], bool> wanted)
    {
        // Bounded: the namespace also sends IPv6 neighbour and multicast chatter; skip it.
        for (int i = 0; i < 64; i++)
        {
            byte[] data = rig.WaitUsed(0).Data;
            rig.AddRxBuffers(1, 2048);
            VirtioNetHeader header = VirtioNetHeader.Read(data);
            Assert.Equal(1, header.NumBuffers);
            byte[] frame = data[VirtioNetHeader.Size..];
            if (wanted(frame))
            {
                return frame;
            }
        }

        Assert.Fail("The wanted frame never came.");
        return [];
    }

    private static byte[] ArpRequest()
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

    private static bool IsArpReplyFromHost(byte[] frame) =>
        frame.Length >= 42
        && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == 0x0806
        && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(20)) == 2
        && frame.AsSpan(28, 4).SequenceEqual(HostIp)
        && frame.AsSpan(38, 4).SequenceEqual(GuestIp);

    private static byte[] EchoRequest(byte[] hostMac, ushort identifier, ushort sequence)
    {
        const int payload = 32;
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

    private static bool IsEchoReply(byte[] frame, ushort identifier, ushort sequence) =>
        frame.Length >= 42
        && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == 0x0800
        && frame[23] == 1
        && frame.AsSpan(26, 4).SequenceEqual(HostIp)
        && frame[34] == 0
        && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(38)) == identifier
        && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(40)) == sequence;

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
