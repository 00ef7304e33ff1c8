namespace Virtio.Blk.Backends;

/// <summary>How a file backend talks to the kernel (<see cref="FileBackendOptions.Engine"/>).</summary>
public enum BlockEngine
{
    /// <summary><see cref="IoUringBlockBackend"/>, driven from the device's I/O threads; <see cref="BlockBackends.OpenFile"/> falls back to <see cref="Threads"/> where io_uring cannot be set up.</summary>
    IoUring,

    /// <summary><see cref="FileBlockBackend"/>: blocking preadv/pwritev on worker threads.</summary>
    Threads,
}
