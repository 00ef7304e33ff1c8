namespace Virtio.Vmm.Boot;

/// <summary>One row of the boot info's device table.</summary>
/// <param name="MmioBase">The virtio-mmio window's guest physical address.</param>
/// <param name="Gsi">The device's interrupt line.</param>
/// <param name="DeviceId">The virtio device ID (2 = block, 1 = network).</param>
internal readonly record struct BootDevice(ulong MmioBase, uint Gsi, uint DeviceId);
