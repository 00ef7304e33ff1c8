namespace Virtio.VhostUser.Protocol;

/// <summary>
/// struct vhost_vring_addr (vhost-user.rst, "Ring address description"), SET_VRING_ADDR's payload:
/// the three parts of a split ring as front-end user addresses.
/// </summary>
/// <param name="Index">The ring (not yet checked against the device).</param>
/// <param name="Flags">VHOST_VRING_F_LOG or 0 (checked by the decoder).</param>
/// <param name="DescriptorTable">User address of the descriptor table.</param>
/// <param name="UsedRing">User address of the used ring.</param>
/// <param name="AvailRing">User address of the available ring.</param>
/// <param name="Log">With <see cref="FlagLog"/>: the guest address the used ring's writes are logged at (dirty logging).</param>
internal readonly record struct VringAddress(uint Index, uint Flags, ulong DescriptorTable, ulong UsedRing, ulong AvailRing, ulong Log)
{
    /// <summary>Bytes on the wire.</summary>
    public const int Size = 40;

    /// <summary>VHOST_VRING_F_LOG, the only flag defined.</summary>
    public const uint FlagLog = 0x1;
}
