namespace Virtio.Kvm;

/// <summary>KVM capabilities (KVM_CAP_*) this binding asks about with KVM_CHECK_EXTENSION.</summary>
public enum KvmCapability
{
    /// <summary>KVM_CAP_IRQCHIP: an in-kernel interrupt controller (PIC, IOAPIC, LAPIC on x86).</summary>
    IrqChip = 0,

    /// <summary>KVM_CAP_USER_MEMORY: KVM_SET_USER_MEMORY_REGION.</summary>
    UserMemory = 3,

    /// <summary>KVM_CAP_NR_MEMSLOTS: the number of memory slots (the answer is the count).</summary>
    NrMemSlots = 10,

    /// <summary>KVM_CAP_IRQFD: KVM_IRQFD.</summary>
    IrqFd = 32,

    /// <summary>KVM_CAP_IOEVENTFD: KVM_IOEVENTFD.</summary>
    IoEventFd = 36,

    /// <summary>KVM_CAP_IRQFD_RESAMPLE: level-triggered irqfds with a resample fd.</summary>
    IrqFdResample = 82,

    /// <summary>KVM_CAP_IOEVENTFD_ANY_LENGTH: ioeventfds of any write width, and of length 0.</summary>
    IoEventFdAnyLength = 122,

    /// <summary>KVM_CAP_IMMEDIATE_EXIT: kvm_run.immediate_exit.</summary>
    ImmediateExit = 136,
}
