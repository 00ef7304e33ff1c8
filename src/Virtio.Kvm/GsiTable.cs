using System;
using System.Collections.Generic;

namespace Virtio.Kvm;

/// <summary>
/// The bookkeeping of <see cref="KvmGsiRouting"/>, with no ioctl: the fixed routes, the GSIs handed out
/// for MSIs (above the IOAPIC's pins and every fixed GSI) with their current route, if any, and the table
/// they make together.
/// </summary>
/// <remarks>Not thread-safe; <see cref="KvmGsiRouting"/> holds its lock around every call.</remarks>
internal sealed class GsiTable
{
    private readonly KvmIrqRoute[] _fixed;
    private readonly SortedDictionary<uint, KvmIrqRoute?> _msi = new();

    /// <summary>Takes the fixed routes and picks the first GSI for MSIs.</summary>
    /// <exception cref="ArgumentException">The fixed routes alone fill the table, or one has a GSI KVM refuses.</exception>
    public GsiTable(IEnumerable<KvmIrqRoute> fixedRoutes)
    {
        _fixed = [.. fixedRoutes];
        uint first = KvmIrqRoute.MaxIoApicPin + 1;
        foreach (KvmIrqRoute route in _fixed)
        {
            if (route.Gsi >= KvmVm.MaxGsiRoutes)
            {
                throw new ArgumentException($"GSI {route.Gsi} is past KVM's last GSI ({KvmVm.MaxGsiRoutes - 1}).", nameof(fixedRoutes));
            }

            first = Math.Max(first, route.Gsi + 1);
        }

        if (_fixed.Length > KvmVm.MaxGsiRoutes)
        {
            throw new ArgumentException($"{_fixed.Length} fixed routes; KVM takes at most {KvmVm.MaxGsiRoutes}.", nameof(fixedRoutes));
        }

        FirstMsiGsi = first;
    }

    /// <summary>The lowest GSI handed out for MSIs: past the 24 IOAPIC pins and past every fixed GSI.</summary>
    public uint FirstMsiGsi { get; }

    /// <summary>The fixed routes, in the order given.</summary>
    public IReadOnlyList<KvmIrqRoute> FixedRoutes => _fixed;

    /// <summary>How many MSI GSIs are handed out.</summary>
    public int AllocatedCount => _msi.Count;

    /// <summary>
    /// Hands out the lowest free GSI at or above <see cref="FirstMsiGsi"/>, with no route yet. Fails when
    /// the GSIs run out or when one more route could overflow KVM's table (fixed routes plus one per
    /// handed-out GSI), so that a route for a GSI handed out can always be installed.
    /// </summary>
    public bool TryAllocate(out uint gsi)
    {
        gsi = 0;
        if (_fixed.Length + _msi.Count >= KvmVm.MaxGsiRoutes)
        {
            return false;
        }

        uint candidate = FirstMsiGsi;
        foreach (uint used in _msi.Keys)
        {
            // Keys ascend: the first gap at or above FirstMsiGsi is the lowest free GSI.
            if (used != candidate)
            {
                break;
            }

            candidate++;
        }

        if (candidate >= KvmVm.MaxGsiRoutes)
        {
            return false;
        }

        _msi.Add(candidate, null);
        gsi = candidate;
        return true;
    }

    /// <summary>Whether <paramref name="gsi"/> was handed out here.</summary>
    public bool IsAllocated(uint gsi) => _msi.ContainsKey(gsi);

    /// <summary>The route of a handed-out GSI, or null when it has none (or was not handed out).</summary>
    public KvmIrqRoute? RouteOf(uint gsi) => _msi.TryGetValue(gsi, out KvmIrqRoute? route) ? route : null;

    /// <summary>Sets (or with null clears) the route of a handed-out GSI.</summary>
    /// <exception cref="InvalidOperationException"><paramref name="gsi"/> was not handed out here.</exception>
    public void SetRoute(uint gsi, KvmIrqRoute? route)
    {
        if (!_msi.ContainsKey(gsi))
        {
            throw new InvalidOperationException($"GSI {gsi} was not allocated for an MSI here.");
        }

        _msi[gsi] = route;
    }

    /// <summary>Gives a handed-out GSI back; returns whether it had a route (the table then changed).</summary>
    public bool Release(uint gsi) => _msi.Remove(gsi, out KvmIrqRoute? route) && route is not null;

    /// <summary>The table to install: the fixed routes, then each MSI route by ascending GSI.</summary>
    public KvmIrqRoute[] Build()
    {
        int count = _fixed.Length;
        foreach (KvmIrqRoute? route in _msi.Values)
        {
            count += route is null ? 0 : 1;
        }

        var table = new KvmIrqRoute[count];
        _fixed.CopyTo(table, 0);
        int at = _fixed.Length;
        foreach (KvmIrqRoute? route in _msi.Values)
        {
            if (route is { } msi)
            {
                table[at++] = msi;
            }
        }

        return table;
    }
}
