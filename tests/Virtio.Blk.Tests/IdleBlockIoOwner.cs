using Virtio.Blk.Backends;

namespace Virtio.Blk.Tests;

/// <summary>An owner for a <see cref="BlockIo"/> built outside a device (parser and image tests): completions go nowhere.</summary>
internal sealed class IdleBlockIoOwner : IBlockIoOwner
{
    public void OnCompleted(BlockIo io)
    {
    }
}
