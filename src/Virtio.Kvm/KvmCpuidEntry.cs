using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Virtio.Kvm;

/// <summary>One CPUID leaf as KVM reports and takes it: struct kvm_cpuid_entry2 (40 bytes), field for field.</summary>
/// <remarks>
/// <see cref="KvmSystem.GetSupportedCpuid"/> returns what this host's KVM can offer; a VMM usually hands
/// those entries, perhaps changed, to <see cref="KvmVcpu.SetCpuid"/> before the first run.
/// </remarks>
[StructLayout(LayoutKind.Explicit, Size = 40)]
[SuppressMessage("Design", "CA1051:Do not declare visible instance fields", Justification = "Mirrors struct kvm_cpuid_entry2; fields let callers change one register in place.")]
public struct KvmCpuidEntry
{
    /// <summary>The leaf (EAX on input to CPUID).</summary>
    [FieldOffset(0)]
    public uint Function;

    /// <summary>The sub-leaf (ECX on input), meaningful when <see cref="Flags"/> has bit 0 (KVM_CPUID_FLAG_SIGNIFCANT_INDEX).</summary>
    [FieldOffset(4)]
    public uint Index;

    /// <summary>KVM_CPUID_FLAG_* bits.</summary>
    [FieldOffset(8)]
    public uint Flags;

    /// <summary>EAX on output.</summary>
    [FieldOffset(12)]
    public uint Eax;

    /// <summary>EBX on output.</summary>
    [FieldOffset(16)]
    public uint Ebx;

    /// <summary>ECX on output.</summary>
    [FieldOffset(20)]
    public uint Ecx;

    /// <summary>EDX on output.</summary>
    [FieldOffset(24)]
    public uint Edx;
}
