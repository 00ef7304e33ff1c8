using System.Runtime.InteropServices;

namespace Virtio.Kvm.Interop;

/// <summary>struct kvm_irqfd (32 bytes: fd, gsi, flags, resamplefd, pad[16]).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct KvmIrqFdRequest
{
    [FieldOffset(0)] public uint Fd;
    [FieldOffset(4)] public uint Gsi;
    [FieldOffset(8)] public uint Flags;
    [FieldOffset(12)] public uint ResampleFd;
}
