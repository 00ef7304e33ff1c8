namespace Virtio.Kvm;

/// <summary>The x86 in-kernel interrupt controllers a GSI can be routed to (KVM_IRQCHIP_*).</summary>
public enum KvmIrqChip : uint
{
    /// <summary>The master 8259 PIC, pins 0-7.</summary>
    PicMaster = 0,

    /// <summary>The slave 8259 PIC, pins 0-7 (IRQ 8-15).</summary>
    PicSlave = 1,

    /// <summary>The IOAPIC, pins 0-23.</summary>
    IoApic = 2,
}
