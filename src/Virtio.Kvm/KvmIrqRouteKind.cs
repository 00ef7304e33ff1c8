namespace Virtio.Kvm;

/// <summary>What a GSI routing entry delivers to (KVM_IRQ_ROUTING_*).</summary>
public enum KvmIrqRouteKind : uint
{
    /// <summary>A pin of an in-kernel interrupt controller.</summary>
    IrqChip = 1,

    /// <summary>A message-signalled interrupt (an address/data pair, as a PCI device's MSI would write).</summary>
    Msi = 2,
}
