namespace Virtio.Blk.Backends;

/// <summary>Who gets a <see cref="BlockIo"/> back when the backend completes it (a device queue).</summary>
internal interface IBlockIoOwner
{
    /// <summary>Called on the completing thread, once per submission.</summary>
    void OnCompleted(BlockIo io);
}
