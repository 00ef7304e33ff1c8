namespace Virtio.VhostUser.Protocol;

/// <summary>
/// struct vhost_user_memory_region (vhost-user.rst, "Memory region description"): one region of
/// SET_MEM_TABLE, or the region of ADD_MEM_REG / REM_MEM_REG ("Single memory region description",
/// after 8 bytes of padding).
/// </summary>
/// <param name="GuestAddress">The first guest physical address.</param>
/// <param name="Size">Bytes.</param>
/// <param name="UserAddress">The front end's virtual address of the first byte.</param>
/// <param name="MmapOffset">Where the region starts in the fd sent with it.</param>
internal readonly record struct MemoryRegionDescription(ulong GuestAddress, ulong Size, ulong UserAddress, ulong MmapOffset)
{
    /// <summary>Bytes on the wire.</summary>
    public const int WireSize = 32;

    /// <summary>How protocol errors name the region: the request, its position and its fields.</summary>
    public string Describe(VhostUserRequest request, int index) =>
        $"{request}: region {index} (guest 0x{GuestAddress:x}, size 0x{Size:x}, user 0x{UserAddress:x}, offset 0x{MmapOffset:x})";
}
