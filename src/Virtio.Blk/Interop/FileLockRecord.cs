using System.Runtime.InteropServices;

namespace Virtio.Blk.Interop;

/// <summary>struct flock of fcntl(2) on 64-bit Linux (x86-64 and arm64 alike): the byte range and type of a record lock.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct FileLockRecord
{
    /// <summary>F_RDLCK, F_WRLCK or F_UNLCK.</summary>
    public short Type;

    /// <summary>SEEK_SET: <see cref="Start"/> is from the file's start.</summary>
    public short Whence;

    /// <summary>The first byte.</summary>
    public long Start;

    /// <summary>Bytes locked; 0 is up to the end of the file, however it grows.</summary>
    public long Length;

    /// <summary>0 on F_OFD_SETLK; F_OFD_GETLK reports -1 for an open-file-description lock.</summary>
    public int ProcessId;
}
