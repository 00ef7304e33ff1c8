using System;

namespace Virtio.Kvm;

/// <summary>
/// The vCPU cannot continue: KVM reported an internal error (for example an instruction its emulator
/// does not know, suberror 1), a failed VM entry, or an exit this binding does not handle.
/// </summary>
public sealed class KvmVcpuFailureException : KvmException
{
    /// <summary>Creates an exception with a message only.</summary>
    public KvmVcpuFailureException()
    {
    }

    /// <summary>Creates an exception with a message only.</summary>
    /// <param name="message">What failed.</param>
    public KvmVcpuFailureException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and an inner exception.</summary>
    /// <param name="message">What failed.</param>
    /// <param name="innerException">The cause.</param>
    public KvmVcpuFailureException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception for an exit.</summary>
    /// <param name="message">The full message, including the guest's RIP.</param>
    /// <param name="exitReason">kvm_run.exit_reason.</param>
    /// <param name="suberror">kvm_run.internal.suberror, or the hardware entry failure reason; 0 otherwise.</param>
    /// <param name="rip">The guest's RIP when the exit happened, or null when KVM_GET_REGS failed too.</param>
    public KvmVcpuFailureException(string message, uint exitReason, ulong suberror, ulong? rip)
        : base(message)
    {
        ExitReason = exitReason;
        Suberror = suberror;
        Rip = rip;
    }

    /// <summary>kvm_run.exit_reason (17 = KVM_EXIT_INTERNAL_ERROR, 9 = KVM_EXIT_FAIL_ENTRY).</summary>
    public uint ExitReason { get; }

    /// <summary>The internal-error suberror (1 = emulation failure), or the hardware entry failure reason.</summary>
    public ulong Suberror { get; }

    /// <summary>The guest's RIP at the failing exit, when it could be read.</summary>
    public ulong? Rip { get; }
}
