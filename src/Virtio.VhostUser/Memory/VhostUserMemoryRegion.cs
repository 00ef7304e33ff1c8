using System.Threading;
using Virtio.Core.Memory;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// One region of the front end's memory table: where it is in guest physical memory, where it is
/// in the front end's address space (the user address rings are given in), and our mapping of it.
/// A mapping can belong to several generations (ADD_MEM_REG keeps the others): each committed
/// generation holds a reference, and the mapping is unmapped when the last one lets go
/// (<see cref="MemoryTableGeneration"/>).
/// </summary>
/// <param name="guestAddress">The first guest physical address.</param>
/// <param name="size">Bytes.</param>
/// <param name="userAddress">The front end's virtual address of the first byte.</param>
/// <param name="mmapOffset">Where the region starts in the fd the front end sent.</param>
/// <param name="mapping">Our shared mapping of it.</param>
internal sealed class VhostUserMemoryRegion(ulong guestAddress, ulong size, ulong userAddress, ulong mmapOffset, GuestMemoryRegion mapping)
{
    private int _references;

    /// <summary>The first guest physical address.</summary>
    public ulong GuestAddress { get; } = guestAddress;

    /// <summary>Bytes.</summary>
    public ulong Size { get; } = size;

    /// <summary>The front end's virtual address of the first byte.</summary>
    public ulong UserAddress { get; } = userAddress;

    /// <summary>Where the region starts in the fd the front end sent.</summary>
    public ulong MmapOffset { get; } = mmapOffset;

    /// <summary>Our shared mapping of it.</summary>
    public GuestMemoryRegion Mapping { get; } = mapping;

    public bool GuestOverlaps(ulong start, ulong size) => start < GuestAddress + Size && GuestAddress < start + size;

    public bool UserOverlaps(ulong start, ulong size) => start < UserAddress + Size && UserAddress < start + size;

    /// <summary>A committed generation holds the mapping. Connection thread (at commit).</summary>
    public void AddReference() => Interlocked.Increment(ref _references);

    /// <summary>A generation lets go; the last one unmaps. Any thread. True when this call unmapped it.</summary>
    public bool ReleaseReference()
    {
        if (Interlocked.Decrement(ref _references) != 0)
        {
            return false;
        }

        Mapping.Dispose();
        return true;
    }
}
