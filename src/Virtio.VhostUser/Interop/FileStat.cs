using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Virtio.VhostUser.Interop;

/// <summary>fstat of a received descriptor.</summary>
internal static class FileStat
{
    /// <summary>The file's size in bytes, or -1 when fstat fails.</summary>
    public static unsafe long Size(SafeFileHandle fd)
    {
        stat st;
        // SAFETY: st is a local the kernel fills; the SafeFileHandle keeps the fd open.
        return LibC.fstat((int)fd.DangerousGetHandle(), &st) == 0 ? (long)st.st_size : -1;
    }
}
