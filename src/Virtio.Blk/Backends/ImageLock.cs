using System;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Blk.Interop;

namespace Virtio.Blk.Backends;

/// <summary>
/// The advisory lock a file disk holds on its image while the image is open: an open file
/// description lock (fcntl F_OFD_SETLK) over the whole file, exclusive (F_WRLCK) for a read-write
/// open and shared (F_RDLCK) for a read-only one. Readers share; a writer excludes every other open
/// that locks, in this process or another. It goes with the descriptor: closing the image releases
/// it, and so does the death of the process. An open without the lock neither takes one nor checks.
/// </summary>
/// <remarks>
/// QEMU locks bytes 100 and up of the same file with the same kind of lock (its file.locking
/// option), so a read-write image held by QEMU or qemu-storage-daemon fails here too, and the other
/// way round. A file system without these locks (EINVAL, ENOLCK, EOPNOTSUPP) opens unlocked with a warning.
/// </remarks>
internal static class ImageLock
{
    /// <summary>Takes the lock on <paramref name="handle"/>, the open image <paramref name="path"/>.</summary>
    /// <exception cref="ImageLockedException">Another open holds a conflicting lock.</exception>
    /// <exception cref="IOException">fcntl failed otherwise; the message holds the errno.</exception>
    public static void Acquire(SafeFileHandle handle, string path, bool readOnly, ILogger logger)
    {
        int fd = (int)handle.DangerousGetHandle();
        var record = new FileLockRecord { Type = readOnly ? FileInterop.F_RDLCK : FileInterop.F_WRLCK, Whence = (short)LibC.SEEK_SET };
        if (FileInterop.FcntlLock(fd, FileInterop.F_OFD_SETLK, ref record) == 0)
        {
            return;
        }

        int errno = Marshal.GetLastPInvokeError();
        if (errno == LibC.EAGAIN || errno == LibC.EACCES)
        {
            (int Pid, string? Name)? holder = FindHolder(fd);
            throw new ImageLockedException(path, readOnly, holder?.Pid, holder?.Name);
        }

        if (errno == LibC.EINVAL || errno == LibC.ENOLCK || errno == LibC.EOPNOTSUPP)
        {
            Log.ImageLockUnsupported(logger, path, errno);
            return;
        }

        throw new IOException($"fcntl(F_OFD_SETLK) on {path} failed with errno {errno}.", errno);
    }

    /// <summary>
    /// The process holding a lock on the file open as <paramref name="fd"/>: the first whose
    /// /proc/PID/fdinfo lists a lock on the same device and inode. Null when none can be seen
    /// (another user's processes without root, another PID namespace, another host).
    /// </summary>
    internal static (int Pid, string? Name)? FindHolder(int fd)
    {
        if (Identity(fd) is not string key)
        {
            return null;
        }

        foreach (string process in SafeEnumerate("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(process), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
            {
                continue;
            }

            foreach (string info in SafeEnumerate(Path.Combine(process, "fdinfo")))
            {
                if (HoldsLock(info, key))
                {
                    return (pid, ReadQuietly(Path.Combine(process, "comm"))?.Trim());
                }
            }
        }

        return null;
    }

    /// <summary>The file's "MAJOR:MINOR:INODE" as /proc/locks and fdinfo print a lock's file (major and minor in hex, two digits at least).</summary>
    private static unsafe string? Identity(int fd)
    {
        stat st;
        // SAFETY: st is a local the kernel fills; the caller's SafeFileHandle keeps fd open.
        if (LibC.fstat(fd, &st) != 0)
        {
            return null;
        }

        ulong dev = (ulong)st.st_dev;
        ulong major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xfffff000);
        ulong minor = (dev & 0xff) | ((dev >> 12) & 0xffffff00);
        return string.Create(CultureInfo.InvariantCulture, $"{major:x2}:{minor:x2}:{(ulong)st.st_ino}");
    }

    /// <summary>Whether the fdinfo file lists a lock ("lock:\t1: OFDLCK ADVISORY WRITE -1 08:01:1234 0 EOF") on the file <paramref name="key"/>.</summary>
    private static bool HoldsLock(string fdinfo, string key)
    {
        string? text = ReadQuietly(fdinfo);
        if (text is null)
        {
            return false;
        }

        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith("lock:", StringComparison.Ordinal)
                && Array.IndexOf(line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries), key) >= 0)
            {
                return true;
            }
        }

        return false;
    }

    private static string[] SafeEnumerate(string dir)
    {
        try
        {
            return Directory.GetFileSystemEntries(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Array.Empty<string>();
        }
    }

    private static string? ReadQuietly(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // the process or descriptor went away, or is not ours to read
        }
    }
}
