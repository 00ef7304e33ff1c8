using System;
using System.IO;
using System.Runtime.InteropServices;

namespace Virtio.Kvm;

/// <summary>A KVM ioctl (or a system call the binding needs) failed; <see cref="Errno"/> says why.</summary>
public class KvmException : IOException
{
    /// <summary>Creates an exception with a message only (errno 0).</summary>
    public KvmException()
    {
    }

    /// <summary>Creates an exception with a message only (errno 0).</summary>
    /// <param name="message">What failed.</param>
    public KvmException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and an inner exception (errno 0).</summary>
    /// <param name="message">What failed.</param>
    /// <param name="innerException">The cause.</param>
    public KvmException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception for <paramref name="operation"/> failing with <paramref name="errno"/>.</summary>
    /// <param name="operation">The ioctl or call that failed, e.g. "KVM_CREATE_VM".</param>
    /// <param name="errno">The errno it returned.</param>
    public KvmException(string operation, int errno)
        : base($"{operation} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}).", errno)
    {
        Operation = operation;
        Errno = errno;
    }

    /// <summary>The errno of the failed call; 0 when the failure was not a system call's.</summary>
    public int Errno { get; }

    /// <summary>The failed call's name, or null.</summary>
    public string? Operation { get; }
}
