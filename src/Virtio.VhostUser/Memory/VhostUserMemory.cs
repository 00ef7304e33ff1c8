using System;
using System.Collections.Generic;
using System.Threading;
using Virtio.Core.Memory;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// The guest memory a served device sees: the regions the current front end shared, swapped as a
/// whole when the memory table changes (only while the rings are stopped and nothing is in flight).
/// With no table every access fails, which a device treats as a bad address.
/// </summary>
internal sealed class VhostUserMemory : IGuestMemory
{
    private static readonly VhostUserMemoryRegion[] s_none = [];

    private GuestMemory? _current;
    private VhostUserMemoryRegion[] _regions = s_none;

    /// <summary>The regions of the current table, sorted by guest address.</summary>
    public IReadOnlyList<VhostUserMemoryRegion> Regions => Volatile.Read(ref _regions);

    public bool TryGetSpan(GuestAddress address, int length, out Span<byte> span)
    {
        GuestMemory? memory = Volatile.Read(ref _current);
        if (memory is null)
        {
            span = default;
            return false;
        }

        return memory.TryGetSpan(address, length, out span);
    }

    /// <summary>
    /// Replaces the table. The caller has stopped every ring and disposes the mappings of the
    /// regions that are no longer in <paramref name="regions"/>.
    /// </summary>
    public void Replace(VhostUserMemoryRegion[] regions)
    {
        Array.Sort(regions, static (a, b) => a.GuestAddress.CompareTo(b.GuestAddress));
        GuestMemoryRegion[] mappings = new GuestMemoryRegion[regions.Length];
        for (int i = 0; i < regions.Length; i++)
        {
            mappings[i] = regions[i].Mapping;
        }

        // GuestMemory only indexes the regions: it is never disposed, the regions are, one by one.
        Volatile.Write(ref _current, regions.Length == 0 ? null : new GuestMemory(mappings));
        Volatile.Write(ref _regions, regions);
    }

    /// <summary>
    /// Translates a front-end user address to a guest physical address when [user, user + length)
    /// lies inside one region.
    /// </summary>
    public bool TryTranslateUserAddress(ulong user, ulong length, out ulong guest)
    {
        foreach (VhostUserMemoryRegion region in Regions)
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
}
