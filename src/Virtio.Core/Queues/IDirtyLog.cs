using Virtio.Core.Memory;

namespace Virtio.Core.Queues;

/// <summary>
/// Told by a <see cref="SplitVirtqueue"/> of every guest-memory write the device makes through the
/// queue, so an embedder can log the pages for a live migration (vhost-user VHOST_F_LOG_ALL): the
/// device-writable buffers of each chain walked, each chain returned, and each ring write (used
/// elements and index, used flags and avail_event, packed used descriptors and their flags, the
/// device event suppression structure). See <see cref="SplitVirtqueue.DirtyLog"/>.
/// </summary>
/// <remarks>
/// <para>Called on the thread that walks, returns or publishes (the device serializes them per
/// queue), synchronously: an implementation must be quick, allocate nothing and not throw.</para>
/// <para>Order: the device writes a chain's buffers and then returns it; <see cref="ChainUsed"/> comes
/// after the used element (or packed used descriptor) is written and before the index (or flags) that
/// hands it to the driver, and every ring write is reported after it is stored. A page reported is
/// therefore reported after its last write of the round, and before the driver can see it.</para>
/// </remarks>
public interface IDirtyLog
{
    /// <summary>
    /// The walk of the chain at <paramref name="head"/> met a device-writable buffer. A chain may be
    /// walked more than once (<see cref="DescriptorChain.Reset"/>): <paramref name="first"/> says this is
    /// the walk's first writable buffer, and the buffers reported before for the head are forgotten.
    /// </summary>
    /// <param name="head">The chain's head index (a packed ring's buffer ID), below the queue's maximum size.</param>
    /// <param name="first">Whether no writable buffer came before in this walk.</param>
    /// <param name="address">The buffer's guest-physical address (checked to lie in guest memory).</param>
    /// <param name="length">The buffer's length.</param>
    void BufferWritable(ushort head, bool first, GuestAddress address, uint length);

    /// <summary>
    /// The chain at <paramref name="head"/> is returned: the device's writes into its buffers are done,
    /// and its used element is written but not yet published.
    /// </summary>
    /// <param name="head">The chain's head index (a packed ring's buffer ID).</param>
    void ChainUsed(ushort head);

    /// <summary>The device stored <paramref name="length"/> bytes at <paramref name="address"/> in the descriptor ring (a packed ring's used descriptor or its flags).</summary>
    /// <param name="address">The guest-physical address written.</param>
    /// <param name="length">Bytes written.</param>
    void RingWritten(GuestAddress address, int length);

    /// <summary>
    /// The device stored <paramref name="length"/> bytes at <paramref name="offset"/> from the start of
    /// the device area (<see cref="SplitVirtqueue.UsedRing"/>: a split ring's used ring, a packed ring's
    /// device event suppression structure).
    /// </summary>
    /// <param name="offset">Bytes from the device area's start.</param>
    /// <param name="length">Bytes written.</param>
    void UsedAreaWritten(int offset, int length);
}
