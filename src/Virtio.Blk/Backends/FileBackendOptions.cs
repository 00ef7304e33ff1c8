namespace Virtio.Blk.Backends;

/// <summary>How <see cref="BlockBackends.OpenFile"/> opens and serves an image. Set by the embedder before the call.</summary>
public sealed class FileBackendOptions
{
    /// <summary>The engine to try first; default <see cref="BlockEngine.IoUring"/>.</summary>
    public BlockEngine Engine { get; init; } = BlockEngine.IoUring;

    /// <summary>Open read-only; the device then offers VIRTIO_BLK_F_RO.</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Open with O_DIRECT (bypass the host page cache; guest buffers must be aligned to the logical block size).</summary>
    public bool Direct { get; init; }

    /// <summary>
    /// Lock the image while it is open (default true): an exclusive lock for a read-write open, a
    /// shared one for a read-only open, so a second writer, or a reader beside a writer, fails to open
    /// it with <see cref="ImageLockedException"/>. False takes no lock and checks none: for an image shared
    /// on purpose, as by the two back ends of a live migration, whose front ends never write at once.
    /// </summary>
    public bool LockImage { get; init; } = true;

    /// <summary>The most requests at the file at once: per ring for io_uring (up to 4096), worker threads for the thread engine. Default 256.</summary>
    public int QueueDepth { get; init; } = 256;
}
