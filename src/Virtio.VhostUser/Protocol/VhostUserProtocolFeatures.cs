using System;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// Protocol feature bits (GET/SET_PROTOCOL_FEATURES, vhost-user.rst "Protocol features") this
/// package knows: what <see cref="VhostUserServer"/> offers, and what
/// <see cref="FrontEnd.VhostUserFrontEnd"/> can use. Other bits a back end offers are kept as
/// numbers and never set by the front end.
/// </summary>
[Flags]
public enum VhostUserProtocolFeatures : ulong
{
    /// <summary>No protocol feature.</summary>
    None = 0,

    /// <summary>VHOST_USER_PROTOCOL_F_MQ (bit 0): GET_QUEUE_NUM answers how many queues the device has.</summary>
    MultiQueue = 1ul << 0,

    /// <summary>
    /// VHOST_USER_PROTOCOL_F_LOG_SHMFD (bit 1): SET_LOG_BASE carries the dirty-page bitmap as a shared
    /// memory fd, which the back end maps and marks while VHOST_F_LOG_ALL is acknowledged (live migration).
    /// </summary>
    LogSharedMemory = 1ul << 1,

    /// <summary>VHOST_USER_PROTOCOL_F_REPLY_ACK (bit 3): need_reply asks for a u64 status reply.</summary>
    ReplyAck = 1ul << 3,

    /// <summary>
    /// VHOST_USER_PROTOCOL_F_BACKEND_REQ (bit 5, SLAVE_REQ in older texts): SET_BACKEND_REQ_FD hands the
    /// back end a socket for its own requests; the server sends CONFIG_CHANGE_MSG on it.
    /// </summary>
    BackendRequests = 1ul << 5,

    /// <summary>VHOST_USER_PROTOCOL_F_CONFIG (bit 9): GET_CONFIG / SET_CONFIG reach the device configuration.</summary>
    Config = 1ul << 9,

    /// <summary>VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD (bit 12): GET/SET_INFLIGHT_FD share the in-flight region.</summary>
    InFlightSharedMemory = 1ul << 12,

    /// <summary>
    /// VHOST_USER_PROTOCOL_F_RESET_DEVICE (bit 13): RESET_DEVICE drains the rings and returns the
    /// device, its rings and the in-flight region to their initial state (docs/vhost-user.md).
    /// </summary>
    ResetDevice = 1ul << 13,

    /// <summary>VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS (bit 15): GET_MAX_MEM_SLOTS, ADD_MEM_REG, REM_MEM_REG.</summary>
    ConfigureMemSlots = 1ul << 15,

    /// <summary>
    /// VHOST_USER_PROTOCOL_F_STATUS (bit 16): SET_STATUS tells the back end the driver's status byte,
    /// GET_STATUS reads it back with DEVICE_NEEDS_RESET when the device set it; status 0 stops the device.
    /// </summary>
    Status = 1ul << 16,

    /// <summary>What <see cref="VhostUserServer"/> offers (a net device without <see cref="Config"/> and <see cref="BackendRequests"/>).</summary>
    Supported = MultiQueue | LogSharedMemory | ReplyAck | BackendRequests | Config | InFlightSharedMemory | ResetDevice | ConfigureMemSlots | Status,
}
