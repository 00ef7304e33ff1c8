namespace Virtio.Bench;

/// <summary>The --rw choices: which blk request type, and where the next one goes.</summary>
internal enum IoPattern
{
    RandRead,
    RandWrite,
    Read,
    Write,
}
