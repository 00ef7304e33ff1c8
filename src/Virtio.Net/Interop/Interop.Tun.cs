using System.Runtime.InteropServices;
using Virtio.Core.Interop;

namespace Virtio.Net.Interop;

/// <summary>The libc calls the TAP backend needs that Tmds.LibC lacks (readv, writev) or types loosely (ioctl).</summary>
internal static partial class Interop
{
    public const int ORdWr = 0x2;
    public const int ONonBlock = 0x800;
    public const int OCloExec = 0x80000;

    public const int EAgain = 11;
    public const int EIntr = 4;
    public const int EPerm = 1;
    public const int EAccess = 13;

    // linux/if_tun.h
    public const nuint TunSetIff = 0x400454ca;
    public const nuint TunSetOffload = 0x400454d0;
    public const nuint TunSetVnetHdrSz = 0x400454d8;
    public const short IffTap = 0x0002;
    public const short IffMultiQueue = 0x0100;
    public const short IffNoPi = 0x1000;
    public const short IffVnetHdr = 0x4000;

    /// <summary>sizeof(struct ifreq): char ifr_name[16], then a union whose first member is short ifr_flags.</summary>
    public const int IfReqSize = 40;
    public const int IfNameSize = 16;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    // SAFETY (callers): argument is what the request says, by value or pointing at memory of the size the
    // request reads or writes, live and unmoved for the call.
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static unsafe partial int Ioctl(int fd, nuint request, void* argument);

    // SAFETY (callers): vectors points at count IoVecs, each at memory of its length that the kernel may write,
    // live and unmoved (pinned, on the stack, or unmanaged) for the call.
    [LibraryImport("libc", EntryPoint = "readv", SetLastError = true)]
    public static unsafe partial nint ReadV(int fd, IoVec* vectors, int count);

    // SAFETY (callers): vectors points at count IoVecs, each at readable memory of its length, live and unmoved
    // (pinned, on the stack, or unmanaged) for the call.
    [LibraryImport("libc", EntryPoint = "writev", SetLastError = true)]
    public static unsafe partial nint WriteV(int fd, IoVec* vectors, int count);
}
