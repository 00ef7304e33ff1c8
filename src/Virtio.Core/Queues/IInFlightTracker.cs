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
