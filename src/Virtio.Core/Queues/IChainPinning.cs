namespace Virtio.Core.Queues;

/// <summary>
/// Told by a <see cref="SplitVirtqueue"/> when the device takes a chain and when it is done with
/// the chain's buffers, whatever became of it: written to the used ring, returned to a broken or
/// stopped queue (nothing written), dropped as stale after a restart (see
/// <see cref="SplitVirtqueue.TryRestoreState"/>), or given up by the queue when its walk failed.
/// An embedder whose guest memory can be replaced while requests are in flight (vhost-user
/// SET_MEM_TABLE) pins the memory a chain was taken under from one call to the other; see
/// <see cref="SplitVirtqueue.Pinning"/>.
/// </summary>
/// <remarks>
/// Called on the thread that processes the queue or returns the chain (the device serializes
/// them per queue), synchronously, inside <see cref="SplitVirtqueue.TryPopChain"/>,
/// <see cref="SplitVirtqueue.AddUsed"/> and a failing <see cref="DescriptorChain.TryMoveNext"/>:
/// an implementation must be quick, allocate nothing and not throw. Every head reported by
/// <see cref="ChainTaken"/> is reported once by <see cref="ChainReleased"/>, unless the queue is
/// <see cref="SplitVirtqueue.Reset"/> first (a device reset forgets its in-flight chains: a
/// pinning implementation keeps such a pin, leaking it rather than freeing memory under a
/// request that may still run).
/// </remarks>
public interface IChainPinning
{
    /// <summary>The device took the chain at <paramref name="head"/>; nothing has read its buffers yet.</summary>
    /// <param name="head">The chain's head index, below the queue size.</param>
    void ChainTaken(ushort head);

    /// <summary>
    /// The device is done with the chain at <paramref name="head"/>: its last write to the chain's
    /// buffers happened before the call (the device returns a chain only after writing it).
    /// </summary>
    /// <param name="head">The chain's head index.</param>
    void ChainReleased(ushort head);
}
