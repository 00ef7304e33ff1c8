using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Virtio.Kvm;

/// <summary>
/// The x86 segment, descriptor-table and control registers of a vCPU: struct kvm_sregs (312 bytes),
/// field for field. Read them with <see cref="KvmVcpu.GetSpecialRegisters"/>, change what you need and
/// write them back, so the pending-interrupt bitmap and APIC base stay as KVM had them.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
[SuppressMessage("Design", "CA1051:Do not declare visible instance fields", Justification = "Mirrors struct kvm_sregs; fields let callers change one segment in place.")]
public struct KvmSpecialRegisters
{
#pragma warning disable CS1591 // The register names are their documentation.
    public KvmSegment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
    public KvmDescriptorTable Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8, Efer, ApicBase;
#pragma warning restore CS1591

    // interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64]: kept as read so a write-back preserves it.
    // SAFETY: a fixed buffer only for layout (the kernel reads and writes it); no code indexes it.
    private unsafe fixed ulong _interruptBitmap[4];
}
