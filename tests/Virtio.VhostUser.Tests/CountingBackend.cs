using System.Threading;
using Virtio.Blk.Backends;

namespace Virtio.VhostUser.Tests;

/// <summary>Counts writes on their way to the real backend.</summary>
internal sealed class CountingBackend(IBlockBackend inner) : IBlockBackend
{
    private int _writes;

    public int Writes => Volatile.Read(ref _writes);

    public ulong Capacity => inner.Capacity;

    public bool IsReadOnly => inner.IsReadOnly;

    public BlockBackendCapabilities Capabilities => inner.Capabilities;

    public void Submit(BlockIo io)
    {
        if (io.Operation == BlockOperation.Write)
        {
            Interlocked.Increment(ref _writes);
        }

        inner.Submit(io);
    }
}
