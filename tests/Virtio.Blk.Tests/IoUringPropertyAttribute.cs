using Virtio.Blk.Backends;

namespace Virtio.Blk.Tests;

/// <summary>A <see cref="BlkPropertyAttribute"/> that is skipped, with the reason, where io_uring is not allowed.</summary>
#pragma warning disable xUnit3003 // FsCheck's PropertyAttribute has no source-information constructor to forward to.
public sealed class IoUringPropertyAttribute : BlkPropertyAttribute
#pragma warning restore xUnit3003
{
    public IoUringPropertyAttribute()
    {
        if (!IoUringBlockBackend.IsSupported(out string? reason))
        {
            Skip = reason;
        }
    }
}
