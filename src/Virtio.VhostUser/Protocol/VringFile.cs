namespace Virtio.VhostUser.Protocol;

/// <summary>
/// The u64 of SET_VRING_KICK, SET_VRING_CALL and SET_VRING_ERR: a ring index in bits 0-7 and, in
/// bit 8, "no file descriptor" (then the message carries none; otherwise exactly one).
/// </summary>
/// <param name="Index">The ring (not yet checked against the device).</param>
/// <param name="NoFd">Whether the message carries no fd.</param>
internal readonly record struct VringFile(uint Index, bool NoFd)
{
    /// <summary>Bits of the ring index.</summary>
    public const ulong IndexMask = 0xff;

    /// <summary>VHOST_USER_VRING_NOFD_MASK.</summary>
    public const ulong NoFdFlag = 0x100;
}
