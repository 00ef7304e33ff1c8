using System;
using System.Collections.Generic;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// One version of the memory table: its regions, sorted by guest address, and a number that grows
/// by one with every replacement. Immutable. A generation made by <see cref="VhostUserMemoryTable"/>
/// is only prepared (its new regions mapped) until the table commits it; after that, the table
/// unmaps the regions a later generation drops.
/// </summary>
/// <remarks>
/// The seam for in-flight pinning (not done yet): a request popped under a generation would hold
/// it, and the table would unmap a dropped region only once no request holds a generation with it.
/// </remarks>
internal sealed class MemoryTableGeneration
{
    private readonly VhostUserMemoryRegion[] _regions;

    public MemoryTableGeneration(long number, VhostUserMemoryRegion[] regions)
    {
        Array.Sort(regions, static (a, b) => a.GuestAddress.CompareTo(b.GuestAddress));
        Number = number;
        _regions = regions;
        foreach (VhostUserMemoryRegion region in regions)
        {
            Bytes += region.Size;
        }
    }

    /// <summary>The first, empty table of a connection.</summary>
    public static MemoryTableGeneration Empty { get; } = new(0, []);

    /// <summary>0 for the empty table a connection starts with, then one more per replacement.</summary>
    public long Number { get; }

    /// <summary>The regions, sorted by guest address.</summary>
    public IReadOnlyList<VhostUserMemoryRegion> Regions => _regions;

    /// <summary>Bytes in all regions.</summary>
    public ulong Bytes { get; }

    /// <summary>Whether <paramref name="region"/> (this very mapping) is part of this generation.</summary>
    public bool Contains(VhostUserMemoryRegion region) => Array.IndexOf(_regions, region) >= 0;

    /// <summary>
    /// Translates a front-end user address to a guest physical address when [user, user + length)
    /// lies inside one region.
    /// </summary>
    public bool TryTranslateUserAddress(ulong user, ulong length, out ulong guest)
    {
        foreach (VhostUserMemoryRegion region in _regions)
        {
            ulong offset = user - region.UserAddress;
            if (user >= region.UserAddress && offset < region.Size && length <= region.Size - offset)
            {
                guest = region.GuestAddress + offset;
                return true;
            }
        }

        guest = 0;
        return false;
    }

    /// <summary>Unmaps the regions of this generation that <paramref name="successor"/> does not have.</summary>
    public void DisposeMappingsNotIn(MemoryTableGeneration successor)
    {
        foreach (VhostUserMemoryRegion region in _regions)
        {
            if (!successor.Contains(region))
            {
                region.Mapping.Dispose();
            }
        }
    }
}
