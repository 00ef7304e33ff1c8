using System.Runtime.InteropServices;

namespace Virtio.Core.Interop;

/// <summary>The calls Tmds.LibC does not expose for eventfds a peer shares: a read that cannot block whatever the descriptor's flags.</summary>
internal static partial class EventFdInterop
{
    /// <summary>preadv2 flag: fail with EAGAIN instead of blocking, for this call only (Linux 4.14).</summary>
    public const int RWF_NOWAIT = 0x8;

    [LibraryImport("libc", EntryPoint = "preadv2", SetLastError = true)]
    public static unsafe partial nint PReadV2(int fd, IoVec* iov, int iovcnt, long offset, int flags);
}
