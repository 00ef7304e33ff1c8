using System;
using Virtio.Core.Memory;

namespace Virtio.Core.Queues;

/// <summary>
/// One buffer of a descriptor chain, already checked to lie inside guest memory: its guest
/// address, its length, whether the device may write it, and a span over it.
/// </summary>
public readonly ref struct DescriptorBuffer
{
    internal DescriptorBuffer(GuestAddress address, Span<byte> span, bool isWriteOnly)
    {
        Address = address;
        Span = span;
        IsWriteOnly = isWriteOnly;
    }

    /// <summary>The buffer's guest physical address.</summary>
    public GuestAddress Address { get; }

    /// <summary>The buffer's bytes in guest memory. The device reads these, or writes them when <see cref="IsWriteOnly"/>.</summary>
    public Span<byte> Span { get; }

    /// <summary>The buffer's length in bytes.</summary>
    public int Length => Span.Length;

    /// <summary>True for a device-writable buffer (VIRTQ_DESC_F_WRITE), false for a device-readable one.</summary>
    public bool IsWriteOnly { get; }

    /// <summary>The buffer as an <see cref="IoSegment"/> (host address and length), for zero-copy I/O.</summary>
    public IoSegment Segment => IoSegment.FromSpan(Span);
}
