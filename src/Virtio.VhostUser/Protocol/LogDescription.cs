namespace Virtio.VhostUser.Protocol;

/// <summary>
/// SET_LOG_BASE's payload with VHOST_USER_PROTOCOL_F_LOG_SHMFD (vhost-user.rst, "Log description"):
/// the bytes of the dirty-page bitmap and where it starts in the message's fd (the bit of guest page 0).
/// </summary>
/// <param name="MmapSize">Bytes of the bitmap (not yet checked).</param>
/// <param name="MmapOffset">Where the bitmap starts in the fd (not yet checked).</param>
internal readonly record struct LogDescription(ulong MmapSize, ulong MmapOffset)
{
    /// <summary>Bytes on the wire.</summary>
    public const int Size = 16;
}
