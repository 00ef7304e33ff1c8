using System;
using System.Collections.Generic;
using System.Threading;
using Virtio.Core.Memory;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm;

/// <summary>
/// A KVM virtual machine: its memory slots, the in-kernel interrupt controller, vCPUs, and the
/// ioeventfds and irqfds the notification bindings register on it.
/// </summary>
/// <remarks>
/// Thread-safe. Dispose it after its vCPUs, its notification bindings and irqfds; the guest memory
/// it maps must outlive it (the kernel keeps using the host addresses until the VM is gone).
/// </remarks>
public sealed class KvmVm : IDisposable
{
    /// <summary>The most GSI routing entries x86 KVM accepts in one table (KVM_MAX_IRQ_ROUTES).</summary>
    public const int MaxGsiRoutes = 4096;

    private readonly KvmFdHandle _fd;
    private readonly int _vcpuMmapSize;
    private readonly Lock _gate = new();
    private readonly HashSet<uint> _usedSlots = new();
    private bool _hasIrqChip;

    internal KvmVm(KvmFdHandle fd, int vcpuMmapSize)
    {
        _fd = fd;
        _vcpuMmapSize = vcpuMmapSize;
    }

    /// <summary>Whether <see cref="CreateIrqChip"/> has succeeded.</summary>
    public bool HasIrqChip
    {
        get { lock (_gate) { return _hasIrqChip; } }
    }

    internal KvmFdHandle Handle => _fd;

