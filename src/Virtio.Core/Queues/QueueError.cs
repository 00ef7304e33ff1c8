namespace Virtio.Core.Queues;

/// <summary>
/// Why a virtqueue was found malformed. Any of these stops the queue and puts the device in
/// DEVICE_NEEDS_RESET: the driver broke a rule of virtio 1.2 §2.7.
/// </summary>
public enum QueueError : byte
{
    /// <summary>No error.</summary>
    None,

    /// <summary>The queue's size is zero, above the device's maximum, or not a power of two.</summary>
    InvalidQueueSize,

    /// <summary>A ring or the descriptor table is misaligned or not inside guest memory.</summary>
    InvalidRingAddress,

    /// <summary>The available ring's idx moved more than the queue size past the last index the device saw.</summary>
    AvailIndexTooFar,

    /// <summary>A head index on the available ring is not below the queue size.</summary>
    InvalidHeadIndex,

    /// <summary>A head index on the available ring names a chain the device has not yet returned.</summary>
    HeadAlreadyInFlight,

    /// <summary>A descriptor's <c>next</c> is not below the queue size (or the indirect table's length).</summary>
    InvalidNextIndex,

    /// <summary>The chain has more descriptors than its table holds: it loops.</summary>
    ChainTooLong,

    /// <summary>The buffers of the chain add up to more than 2^32 bytes (virtio 1.2 §2.7.5).</summary>
    ChainTooLarge,

    /// <summary>A descriptor uses VIRTQ_DESC_F_INDIRECT but VIRTIO_F_INDIRECT_DESC was not negotiated.</summary>
    IndirectNotNegotiated,

    /// <summary>An indirect descriptor's table has length zero.</summary>
    IndirectTableEmpty,

    /// <summary>An indirect descriptor's table length is not a multiple of 16 bytes.</summary>
    IndirectTableMisaligned,

    /// <summary>An indirect table has more entries than the queue size.</summary>
    IndirectTableTooLarge,

    /// <summary>A descriptor inside an indirect table is itself indirect (virtio 1.2 §2.7.5.3.1).</summary>
    NestedIndirect,

    /// <summary>A descriptor sets both VIRTQ_DESC_F_INDIRECT and VIRTQ_DESC_F_NEXT.</summary>
    IndirectWithNext,

    /// <summary>A buffer's address plus its length overflows 64 bits.</summary>
    AddressOverflow,

    /// <summary>A buffer or an indirect table is not inside guest memory (or crosses a region edge).</summary>
    AddressOutOfRange,

    /// <summary>A device-readable descriptor follows a device-writable one (virtio 1.2 §2.7.4.2).</summary>
    ReadableAfterWritable,

    /// <summary>
    /// More chains were handed back for resubmission than the queue has heads (the list comes from
    /// memory the other side controls: see <see cref="SplitVirtqueue.TryResubmit"/>).
    /// </summary>
    InvalidResubmission,

    /// <summary>
    /// The device threw while it processed the queue: a bug in device or backend code, contained to
    /// this queue (see <see cref="Devices.VirtioDevice.NotifyQueue"/>) instead of the thread or the process.
    /// </summary>
    DeviceFailed,

    /// <summary>
    /// A packed ring: a descriptor chained to an available one is not marked available for its lap
    /// (its AVAIL and USED flags do not match the wrap counter of its position, virtio 1.2 §2.8.1).
    /// </summary>
    DescriptorNotAvailable,
}
