using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Virtio.Core.Interop;

/// <summary>Owns a Linux file descriptor and closes it exactly once.</summary>
internal sealed class SafeFdHandle : SafeHandle
{
    public SafeFdHandle(int fd)
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
        SetHandle(fd);
    }

    /// <summary>fd 0 is a valid descriptor; only negative values are invalid.</summary>
    public override bool IsInvalid => handle < 0;

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
