using System;

namespace Virtio.Kvm.Bus;

/// <summary>A device window on a <see cref="KvmBus"/>: receives the guest's MMIO or PIO accesses that exit to user space.</summary>
/// <remarks>Called on the vCPU thread that took the exit, possibly from several vCPU threads at once.</remarks>
public interface IKvmIoHandler
{
    /// <summary>The guest reads <paramref name="data"/>.Length bytes at <paramref name="offset"/> into the window.</summary>
    /// <param name="offset">Offset from the window's start.</param>
    /// <param name="data">Fill it with the value read (little endian).</param>
    void Read(ulong offset, Span<byte> data);

    /// <summary>The guest writes <paramref name="data"/> at <paramref name="offset"/> into the window.</summary>
    /// <param name="offset">Offset from the window's start.</param>
    /// <param name="data">The bytes written (little endian).</param>
    void Write(ulong offset, ReadOnlySpan<byte> data);
}
