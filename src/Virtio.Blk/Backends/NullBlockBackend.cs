namespace Virtio.Blk.Backends;

/// <summary>
/// A disk that stores nothing: every request completes at once with success and reads leave the
/// guest buffers untouched. For benchmarks of the device path without storage cost.
/// </summary>
public sealed class NullBlockBackend : IBlockBackend
{
    /// <summary>Creates the backend. Any thread.</summary>
    /// <param name="capacity">The size it reports, in bytes.</param>
    public NullBlockBackend(ulong capacity)
    {
        Capacity = capacity;
    }

    /// <inheritdoc />
    public ulong Capacity { get; }

    /// <inheritdoc />
    public bool IsReadOnly => false;

    /// <inheritdoc />
    public BlockBackendCapabilities Capabilities => BlockBackendCapabilities.Discard | BlockBackendCapabilities.WriteZeroes;

    /// <summary>Completes <paramref name="io"/> with success on the calling thread.</summary>
    /// <param name="io">The request.</param>
    public void Submit(BlockIo io)
    {
        System.ArgumentNullException.ThrowIfNull(io);
        io.Complete(BlockStatus.Ok);
    }
}
