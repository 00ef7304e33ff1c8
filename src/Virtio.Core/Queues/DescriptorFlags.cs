using System;
using System.Diagnostics.CodeAnalysis;

namespace Virtio.Core.Queues;

/// <summary>The flags of a split-virtqueue descriptor (virtio 1.2 §2.7.5).</summary>
[Flags]
[SuppressMessage("Naming", "CA1711", Justification = "The virtio specification calls these the descriptor's flags.")]
public enum DescriptorFlags : ushort
{
    /// <summary>No flag: a device-readable buffer that ends its chain.</summary>
    None = 0,

    /// <summary>VIRTQ_DESC_F_NEXT: the chain continues at the descriptor named by <c>next</c>.</summary>
    Next = 1,

    /// <summary>VIRTQ_DESC_F_WRITE: the buffer is device-writable (otherwise device-readable).</summary>
    Write = 2,

    /// <summary>VIRTQ_DESC_F_INDIRECT: the buffer holds a table of descriptors (virtio 1.2 §2.7.5.3).</summary>
    Indirect = 4,
}
