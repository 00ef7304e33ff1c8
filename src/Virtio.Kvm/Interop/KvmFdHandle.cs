using System;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Virtio.Kvm.Interop;

/// <summary>
/// Owns one KVM file descriptor: the /dev/kvm system fd, a VM fd or a vCPU fd. Closing a VM fd
/// while vCPU fds are open is legal (the kernel keeps the VM alive), so each owner closes its own.
/// </summary>
internal sealed class KvmFdHandle : SafeHandle
{
    public KvmFdHandle()
        : base(invalidHandleValue: new IntPtr(-1), ownsHandle: true)
    {
    }

    public KvmFdHandle(int fd)
        : this()
    {
        SetHandle(new IntPtr(fd));
    }

    /// <summary>fd 0 is a valid descriptor: only negative values are invalid.</summary>
    public override bool IsInvalid => handle.ToInt64() < 0;

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
