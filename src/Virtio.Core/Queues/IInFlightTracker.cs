using System;

namespace Virtio.Core.Queues;

/// <summary>
/// Told by a <see cref="SplitVirtqueue"/> when a chain changes hands: taken from the available
/// ring (or from its resubmission list), written to the used ring, and made visible to the driver.
/// An embedder that must survive its own restart (vhost-user INFLIGHT_SHMFD) records these in
/// memory that outlives it; see <see cref="SplitVirtqueue.InFlightTracker"/>.
/// </summary>
/// <remarks>
/// Called on the thread that processes the queue, synchronously, inside <see cref="SplitVirtqueue.TryPopChain"/>,
/// <see cref="SplitVirtqueue.AddUsed"/> and <see cref="SplitVirtqueue.PublishUsed"/>: an implementation
/// must be quick, allocate nothing and not throw.
/// </remarks>
public interface IInFlightTracker
{
    /// <summary>
    /// The device took the chain at <paramref name="head"/>: it passed validation and will be handed
    /// to the device when this returns, so nothing has acted on it yet.
    /// </summary>
    /// <param name="head">The chain's head index, below the queue size.</param>
    void ChainTaken(ushort head);

    /// <summary>
    /// A packed ring's chain was taken (instead of <see cref="ChainTaken"/>): its buffer ID and its ring
    /// descriptors in the packed layout, in two parts when the chain crosses the ring's end. Used
    /// descriptors soon overwrite those ring slots, so a tracker that must resubmit the chain after a
    /// restart keeps a copy (<see cref="SplitVirtqueue.TryResubmitPacked"/> takes it back). Also called
    /// for each resubmitted chain, with its copy. By default it calls <see cref="ChainTaken"/>.
    /// </summary>
    /// <param name="bufferId">The chain's buffer ID, below the queue size.</param>
    /// <param name="descriptors">The chain's first ring descriptors (valid only during the call).</param>
    /// <param name="wrapped">The rest, from the ring's start; empty when the chain does not cross its end.</param>
    void PackedChainTaken(ushort bufferId, ReadOnlySpan<byte> descriptors, ReadOnlySpan<byte> wrapped) => ChainTaken(bufferId);

    /// <summary>
    /// The chain at <paramref name="head"/> was written to the used ring. The driver cannot see it
    /// until the next <see cref="UsedPublished"/>; calls arrive in used-ring order, so the heads since
    /// the last <see cref="UsedPublished"/> are the batch that call publishes.
    /// </summary>
    /// <param name="head">The chain's head index.</param>
    void ChainUsed(ushort head);

    /// <summary>
    /// used->idx now reads <paramref name="usedIdx"/>: every chain reported by <see cref="ChainUsed"/>
    /// so far is visible to the driver. Called after the release store of the index.
    /// </summary>
    /// <param name="usedIdx">The used index the driver can now read.</param>
    void UsedPublished(ushort usedIdx);
}
