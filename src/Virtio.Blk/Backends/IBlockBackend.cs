namespace Virtio.Blk.Backends;

/// <summary>
/// Storage behind a <see cref="BlockDevice"/>. The device validates every request (sector range,
/// lengths, read-only) before it reaches the backend, hands over the guest buffers as
/// <see cref="BlockSegment"/>s (zero copy) and expects exactly one <see cref="BlockIo.Complete"/> per
/// <see cref="Submit"/>, from any thread, possibly before <see cref="Submit"/> returns.
/// </summary>
/// <remarks>
/// Embedders write their own (network storage, qcow2, ...). <see cref="Submit"/> is called from the
/// queue's processing thread (an I/O thread, or a vCPU thread on the synchronous path) and from
/// completion threads (a writethrough write is followed by a flush); it must not block for long.
/// An exception thrown by <see cref="Submit"/>, a short transfer and any OS error are reported to the
/// guest as VIRTIO_BLK_S_IOERR for that request only. A backend that may start a request's transfer
/// late (queues, retries, holds) checks <see cref="BlockIo.IsAbandoned"/> first: once a reset has given
/// up waiting, the guest may have reused the buffers.
/// </remarks>
public interface IBlockBackend
{
    /// <summary>
    /// The disk size in bytes (a multiple of 512; a partial last sector is not exposed). Read by the
    /// device when it is created and again by <see cref="BlockDevice.UpdateCapacity"/>.
    /// </summary>
    ulong Capacity { get; }

    /// <summary>True when writes, discards and write-zeroes must fail; the device then offers VIRTIO_BLK_F_RO.</summary>
    bool IsReadOnly { get; }

    /// <summary>The optional operations supported.</summary>
    BlockBackendCapabilities Capabilities { get; }

    /// <summary>Starts <paramref name="io"/>; completes it later (or now) with <see cref="BlockIo.Complete"/>.</summary>
    /// <param name="io">The request; owned by the device, valid until completed.</param>
    void Submit(BlockIo io);
}
