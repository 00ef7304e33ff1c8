using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Virtio.Kvm;

/// <summary>The x86-64 general registers of a vCPU: struct kvm_regs (144 bytes), field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
[SuppressMessage("Design", "CA1051:Do not declare visible instance fields", Justification = "Mirrors struct kvm_regs; fields let callers change one register in place.")]
public struct KvmRegisters
{
#pragma warning disable CS1591 // The register names are their documentation.
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;
#pragma warning restore CS1591
}
