using System;
using Virtio.Testing;
using Virtio.VhostUser.Memory;
using Virtio.VhostUser.Protocol;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// Feature negotiation on its own: only offered bits are accepted, the same features on a live
/// device keep its state (a reconnect), and bit 30 decides whether rings start disabled.
/// </summary>
public sealed class FeatureNegotiationTests
{
    [Fact]
    public void ProtocolFeaturesBeyondTheOffer_AreRefused()
    {
        var features = new FeatureNegotiation(new RecordingDevice(new VhostUserMemory()));

        var exception = Assert.Throws<VhostUserProtocolException>(() => features.SetProtocolFeatures(1ul << 2));
        Assert.Contains("SET_PROTOCOL_FEATURES asks for 0x4", exception.Message, StringComparison.Ordinal);
        Assert.Equal(VhostUserProtocolFeatures.None, features.ProtocolFeatures);
    }

    [Fact]
    public void FeaturesBeyondTheOffer_AreRefused()
    {
        var features = new FeatureNegotiation(new RecordingDevice(new VhostUserMemory()));

        Assert.Throws<VhostUserProtocolException>(() => features.Accept(~features.OfferedFeatures, out _));
    }

    [Fact]
    public void SameFeaturesOnALiveDevice_AreNotANewDriver()
    {
        var device = new RecordingDevice(new VhostUserMemory());
        var features = new FeatureNegotiation(device);
        ulong offered = features.OfferedFeatures;

        ulong virtio = features.Accept(offered, out bool first);
        Assert.True(first);
        Assert.Equal(offered & ~(FeatureNegotiation.ProtocolFeaturesBit | FeatureNegotiation.LogAllBit), virtio);
        Assert.True(features.RingsStartDisabled);
        features.StartDriver(virtio);
        features.Acknowledge();
        Assert.True(device.IsLive);

        features.Accept(virtio, out bool again);
        Assert.False(again);
        Assert.False(features.RingsStartDisabled);
        Assert.False(features.LogAll);

        // VHOST_F_LOG_ALL on and off (a migration) is the same driver: its rings keep their state.
        Assert.Equal(virtio, features.Accept(virtio | FeatureNegotiation.LogAllBit, out bool logging));
        Assert.False(logging);
        Assert.True(features.LogAll);
        features.Reset();
        Assert.False(features.FeaturesAcked);
    }
}
