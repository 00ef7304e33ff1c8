namespace Virtio.Kvm;

/// <summary>Which x86 address space an access or a doorbell lives in.</summary>
public enum KvmIoSpace
{
    /// <summary>Memory-mapped I/O: guest physical addresses outside memory slots.</summary>
    Mmio,

    /// <summary>Port I/O (IN/OUT instructions), 16-bit port numbers.</summary>
    Pio,
}
