namespace Virtio.Vmm.Hosting;

/// <summary>How the VMM presents its virtio devices to the guest.</summary>
internal enum VmmTransport
{
    /// <summary>virtio-mmio windows at 0xD0000000 (virtio 1.2 §4.2), listed in the boot info.</summary>
    Mmio,

    /// <summary>virtio-pci functions on PCI bus 0 (virtio 1.2 §4.1), found by the guest itself.</summary>
    Pci,
}
