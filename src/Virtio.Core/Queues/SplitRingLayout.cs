namespace Virtio.Core.Queues;

/// <summary>
/// Where the fields of a split virtqueue lie for one queue size (virtio 1.2 §2.7): the sizes and
/// alignments of the descriptor table, the available ring (driver area) and the used ring (device
/// area), and each field's byte offset from the start of its part. The one place these formulas live.
/// </summary>
/// <remarks>
/// A plain value: any thread may create and use one. The entry offsets take a free-running ring
/// index and reduce it modulo the queue size by masking, so they assume a power-of-two size
/// (which <see cref="SplitVirtqueue.TryActivate"/> checks); the sizes hold for any size.
/// </remarks>
/// <param name="queueSize">The queue size (QueueNum), from 1 to 32768.</param>
public readonly struct SplitRingLayout(ushort queueSize)
{
    /// <summary>Bytes per descriptor table entry (struct virtq_desc).</summary>
    public const int DescriptorSize = 16;

    /// <summary>Required alignment of the descriptor table (virtio 1.2 §2.7, table "Virtqueue Part Alignment").</summary>
    public const int DescriptorTableAlignment = 16;

    /// <summary>Required alignment of the available ring.</summary>
    public const int AvailRingAlignment = 2;

    /// <summary>Required alignment of the used ring.</summary>
    public const int UsedRingAlignment = 4;

    /// <summary>Offset of avail->flags.</summary>
    public const int AvailFlagsOffset = 0;

    /// <summary>Offset of avail->idx.</summary>
    public const int AvailIdxOffset = 2;

    /// <summary>Offset of used->flags.</summary>
    public const int UsedFlagsOffset = 0;

    /// <summary>Offset of used->idx.</summary>
    public const int UsedIdxOffset = 2;

    /// <summary>Bytes per used ring element (struct virtq_used_elem: id and len, 32 bits each).</summary>
    public const int UsedElementSize = 8;

    private const int RingHeaderSize = 4; // flags and idx, 16 bits each

    /// <summary>The queue size the offsets are for.</summary>
    public ushort QueueSize { get; } = queueSize;

    /// <summary>Bytes of the descriptor table: 16 × size.</summary>
    public int DescriptorTableSize => DescriptorSize * QueueSize;

    /// <summary>Bytes of the available ring including used_event: 6 + 2 × size.</summary>
    public int AvailRingSize => UsedEventOffset + sizeof(ushort);

    /// <summary>Bytes of the used ring including avail_event: 6 + 8 × size.</summary>
    public int UsedRingSize => AvailEventOffset + sizeof(ushort);

    /// <summary>Offset of used_event, after the last avail->ring entry (VIRTIO_F_EVENT_IDX).</summary>
    public int UsedEventOffset => RingHeaderSize + (sizeof(ushort) * QueueSize);

    /// <summary>Offset of avail_event, after the last used->ring element (VIRTIO_F_EVENT_IDX).</summary>
    public int AvailEventOffset => RingHeaderSize + (UsedElementSize * QueueSize);

    /// <summary>Offset of descriptor <paramref name="index"/> in the descriptor table (not reduced: the caller checks it is below the size).</summary>
    /// <param name="index">A descriptor index.</param>
    /// <returns>The byte offset.</returns>
    public static int DescriptorOffset(int index) => DescriptorSize * index;

    /// <summary>Offset of avail->ring[<paramref name="ringIndex"/> mod size].</summary>
    /// <param name="ringIndex">A free-running available-ring index.</param>
    /// <returns>The byte offset from the start of the available ring.</returns>
    public int AvailEntryOffset(ushort ringIndex) => RingHeaderSize + (sizeof(ushort) * (ringIndex & (QueueSize - 1)));

    /// <summary>Offset of used->ring[<paramref name="ringIndex"/> mod size].</summary>
    /// <param name="ringIndex">A free-running used-ring index.</param>
    /// <returns>The byte offset from the start of the used ring.</returns>
    public int UsedElementOffset(ushort ringIndex) => RingHeaderSize + (UsedElementSize * (ringIndex & (QueueSize - 1)));
}
