using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Virtio.Kvm;

/// <summary>A GDT or IDT pointer: struct kvm_dtable (16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
[SuppressMessage("Design", "CA1051:Do not declare visible instance fields", Justification = "Mirrors struct kvm_dtable.")]
public struct KvmDescriptorTable
{
    /// <summary>The table's linear base address.</summary>
    [FieldOffset(0)]
    public ulong Base;

    /// <summary>The table's limit (size in bytes minus one).</summary>
    [FieldOffset(8)]
    public ushort Limit;
}
