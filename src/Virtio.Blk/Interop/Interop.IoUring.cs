using System.Runtime.InteropServices;

namespace Virtio.Blk.Interop;

/// <summary>
/// The io_uring system calls and structures (linux/io_uring.h) the io_uring backend uses. The
/// system call numbers are the same on every architecture (they postdate the unified table).
/// Errors come back as negative errno values, as the raw system calls return them.
/// </summary>
internal static partial class IoUringInterop
{
    public const long SysSetup = 425;
    public const long SysEnter = 426;
    public const long SysRegister = 427;
    public const uint RegisterEventFd = 4;

    public const uint FeatSingleMmap = 1;
    public const uint EnterGetEvents = 1;
    public const long OffSqRing = 0;
    public const long OffCqRing = 0x8000000;
    public const long OffSqes = 0x10000000;

    public const byte OpNop = 0;
    public const byte OpReadV = 1;
    public const byte OpWriteV = 2;
    public const byte OpFsync = 3;
    public const byte OpFallocate = 17;
    public const byte OpWrite = 23;
    public const uint FsyncDataSync = 1;

    public const int SqeSize = 64;
    public const int CqeSize = 16;

    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_SHARED = 1;
    public const int MAP_POPULATE = 0x8000;

    /// <summary>struct io_sqring_offsets (40 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SqRingOffsets
    {
        public uint Head;
        public uint Tail;
        public uint RingMask;
        public uint RingEntries;
        public uint Flags;
        public uint Dropped;
        public uint Array;
        public uint Reserved1;
        public ulong UserAddress;
    }

    /// <summary>struct io_cqring_offsets (40 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CqRingOffsets
    {
        public uint Head;
        public uint Tail;
        public uint RingMask;
        public uint RingEntries;
        public uint Overflow;
        public uint Cqes;
        public uint Flags;
        public uint Reserved1;
        public ulong UserAddress;
    }

    /// <summary>struct io_uring_params (120 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Params
    {
        public uint SqEntries;
        public uint CqEntries;
        public uint Flags;
        public uint SqThreadCpu;
        public uint SqThreadIdle;
        public uint Features;
        public uint WqFd;
        public uint Reserved0;
        public uint Reserved1;
        public uint Reserved2;
        public SqRingOffsets SqOff;
        public CqRingOffsets CqOff;
    }

    /// <summary>struct io_uring_sqe, the fields used here (64 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = SqeSize)]
    public struct Sqe
    {
        [FieldOffset(0)] public byte Opcode;
        [FieldOffset(1)] public byte Flags;
        [FieldOffset(2)] public ushort IoPriority;
        [FieldOffset(4)] public int Fd;
        [FieldOffset(8)] public ulong Offset;
        [FieldOffset(16)] public ulong Address;
        [FieldOffset(24)] public uint Length;
        [FieldOffset(28)] public uint OpFlags;
        [FieldOffset(32)] public ulong UserData;
        [FieldOffset(40)] public ulong Reserved40;
        [FieldOffset(48)] public ulong Reserved48;
        [FieldOffset(56)] public ulong Reserved56;
    }

    /// <summary>struct io_uring_cqe (16 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Cqe
    {
        public ulong UserData;
        public int Result;
        public uint Flags;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint address, nuint length);

    /// <summary>io_uring_setup: the ring fd, or -errno.</summary>
    public static unsafe int Setup(uint entries, Params* parameters)
    {
        long result = Syscall(SysSetup, entries, (long)parameters, 0, 0, 0, 0);
        return result < 0 ? -Marshal.GetLastPInvokeError() : (int)result;
    }

    /// <summary>io_uring_register(IORING_REGISTER_EVENTFD): the kernel signals <paramref name="eventFd"/> on each completion. 0 or -errno.</summary>
    public static unsafe int RegisterCompletionEventFd(int fd, int eventFd)
    {
        // SAFETY: the kernel reads one int from `&eventFd`, a local that outlives the call.
        long result = Syscall(SysRegister, fd, RegisterEventFd, (long)&eventFd, 1, 0, 0);
        return result < 0 ? -Marshal.GetLastPInvokeError() : 0;
    }

    /// <summary>io_uring_enter without a signal mask: how many entries were submitted, or -errno.</summary>
    public static int Enter(int fd, uint toSubmit, uint minComplete, uint flags)
    {
        long result = Syscall(SysEnter, fd, toSubmit, minComplete, flags, 0, 0);
        return result < 0 ? -Marshal.GetLastPInvokeError() : (int)result;
    }
}
