using System;
using System.Collections.Generic;

namespace Virtio.Core.Memory;

/// <summary>
/// Guest physical memory made of non-overlapping <see cref="GuestMemoryRegion"/>s. Lookups are
/// bounds- and overflow-checked; a range that crosses from one region into another is rejected.
/// </summary>
/// <remarks>
/// Immutable after construction and safe to use from any thread. Dispose (which unmaps every
/// region) only after every device using it has stopped.
/// </remarks>
public sealed class GuestMemory : IGuestMemory, IDisposable
{
    private readonly GuestMemoryRegion[] _regions;

    /// <summary>Builds guest memory from regions; it takes ownership of them.</summary>
    /// <param name="regions">Regions that must not overlap.</param>
    /// <exception cref="ArgumentException">No region was given, or two regions overlap.</exception>
    public GuestMemory(IEnumerable<GuestMemoryRegion> regions)
    {
        ArgumentNullException.ThrowIfNull(regions);
        var list = new List<GuestMemoryRegion>(regions);
        if (list.Count == 0)
        {
            throw new ArgumentException("Guest memory needs at least one region.", nameof(regions));
        }

        list.Sort(static (a, b) => a.Start.Value.CompareTo(b.Start.Value));
        for (int i = 1; i < list.Count; i++)
        {
            GuestMemoryRegion previous = list[i - 1];
            if (list[i].Start.Value - previous.Start.Value < previous.Size)
            {
                throw new ArgumentException($"Regions at {previous.Start} and {list[i].Start} overlap.", nameof(regions));
            }
        }

        _regions = list.ToArray();
    }

    /// <summary>Creates guest memory of one anonymous region of <paramref name="size"/> bytes at guest address 0.</summary>
    /// <param name="size">Bytes, a multiple of the page size.</param>
    /// <returns>The memory; dispose it when done.</returns>
    public static GuestMemory CreateAnonymous(ulong size) =>
        new([GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), size)]);

    /// <summary>The regions, in ascending guest address order.</summary>
    public IReadOnlyList<GuestMemoryRegion> Regions => _regions;

    /// <inheritdoc />
    public bool TryGetSpan(GuestAddress address, int length, out Span<byte> span)
    {
        if (length <= 0)
        {
            span = default;
            return length == 0;
        }

        GuestMemoryRegion? region = FindRegion(address.Value);
        if (region is not null)
        {
            ulong offset = address.Value - region.Start.Value;
            // offset < Size holds, so Size - offset cannot underflow: no overflow on the sum.
            if ((ulong)length <= region.Size - offset)
            {
                span = region.UncheckedSpan(offset, length);
                return true;
            }
        }

        span = default;
        return false;
    }

    /// <summary>Returns the region holding <paramref name="address"/>, or null when it is not guest memory.</summary>
    /// <param name="address">A guest physical address.</param>
    /// <returns>The region, or null.</returns>
    public GuestMemoryRegion? FindRegion(GuestAddress address) => FindRegion(address.Value);

    private GuestMemoryRegion? FindRegion(ulong address)
    {
        GuestMemoryRegion[] regions = _regions;
        int lo = 0, hi = regions.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            GuestMemoryRegion r = regions[mid];
            if (address < r.Start.Value)
            {
                hi = mid - 1;
            }
            else if (r.Contains(address))
            {
                return r;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return null;
    }

    /// <summary>Unmaps every region. Call only after every device using this memory has stopped.</summary>
    public void Dispose()
    {
        foreach (GuestMemoryRegion region in _regions)
        {
            region.Dispose();
        }
    }
}
