using System;
using System.Net.NetworkInformation;
using Virtio.Net.Backends;
using Xunit;

namespace Virtio.Net.Tests.Backends;

/// <summary>
/// The real kernel on the other side (<see cref="TapNamespace"/>): the test driver plays a guest at
/// 10.99.0.2 and must get the Linux stack's ARP reply and ICMP echo reply back through the receive queue.
/// </summary>
public sealed class TapNetBackendTests
{
    [Fact]
    public void Tap_InANamespace_AnswersArpAndPing_ThroughTheDevice()
    {
        using TapNamespace peer = TapNamespace.Create();
        using var rig = new NetRig([peer.Tap], new NetDeviceOptions { MacAddress = new PhysicalAddress(Frames.GuestMac) }, queueSize: 64);
        Assert.True((rig.Features & NetFeatures.GuestCsum) != 0, "TAP offloads should be negotiated.");
        rig.AddRxBuffers(32, 2048);

        rig.Send(IcmpFrames.ArpRequest());
        byte[] arp = WaitForFrame(rig, IcmpFrames.IsArpReplyFromHost);
        byte[] hostMac = arp[6..12];

        rig.Send(IcmpFrames.EchoRequest(hostMac, identifier: 0x7A7A, sequence: 1));
        byte[] reply = WaitForFrame(rig, f => IcmpFrames.IsEchoReply(f, 0x7A7A, 1));
        Assert.Equal(Frames.GuestMac, reply[0..6]);
        Assert.Equal(hostMac, reply[6..12]);
        Assert.True(rig.Device.Counters.TxFrames >= 2);
    }

    [Fact]
    public void Tap_MultiQueue_GivesOneFdPerPair_OnOneInterface_AndTheDeviceOffersMq()
    {
        TapNamespace.SkipUnlessUsable();
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
}
