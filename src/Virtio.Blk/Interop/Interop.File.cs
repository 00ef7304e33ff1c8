using System.IO;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Core.Interop;

namespace Virtio.Blk.Interop;

/// <summary>File calls Tmds.LibC does not expose (vectored positional I/O, fallocate, open with O_DIRECT); errno via Marshal.GetLastPInvokeError, errno values from Tmds.LibC.</summary>
internal static partial class FileInterop
{
    public const int O_RDONLY = 0;
    public const int O_RDWR = 2;
    public const int O_DIRECT = 0x4000;     // x86-64 and arm64 generic value
    public const int O_CLOEXEC = 0x80000;
    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    public const int FALLOC_FL_ZERO_RANGE = 0x10;
    public const int IovMax = 1024;
    public const int F_OFD_GETLK = 36;
    public const int F_OFD_SETLK = 37;
    public const short F_RDLCK = 0;
    public const short F_WRLCK = 1;
    public const short F_UNLCK = 2;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "preadv", SetLastError = true)]
    public static unsafe partial nint PReadV(int fd, IoVec* iov, int iovcnt, long offset);

    [LibraryImport("libc", EntryPoint = "pwritev", SetLastError = true)]
    public static unsafe partial nint PWriteV(int fd, IoVec* iov, int iovcnt, long offset);

    [LibraryImport("libc", EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint PWrite(int fd, nint buffer, nuint count, long offset);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int FcntlLock(int fd, int command, ref FileLockRecord record);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    public static partial int FAllocate(int fd, int mode, long offset, long length);

    /// <summary>Opens a disk image or block device; its capacity is its size rounded down to 512 bytes.</summary>
    /// <exception cref="IOException">open or lseek failed; the message holds the errno.</exception>
    public static SafeFileHandle OpenImage(string path, bool readOnly, bool direct, out ulong capacity)
    {
        int flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
        int fd = Open(path, flags, 0);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"open({path}) failed with errno {errno}.", errno);
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            capacity = QueryCapacity(handle, path);
        }
        catch
        {
            handle.Dispose();
            throw;
        }

        return handle;
    }

    /// <summary>The size of the open image in bytes, rounded down to 512 (lseek to the end: files and block devices alike; the engines use positioned I/O).</summary>
    /// <exception cref="IOException">lseek failed; the message holds the errno.</exception>
    public static ulong QueryCapacity(SafeFileHandle handle, string what)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            long size = LibC.lseek((int)handle.DangerousGetHandle(), 0, LibC.SEEK_END);
            if (size < 0)
            {
                int errno = LibC.errno;
                throw new IOException($"lseek({what}) failed with errno {errno}.", errno);
            }

            return (ulong)size / 512 * 512;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
