using System.IO;
using Microsoft.Win32.SafeHandles;

namespace Virtio.VhostUser.Interop;

/// <summary>What kind of file a received descriptor is, from /proc/self/fd.</summary>
internal static class FdKind
{
    /// <summary>Whether <paramref name="fd"/> is an eventfd (the link reads <c>anon_inode:[eventfd]</c>).</summary>
    public static bool IsEventFd(SafeFileHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return new FileInfo($"/proc/self/fd/{(int)fd.DangerousGetHandle()}").LinkTarget == "anon_inode:[eventfd]";
        }
        catch (IOException)
        {
            return false;
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }
}
