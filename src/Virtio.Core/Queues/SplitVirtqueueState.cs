using Virtio.Core.Memory;

namespace Virtio.Core.Queues;

/// <summary>
/// Everything needed to save a split virtqueue and restore it, or hand it to another back end
/// (vhost-user's GET_VRING_BASE / SET_VRING_BASE carry <see cref="NextAvail"/>).
/// </summary>
/// <param name="Size">The queue size the driver chose.</param>
/// <param name="DescriptorTable">The descriptor table's guest address.</param>
/// <param name="AvailRing">The available ring's (driver area's) guest address.</param>
/// <param name="UsedRing">The used ring's (device area's) guest address.</param>
/// <param name="NextAvail">The next available-ring index the device will read.</param>
/// <param name="NextUsed">The next used-ring index the device will write.</param>
/// <param name="Ready">Whether the queue was live.</param>
/// <param name="EventIdx">Whether VIRTIO_F_EVENT_IDX was negotiated.</param>
/// <param name="IndirectDescriptors">Whether VIRTIO_F_INDIRECT_DESC was negotiated.</param>
public readonly record struct SplitVirtqueueState(
    ushort Size,
    GuestAddress DescriptorTable,
    GuestAddress AvailRing,
    GuestAddress UsedRing,
    ushort NextAvail,
    ushort NextUsed,
    bool Ready,
    bool EventIdx,
    bool IndirectDescriptors)
{
    /// <summary>
    /// Whether the queue is a packed virtqueue (VIRTIO_F_RING_PACKED): then <see cref="NextAvail"/>
    /// and <see cref="NextUsed"/> are ring positions below <see cref="Size"/>, each with its wrap counter.
    /// </summary>
    public bool PackedRing { get; init; }

    /// <summary>A packed ring's available wrap counter (ignored for a split ring).</summary>
    public bool AvailWrapCounter { get; init; }

    /// <summary>A packed ring's used wrap counter (ignored for a split ring).</summary>
    public bool UsedWrapCounter { get; init; }
}
