using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.FrontEnd;

/// <summary>What <see cref="VhostUserFrontEnd.Negotiate"/> settled with the back end.</summary>
/// <param name="OfferedFeatures">GET_FEATURES: the virtio and vhost-user feature bits the back end offered.</param>
/// <param name="Features">SET_FEATURES: the bits acknowledged (offered and wanted, plus VHOST_USER_F_PROTOCOL_FEATURES when offered).</param>
/// <param name="ProtocolFeatures">SET_PROTOCOL_FEATURES: the protocol features in use (offered and wanted).</param>
/// <param name="QueueCount">GET_QUEUE_NUM when <see cref="VhostUserProtocolFeatures.MultiQueue"/> is in use; otherwise null (the device type's default).</param>
public readonly record struct VhostUserNegotiation(ulong OfferedFeatures, ulong Features, VhostUserProtocolFeatures ProtocolFeatures, int? QueueCount);
