using System.IO;
using Microsoft.Win32.SafeHandles;

namespace Virtio.VhostUser.Interop;

/// <summary>What kind of file a received descriptor is, from /proc/self/fd.</summary>
internal static class FdKind
{
    /// <summary>Whether <paramref name="fd"/> is an eventfd (the link reads <c>anon_inode:[eventfd]</c>).</summary>
    public static bool IsEventFd(SafeFileHandle fd) => LinkTarget(fd) == "anon_inode:[eventfd]";

    /// <summary>Whether <paramref name="fd"/> is a socket (the link reads <c>socket:[inode]</c>).</summary>
    public static bool IsSocket(SafeFileHandle fd) => LinkTarget(fd)?.StartsWith("socket:[", System.StringComparison.Ordinal) == true;

    /// <summary>What /proc/self/fd says the descriptor is, or null.</summary>
    private static string? LinkTarget(SafeFileHandle fd)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            return new FileInfo($"/proc/self/fd/{(int)fd.DangerousGetHandle()}").LinkTarget;
        }
        catch (IOException)
        {
            return null;
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
