using Virtio.Core.Memory;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// One region of the front end's memory table: where it is in guest physical memory, where it is
/// in the front end's address space (the user address rings are given in), and our mapping of it.
/// </summary>
/// <param name="GuestAddress">The first guest physical address.</param>
/// <param name="Size">Bytes.</param>
/// <param name="UserAddress">The front end's virtual address of the first byte.</param>
/// <param name="MmapOffset">Where the region starts in the fd the front end sent.</param>
/// <param name="Mapping">Our shared mapping of it.</param>
internal sealed record VhostUserMemoryRegion(ulong GuestAddress, ulong Size, ulong UserAddress, ulong MmapOffset, GuestMemoryRegion Mapping)
{
    public bool GuestOverlaps(ulong start, ulong size) => start < GuestAddress + Size && GuestAddress < start + size;

    public bool UserOverlaps(ulong start, ulong size) => start < UserAddress + Size && UserAddress < start + size;
}
