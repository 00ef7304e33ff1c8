using System;
using System.Runtime.InteropServices;
using Tmds.Linux;

namespace Virtio.Core.Interop;

/// <summary>Owns a Linux file descriptor (an epoll instance, for example) and closes it once.</summary>
internal sealed class SafeFdHandle : SafeHandle
{
    public SafeFdHandle()
        : base(invalidHandleValue: new IntPtr(-1), ownsHandle: true)
    {
    }

    public SafeFdHandle(int fd)
        : this()
    {
        SetHandle(new IntPtr(fd));
    }

    /// <summary>fd 0 is a valid descriptor: only negative values are invalid.</summary>
    public override bool IsInvalid => handle.ToInt64() < 0;

    protected override bool ReleaseHandle() => LibC.close((int)handle) == 0;
}
