using Virtio.Core.Devices;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// What one connection negotiated: the virtio features (GET/SET_FEATURES, with
/// VHOST_USER_F_PROTOCOL_FEATURES borrowed from them) and the protocol features
/// (GET/SET_PROTOCOL_FEATURES). Used on the connection's thread.
/// </summary>
internal sealed class FeatureNegotiation
{
    /// <summary>VHOST_USER_F_PROTOCOL_FEATURES, a virtio feature bit borrowed by the protocol.</summary>
    public const ulong ProtocolFeaturesBit = 1ul << 30;

    /// <summary>
    /// VHOST_F_LOG_ALL (bit 26), a vhost feature bit borrowed likewise: while acknowledged, the back end
    /// logs its guest-memory writes in the SET_LOG_BASE bitmap. Not a virtio feature: never the device's.
    /// </summary>
    public const ulong LogAllBit = 1ul << 26;

    private const ushort NetDeviceId = 1;

    private readonly VirtioDevice _device;

    public FeatureNegotiation(VirtioDevice device) => _device = device;

    /// <summary>What GET_FEATURES offers: the device's features, the protocol-features bit and VHOST_F_LOG_ALL.</summary>
    public ulong OfferedFeatures => _device.DeviceFeatures | ProtocolFeaturesBit | LogAllBit;

    /// <summary>Whether the last SET_FEATURES acknowledged <see cref="LogAllBit"/>.</summary>
    public bool LogAll { get; private set; }

    /// <summary>
    /// What GET_PROTOCOL_FEATURES offers. A net front end keeps the configuration space itself
    /// (MAC, status, MTU) and warns about CONFIG, so it is left out for device ID 1, and with it
    /// BACKEND_REQ, whose only message here (CONFIG_CHANGE_MSG) requires CONFIG.
    /// </summary>
    public VhostUserProtocolFeatures OfferedProtocolFeatures =>
        _device.DeviceId == NetDeviceId
            ? VhostUserProtocolFeatures.Supported & ~(VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.BackendRequests)
            : VhostUserProtocolFeatures.Supported;

    /// <summary>Whether SET_BACKEND_REQ_FD may come (BACKEND_REQ acked).</summary>
    public bool BackendRequests => (ProtocolFeatures & VhostUserProtocolFeatures.BackendRequests) != 0;

    /// <summary>The protocol features SET_PROTOCOL_FEATURES acked.</summary>
    public VhostUserProtocolFeatures ProtocolFeatures { get; private set; }

    /// <summary>Whether SET_FEATURES came (and RESET_OWNER has not undone it since): rings may start.</summary>
    public bool FeaturesAcked { get; private set; }

    /// <summary>
    /// Whether a ring starts disabled: with VHOST_USER_F_PROTOCOL_FEATURES acked a ring waits for
    /// SET_VRING_ENABLE, without it a ring is enabled once it has a kick fd.
    /// </summary>
    public bool RingsStartDisabled { get; private set; }

    /// <summary>Whether a need_reply message without a reply of its own gets a REPLY_ACK status.</summary>
    public bool ReplyAck => (ProtocolFeatures & VhostUserProtocolFeatures.ReplyAck) != 0;

    /// <summary>SET_PROTOCOL_FEATURES: only what was offered.</summary>
    public void SetProtocolFeatures(ulong requested)
    {
        ulong offered = (ulong)OfferedProtocolFeatures;
        if ((requested & ~offered) != 0)
        {
            throw new VhostUserProtocolException($"SET_PROTOCOL_FEATURES asks for 0x{requested:x}, only 0x{offered:x} offered");
        }

        ProtocolFeatures = (VhostUserProtocolFeatures)requested;
    }

    /// <summary>
    /// SET_FEATURES, first step: checks <paramref name="features"/> against the offer and returns
    /// the virtio part. <paramref name="newDriver"/> says whether they differ from what the live
    /// device runs with (a reconnecting front end sends the same features and keeps the device's
    /// state); then the caller stops the rings and calls <see cref="StartDriver"/>.
    /// </summary>
    public ulong Accept(ulong features, out bool newDriver)
    {
        ulong offered = OfferedFeatures;
        if ((features & ~offered) != 0)
        {
            throw new VhostUserProtocolException($"SET_FEATURES asks for 0x{features:x}, outside the offered 0x{offered:x}");
        }

        RingsStartDisabled = (features & ProtocolFeaturesBit) != 0;
        LogAll = (features & LogAllBit) != 0;

        // QEMU turns logging on and off with SET_FEATURES during a migration: the same virtio
        // features with LOG_ALL added or removed are the same driver, its rings keep their state.
        ulong virtio = features & ~(ProtocolFeaturesBit | LogAllBit);
        newDriver = !(_device.IsLive && _device.DriverFeatures == virtio);
        return virtio;
    }

    /// <summary>New features mean a new driver: the device starts over and runs the virtio status sequence with them.</summary>
    public void StartDriver(ulong virtio)
    {
        _device.Reset();
        _device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver);
        _device.WriteDriverFeatures(virtio);
        _device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk);
        if ((_device.Status & DeviceStatus.FeaturesOk) == 0)
        {
            throw new VhostUserProtocolException($"SET_FEATURES: the device refused features 0x{virtio:x}");
        }

        _device.WriteStatus(DeviceStatus.Acknowledge | DeviceStatus.Driver | DeviceStatus.FeaturesOk | DeviceStatus.DriverOk);
    }

    /// <summary>SET_FEATURES, last step: the rings may start.</summary>
    public void Acknowledge() => FeaturesAcked = true;

    /// <summary>RESET_OWNER: the features are gone with the device's state (the caller reset it).</summary>
    public void Reset()
    {
        FeaturesAcked = false;
        LogAll = false;
    }
}
