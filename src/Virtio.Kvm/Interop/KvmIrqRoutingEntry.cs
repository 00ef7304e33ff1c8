using System.Runtime.InteropServices;

namespace Virtio.Kvm.Interop;

/// <summary>
/// struct kvm_irq_routing_entry (48 bytes): gsi, type, flags, pad, then a 32-byte union whose first
/// words are (irqchip, pin) for KVM_IRQ_ROUTING_IRQCHIP or (address_lo, address_hi, data, pad) for
/// KVM_IRQ_ROUTING_MSI. Size and union offset checked against this machine's headers (docs/kvm.md).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct KvmIrqRoutingEntry
{
    [FieldOffset(0)]
    public uint Gsi;

    [FieldOffset(4)]
    public uint Type;

    [FieldOffset(8)]
    public uint Flags;

    [FieldOffset(16)]
    public uint Word0;

    [FieldOffset(20)]
    public uint Word1;

    [FieldOffset(24)]
    public uint Word2;
}
