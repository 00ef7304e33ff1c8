using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.Tests.FrontEnd;

/// <summary>The library front end against the library back end (<see cref="VhostUserServer"/> serving virtio-blk).</summary>
public sealed class FrontEndAgainstServerTests
{
    [Fact]
    public void Negotiate_UsesTheWantedProtocolFeaturesTheServerOffers()
    {
        using var rig = new BlkServerRig(queues: 2);
        using var client = new BlkFrontEndClient(rig.SocketPath);

        Assert.NotEqual(0ul, client.Negotiation.OfferedFeatures & VhostUserFrontEnd.ProtocolFeaturesBit);
        Assert.Equal(VhostUserFrontEnd.ProtocolFeaturesBit | BlkFrontEndClient.VersionOne, client.Negotiation.Features);
        Assert.Equal(VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.MultiQueue, client.Negotiation.ProtocolFeatures);
        Assert.Equal(2, client.Negotiation.QueueCount);
        Assert.True(client.FrontEnd.PeerProcessId == System.Environment.ProcessId, "SO_PEERCRED names this process (the server runs in it)");
    }

    [Fact]
    public void GetConfig_CapacityMatchesTheBackend()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath);

        Assert.Equal((ulong)rig.Backend.Capacity / BlkServerRig.Sector, client.CapacitySectors());
    }

    [Fact]
    public void WriteThenRead_ThroughTheLibraryFrontEnd_RoundTrips()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath);
        client.Start();
        byte[] pattern = BlkServerRig.Pattern(4096, 11);

        Assert.Equal(0, client.Request(BlkFrontEndClient.Out, 16, writeData: pattern).Status);
        (byte status, byte[] data) = client.Request(BlkFrontEndClient.In, 16, readLength: 4096);

        Assert.Equal(0, status);
        Assert.Equal(pattern, data);
        Assert.True(client.Call.TryConsume(out _), "no call-fd interrupt");
    }

    [Fact]
    public void InFlightFd_GetThenSetOnTheNextConnection_IsAccepted()
    {
        const VhostUserProtocolFeatures wanted = VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.InFlightSharedMemory;
        using var rig = new BlkServerRig();
        VhostUserInFlightBuffer buffer;
        using (var first = new BlkFrontEndClient(rig.SocketPath, wanted))
        {
            buffer = first.FrontEnd.GetInFlightFd(1, 256);
        }

        using (buffer)
        using (var second = new BlkFrontEndClient(rig.SocketPath, wanted))
        {
            Assert.True(buffer.MmapSize >= 256 * 16, $"a buffer of {buffer.MmapSize} bytes cannot hold 256 entries");
            Assert.False(buffer.Fd.IsInvalid);
            second.FrontEnd.SetInFlightFd(buffer); // REPLY_ACK: a refusal would throw
            second.Start();
            Assert.Equal(0, second.Request(BlkFrontEndClient.Out, 0, writeData: new byte[512]).Status);
        }
    }

    [Fact]
    public void GetVringBase_AfterTwoRequests_ReturnsTwo()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath);
        client.Start();
        client.Request(BlkFrontEndClient.Out, 0, writeData: new byte[512]);
        client.Request(BlkFrontEndClient.In, 0, readLength: 512);

        Assert.Equal(2, client.FrontEnd.GetVringBase(0));
    }

    [Fact]
    public void RefusedRequest_ThrowsBackEndException()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath);
        client.FrontEnd.SetMemoryTable(client.Memory);

        // Ring 7 does not exist: the server refuses it (a failed REPLY_ACK or a closed connection).
        Assert.Throws<VhostUserBackEndException>(() => client.FrontEnd.SetVringNum(7, 64));
    }

    [Fact]
    public void GetConfig_WithoutTheConfigFeature_ThrowsBeforeSending()
    {
        using var rig = new BlkServerRig();
        using var client = new BlkFrontEndClient(rig.SocketPath, VhostUserProtocolFeatures.ReplyAck);

        Assert.Throws<System.InvalidOperationException>(() => client.CapacitySectors());
        Assert.Null(client.Negotiation.QueueCount);
    }
}