    /// <summary>Asks KVM_CHECK_EXTENSION about <paramref name="capability"/> on this VM (the answer can differ from the system's).</summary>
    /// <param name="capability">The capability.</param>
    /// <returns>0 when absent; otherwise a capability-specific positive value.</returns>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public int CheckExtension(KvmCapability capability)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        return KvmCall.IoctlOrThrow(_fd, KvmIoctl.CheckExtension, (nint)capability, "KVM_CHECK_EXTENSION");
    }

    /// <summary>
    /// Maps every region of <paramref name="memory"/> into the guest, one memory slot per region,
    /// using slots <paramref name="firstSlot"/>, <paramref name="firstSlot"/> + 1, and so on.
    /// </summary>
    /// <param name="memory">The guest memory; it must outlive this VM.</param>
    /// <param name="firstSlot">The first slot number to use.</param>
    /// <returns>The number of slots used (the region count).</returns>
    /// <exception cref="InvalidOperationException">A slot is already in use here.</exception>
    /// <exception cref="KvmException">KVM_SET_USER_MEMORY_REGION failed (EEXIST for overlapping guest ranges, EINVAL for bad alignment or a slot past KVM_CAP_NR_MEMSLOTS).</exception>
    public int MapMemory(GuestMemory memory, uint firstSlot = 0)
    {
        ArgumentNullException.ThrowIfNull(memory);
        IReadOnlyList<GuestMemoryRegion> regions = memory.Regions;
        for (int i = 0; i < regions.Count; i++)
        {
            MapRegion(checked(firstSlot + (uint)i), regions[i]);
        }

        return regions.Count;
    }

    /// <summary>Maps one region into the guest as memory slot <paramref name="slot"/>.</summary>
    /// <param name="slot">The slot number, below KVM_CAP_NR_MEMSLOTS.</param>
    /// <param name="region">The region; it must outlive this VM.</param>
    /// <param name="readOnly">Map it read-only (KVM_MEM_READONLY): guest writes exit as MMIO.</param>
    /// <exception cref="InvalidOperationException">The slot is already in use here.</exception>
    /// <exception cref="KvmException">KVM_SET_USER_MEMORY_REGION failed.</exception>
    public unsafe void MapRegion(uint slot, GuestMemoryRegion region, bool readOnly = false)
    {
        ArgumentNullException.ThrowIfNull(region);
        KvmCall.ThrowIfClosed(_fd, this);
        lock (_gate)
        {
            if (_usedSlots.Contains(slot))
            {
                throw new InvalidOperationException($"Memory slot {slot} is already in use.");
            }

            var request = new KvmUserspaceMemoryRegion
            {
                Slot = slot,
                Flags = readOnly ? 2u /* KVM_MEM_READONLY */ : 0u,
                GuestPhysAddr = region.Start.Value,
                MemorySize = region.Size,
                UserspaceAddr = (ulong)region.HostAddress,
            };
            // SAFETY: `request` is a local of the 32 bytes the request encodes.
            KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetUserMemoryRegion, &request, "KVM_SET_USER_MEMORY_REGION");
            _usedSlots.Add(slot);
        }
    }

    /// <summary>
    /// Creates the in-kernel interrupt controller (KVM_CREATE_IRQCHIP: PIC, IOAPIC and local APICs on
    /// x86). Call it before creating vCPUs; irqfds and <see cref="SetIrqLine"/> need it.
    /// </summary>
    /// <exception cref="KvmException">The ioctl failed (EEXIST when called twice).</exception>
    public void CreateIrqChip()
    {
        KvmCall.ThrowIfClosed(_fd, this);
        lock (_gate)
        {
            KvmCall.IoctlOrThrow(_fd, KvmIoctl.CreateIrqChip, 0, "KVM_CREATE_IRQCHIP");
            _hasIrqChip = true;
        }
    }

    /// <summary>Reads one in-kernel interrupt controller's state (KVM_GET_IRQCHIP).</summary>
    /// <param name="state">struct kvm_irqchip: <see cref="KvmIoctl.IrqChipStateSize"/> bytes, the chip id (0, 1 PIC; 2 IOAPIC) in the first 4; the kernel fills the rest.</param>
    /// <exception cref="KvmException">The ioctl failed (ENXIO without an irqchip).</exception>
    internal void GetIrqChip(Span<byte> state)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.GetIrqChip, state, KvmIoctl.IrqChipStateSize, "KVM_GET_IRQCHIP");
    }

    /// <summary>Writes one in-kernel interrupt controller's state (KVM_SET_IRQCHIP), best read with <see cref="GetIrqChip"/> and changed.</summary>
    /// <param name="state">struct kvm_irqchip: <see cref="KvmIoctl.IrqChipStateSize"/> bytes; the kernel only reads them.</param>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    internal void SetIrqChip(Span<byte> state)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetIrqChip, state, KvmIoctl.IrqChipStateSize, "KVM_SET_IRQCHIP");
    }

    /// <summary>Sets the three-page TSS area Intel VMX needs for real mode (KVM_SET_TSS_ADDR); harmless elsewhere.</summary>
    /// <param name="address">A guest physical address outside RAM and MMIO, e.g. 0xfffbd000.</param>
    /// <exception cref="KvmException">The ioctl failed.</exception>
    public void SetTssAddress(uint address)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetTssAddr, (nint)address, "KVM_SET_TSS_ADDR");
    }

    /// <summary>Drives interrupt line <paramref name="irq"/> of the in-kernel irqchip (KVM_IRQ_LINE).</summary>
    /// <param name="irq">The GSI.</param>
    /// <param name="high">The level: true asserts it.</param>
    /// <exception cref="KvmException">The ioctl failed (ENXIO without an irqchip).</exception>
    public unsafe void SetIrqLine(uint irq, bool high)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        var level = new KvmIrqLevel { Irq = irq, Level = high ? 1u : 0u };
        // SAFETY: `level` is a local of the 8 bytes the request encodes.
        KvmCall.IoctlOrThrow(_fd, KvmIoctl.IrqLine, &level, "KVM_IRQ_LINE");
    }

    /// <summary>
    /// Replaces the VM's whole GSI routing table (KVM_SET_GSI_ROUTING) with <paramref name="routes"/>:
    /// from then on an irqfd or <see cref="SetIrqLine"/> on a GSI raises what its entries say (a GSI may
    /// have several irqchip entries; one MSI entry). Routes KVM_CREATE_IRQCHIP made and that are not in
    /// the list are gone: start from <see cref="KvmIrqRoute.StandardIrqChipRoutes"/> to keep them.
    /// </summary>
    /// <param name="routes">The new table, at most <see cref="MaxGsiRoutes"/> entries.</param>
    /// <exception cref="ArgumentException">More than <see cref="MaxGsiRoutes"/> entries.</exception>
    /// <exception cref="KvmException">The ioctl failed (EINVAL without an in-kernel irqchip or for an entry the kernel refuses).</exception>
    public unsafe void SetGsiRouting(IReadOnlyList<KvmIrqRoute> routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        if (routes.Count > MaxGsiRoutes)
        {
            throw new ArgumentException($"{routes.Count} routes; KVM takes at most {MaxGsiRoutes}", nameof(routes));
        }

        KvmCall.ThrowIfClosed(_fd, this);
        int size = 8 + (routes.Count * sizeof(KvmIrqRoutingEntry));
        byte* table = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed((nuint)size);
        try
        {
            // struct kvm_irq_routing: nr, flags, then the entries.
            *(uint*)table = (uint)routes.Count;
            var entries = (KvmIrqRoutingEntry*)(table + 8);
            for (int i = 0; i < routes.Count; i++)
            {
                KvmIrqRoute route = routes[i];
                entries[i].Gsi = route.Gsi;
                entries[i].Type = (uint)route.Kind;
                if (route.Kind == KvmIrqRouteKind.Msi)
                {
                    entries[i].Word0 = (uint)route.MsiAddress;
                    entries[i].Word1 = (uint)(route.MsiAddress >> 32);
                    entries[i].Word2 = route.MsiData;
                }
                else
                {
                    entries[i].Word0 = (uint)route.Chip;
                    entries[i].Word1 = route.Pin;
                }
            }

            // SAFETY: `table` holds the 8-byte header and routes.Count 48-byte entries the header counts,
            // all initialized; the kernel copies them during the call.
            KvmCall.IoctlOrThrow(_fd, KvmIoctl.SetGsiRouting, table, "KVM_SET_GSI_ROUTING");
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.Free(table);
        }
    }

    /// <summary>Creates vCPU <paramref name="id"/> and maps its kvm_run area.</summary>
    /// <param name="id">The vCPU id (the APIC id on x86).</param>
    /// <returns>The vCPU; run it on one thread at a time.</returns>
    /// <exception cref="KvmException">KVM_CREATE_VCPU or the mmap failed.</exception>
    public KvmVcpu CreateVcpu(int id)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        KvmCall.ThrowIfClosed(_fd, this);
        int fd = KvmCall.IoctlOrThrow(_fd, KvmIoctl.CreateVcpu, id, "KVM_CREATE_VCPU");
        return new KvmVcpu(new KvmFdHandle(fd), id, _vcpuMmapSize);
    }

    /// <summary>KVM_IOEVENTFD; returns 0 or the errno (EINTR retried).</summary>
    internal unsafe int IoEventFd(ref KvmIoEventFdRequest request)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        int rc;
        fixed (KvmIoEventFdRequest* p = &request)
        {
            do
            {
                // SAFETY: `p` points to the caller's 64-byte request, pinned for the call.
                rc = KvmCall.Ioctl(_fd, KvmIoctl.IoEventFd, p);
            }
            while (rc == -Tmds.Linux.LibC.EINTR);
        }

        return rc < 0 ? -rc : 0;
    }

    /// <summary>KVM_IRQFD; returns 0 or the errno (EINTR retried).</summary>
    internal unsafe int IrqFd(ref KvmIrqFdRequest request)
    {
        KvmCall.ThrowIfClosed(_fd, this);
        int rc;
        fixed (KvmIrqFdRequest* p = &request)
        {
            do
            {
                // SAFETY: `p` points to the caller's 32-byte request, pinned for the call.
                rc = KvmCall.Ioctl(_fd, KvmIoctl.IrqFd, p);
            }
            while (rc == -Tmds.Linux.LibC.EINTR);
        }

        return rc < 0 ? -rc : 0;
    }

    /// <summary>Closes the VM fd. The kernel frees the VM once its vCPU fds are closed too.</summary>
    public void Dispose() => _fd.Dispose();
}
