using System.Collections.Generic;

namespace Virtio.Vmm.Hosting;

/// <summary>What one run of the VMM boots.</summary>
/// <param name="GuestPath">The guest ELF.</param>
/// <param name="MemoryMiB">Guest RAM in MiB.</param>
/// <param name="Disks">Block devices, in order (they come first on the bus).</param>
/// <param name="Nets">Network devices, in order (after the disks).</param>
/// <param name="Workload">The guest's workload list, comma-separated.</param>
/// <param name="GuestArguments">Extra key=value words for the guest's command line.</param>
/// <param name="IoEventFd">Put QueueNotify on ioeventfds (false: every notify exits to the VMM).</param>
/// <param name="IrqBatching">Coalesce a burst of completions into one interrupt (false: one per completion).</param>
/// <param name="IrqLevel">Level-triggered device lines: irqfds with a resample fd, raised again while a device's InterruptStatus is set.</param>
/// <param name="PackedRing">Disks offer VIRTIO_F_RING_PACKED (network devices do not: not validated for their receive chains).</param>
/// <param name="Transport">virtio-mmio or virtio-pci.</param>
/// <param name="MsiX">With virtio-pci: each function has an MSI-X capability (false: INTx only).</param>
internal sealed record VmmOptions(
    string GuestPath,
    int MemoryMiB,
    IReadOnlyList<DiskSpec> Disks,
    IReadOnlyList<NetSpec> Nets,
    string Workload,
    string GuestArguments,
    bool IoEventFd,
    bool IrqBatching,
    bool IrqLevel,
    bool PackedRing,
    VmmTransport Transport = VmmTransport.Mmio,
    bool MsiX = true);
