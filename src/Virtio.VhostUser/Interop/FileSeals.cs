using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Virtio.VhostUser.Interop;

/// <summary>The seals of a received descriptor (fcntl F_GET_SEALS, memfd and other shmem files).</summary>
internal static class FileSeals
{
    /// <summary>
    /// Whether <paramref name="fd"/> is sealed against shrinking (F_SEAL_SHRINK): its size can then
    /// never drop below what fstat says now, so a mapping within that size cannot fault. False for
    /// a file without seals (a memfd created without them, a tmpfs or hugetlbfs file) and for one
    /// that has no seals at all (F_GET_SEALS fails: ext4, a pipe). <paramref name="seals"/> is the
    /// seal mask, or -errno when F_GET_SEALS failed.
    /// </summary>
    public static bool CannotShrink(SafeFileHandle fd, out int seals)
    {
        bool added = false;
        try
        {
            fd.DangerousAddRef(ref added);
            seals = LibC.fcntl((int)fd.DangerousGetHandle(), LibC.F_GET_SEALS, 0);
            if (seals < 0)
            {
                seals = -LibC.errno;
                return false;
            }

            return (seals & LibC.F_SEAL_SHRINK) != 0;
        }
        finally
        {
            if (added)
            {
                fd.DangerousRelease();
            }
        }
    }

    /// <summary>A reason for a refusal: which seals the fd has, or why it has none.</summary>
    public static string Describe(int seals) => seals < 0 ? $"F_GET_SEALS failed with errno {-seals}: not a memfd" : $"seals 0x{seals:x}";
}
