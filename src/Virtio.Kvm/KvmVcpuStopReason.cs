namespace Virtio.Kvm;

/// <summary>Why <see cref="KvmVcpu.Run"/> returned.</summary>
public enum KvmVcpuStopReason
{
    /// <summary>The guest executed HLT (KVM_EXIT_HLT; only without an in-kernel irqchip, which halts in the kernel).</summary>
    Halted,

    /// <summary>The guest shut down (KVM_EXIT_SHUTDOWN: a triple fault on x86).</summary>
    Shutdown,

    /// <summary><see cref="KvmVcpu.RequestPause"/> was called.</summary>
    Paused,

    /// <summary>The guest requested a system event (KVM_EXIT_SYSTEM_EVENT: reset, shutdown or crash through PSCI or similar).</summary>
    SystemEvent,
}
