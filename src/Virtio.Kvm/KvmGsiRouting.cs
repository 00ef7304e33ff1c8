using System;
using System.Collections.Generic;
using System.Threading;

namespace Virtio.Kvm;

/// <summary>
/// The one owner of a VM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so every
/// user that needs entries in it (the embedder's irqchip routes for virtio-mmio and INTx, each PCI
/// function's MSI-X vectors) goes through one instance: it keeps fixed routes given once, hands out
/// GSIs for MSIs above the IOAPIC's 24 pins and every fixed GSI, and installs the whole table again
/// each time an MSI route is added, changed or removed.
/// </summary>
/// <remarks>
/// Thread-safe: vCPU threads reprogram vectors at the same time; each change and its install happen
/// under one lock, so installs are ordered. Nothing else may call <see cref="KvmVm.SetGsiRouting"/> on
/// the VM once this exists, or this table and the kernel's drift apart. A failed install leaves the
/// table as it was before the change (the kernel keeps the last table it took).
/// </remarks>
public sealed class KvmGsiRouting
{
    private readonly KvmVm _vm;
    private readonly GsiTable _table;
    private readonly Lock _gate = new();
    private KvmIrqRoute[] _installed;

    /// <summary>Installs <paramref name="fixedRoutes"/> as the VM's routing table (KVM_SET_GSI_ROUTING).</summary>
    /// <param name="vm">The VM; it needs an in-kernel irqchip.</param>
    /// <param name="fixedRoutes">The routes that stay for the VM's life: <see cref="KvmIrqRoute.StandardIrqChipRoutes"/>, or a filtered copy of it.</param>
    /// <exception cref="ArgumentException">More fixed routes than KVM takes, or a GSI past its last.</exception>
    /// <exception cref="KvmException">The install failed (EINVAL without an irqchip).</exception>
    public KvmGsiRouting(KvmVm vm, IEnumerable<KvmIrqRoute> fixedRoutes)
    {
        ArgumentNullException.ThrowIfNull(vm);
        ArgumentNullException.ThrowIfNull(fixedRoutes);
        _vm = vm;
        _table = new GsiTable(fixedRoutes);
        _installed = _table.Build();
        vm.SetGsiRouting(_installed);
        Installs = 1;
    }

    /// <summary>The lowest GSI <see cref="AllocateMsiGsi"/> hands out: 24, or one past the highest fixed GSI.</summary>
    public uint FirstMsiGsi => _table.FirstMsiGsi;

    /// <summary>The fixed routes, as given.</summary>
    public IReadOnlyList<KvmIrqRoute> FixedRoutes => _table.FixedRoutes;

    /// <summary>How many times a table was installed (the constructor's counts); for tests and docs.</summary>
    internal int Installs { get; private set; }

    /// <summary>The VM whose table this is.</summary>
    internal KvmVm Vm => _vm;

    /// <summary>A copy of the table installed now: the fixed routes, then the MSI routes by GSI. Any thread may call it.</summary>
    /// <returns>The entries.</returns>
    public IReadOnlyList<KvmIrqRoute> GetRoutes()
    {
        lock (_gate)
        {
            return (KvmIrqRoute[])_installed.Clone();
        }
    }

    /// <summary>
    /// Hands out a GSI for an MSI, with no route yet (an irqfd on it raises nothing until
    /// <see cref="SetMsiRoute"/>). Room for its route in KVM's table is kept from now on.
    /// </summary>
    /// <returns>The lowest free GSI at or above <see cref="FirstMsiGsi"/>.</returns>
    /// <exception cref="InvalidOperationException">KVM's table (<see cref="KvmVm.MaxGsiRoutes"/> entries, GSIs below it) has no room left.</exception>
    public uint AllocateMsiGsi()
    {
        lock (_gate)
        {
            if (!_table.TryAllocate(out uint gsi))
            {
                throw new InvalidOperationException($"No GSI left for an MSI: {_table.FixedRoutes.Count} fixed routes and {_table.AllocatedCount} MSI GSIs fill KVM's table of {KvmVm.MaxGsiRoutes}.");
            }

            return gsi;
        }
    }

    /// <summary>Routes <paramref name="gsi"/> to the MSI <paramref name="address"/>/<paramref name="data"/> and installs the table, unless the route is already that.</summary>
    /// <param name="gsi">A GSI from <see cref="AllocateMsiGsi"/>.</param>
    /// <param name="address">The MSI address (checked by the caller; the kernel refuses little).</param>
    /// <param name="data">The MSI data.</param>
    /// <exception cref="InvalidOperationException"><paramref name="gsi"/> was not handed out here.</exception>
    /// <exception cref="KvmException">The install failed; the route is what it was before.</exception>
    public void SetMsiRoute(uint gsi, ulong address, uint data)
    {
        KvmIrqRoute route = KvmIrqRoute.ToMsi(gsi, address, data);
        lock (_gate)
        {
            KvmIrqRoute? before = RouteOrThrow(gsi);
            if (before == route)
            {
                return;
            }

            _table.SetRoute(gsi, route);
            InstallOrRestore(gsi, before);
        }
    }

    /// <summary>Removes <paramref name="gsi"/>'s MSI route (an irqfd on it then raises nothing) and installs the table; the GSI stays handed out.</summary>
    /// <param name="gsi">A GSI from <see cref="AllocateMsiGsi"/>.</param>
    /// <exception cref="InvalidOperationException"><paramref name="gsi"/> was not handed out here.</exception>
    /// <exception cref="KvmException">The install failed; the route is what it was before.</exception>
    public void RemoveMsiRoute(uint gsi)
    {
        lock (_gate)
        {
            KvmIrqRoute? before = RouteOrThrow(gsi);
            if (before is null)
            {
                return;
            }

            _table.SetRoute(gsi, null);
            InstallOrRestore(gsi, before);
        }
    }

    /// <summary>
    /// Gives GSIs back: their routes are removed and the table installed once (if any had a route).
    /// Deassign their irqfds first. GSIs not handed out here are ignored.
    /// </summary>
    /// <param name="gsis">GSIs from <see cref="AllocateMsiGsi"/>.</param>
    /// <exception cref="KvmException">The install failed; the GSIs are free here anyway, and the kernel keeps their old routes until the next install.</exception>
    public void ReleaseMsiGsis(ReadOnlySpan<uint> gsis)
    {
        lock (_gate)
        {
            bool changed = false;
            foreach (uint gsi in gsis)
            {
                changed |= _table.Release(gsi);
            }

            if (changed)
            {
                Install();
            }
        }
    }

    private KvmIrqRoute? RouteOrThrow(uint gsi) =>
        _table.IsAllocated(gsi) ? _table.RouteOf(gsi) : throw new InvalidOperationException($"GSI {gsi} was not allocated for an MSI here.");

    private void InstallOrRestore(uint gsi, KvmIrqRoute? before)
    {
        try
        {
            Install();
        }
        catch
        {
            _table.SetRoute(gsi, before);
            throw;
        }
    }

    private void Install()
    {
        KvmIrqRoute[] table = _table.Build();
        _vm.SetGsiRouting(table);
        _installed = table;
        Installs++;
    }
}
