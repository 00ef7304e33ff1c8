using System.Runtime.InteropServices;

namespace Virtio.Kvm.Interop;

/// <summary>struct kvm_irq_level (8 bytes: irq, level).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct KvmIrqLevel
{
    public uint Irq;
    public uint Level;
}
