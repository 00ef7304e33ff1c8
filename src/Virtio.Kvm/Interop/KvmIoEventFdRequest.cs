using System.Runtime.InteropServices;

namespace Virtio.Kvm.Interop;

/// <summary>struct kvm_ioeventfd (64 bytes: datamatch, addr, len, fd, flags, pad[36]).</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct KvmIoEventFdRequest
{
    [FieldOffset(0)] public ulong DataMatch;
    [FieldOffset(8)] public ulong Address;
    [FieldOffset(16)] public uint Length;
    [FieldOffset(20)] public int Fd;
    [FieldOffset(24)] public uint Flags;
}
