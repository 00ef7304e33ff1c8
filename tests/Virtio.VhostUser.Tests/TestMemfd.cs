using System.IO;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Core.Memory;

namespace Virtio.VhostUser.Tests;

/// <summary>memfds a front end might send: sealed as QEMU does, or not at all, of any (sparse) size.</summary>
internal static unsafe class TestMemfd
{
    public const int QemuSeals = 0x2 | 0x4 | 0x1; // F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL

    /// <summary>A memfd of <paramref name="size"/> bytes (sparse) with <paramref name="seals"/> added (0: none).</summary>
    public static SafeFileHandle Create(ulong size, int seals, string name = "vhost-test-memfd")
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        int fd;
        fixed (byte* n = bytes)
        {
            fd = LibC.memfd_create(n, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
        }

        if (fd < 0)
        {
            throw new IOException($"memfd_create: errno {LibC.errno}");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (LibC.ftruncate(fd, (off_t)(long)size) != 0 || (seals != 0 && LibC.fcntl(fd, LibC.F_ADD_SEALS, seals) != 0))
        {
            int errno = LibC.errno;
            handle.Dispose();
            throw new IOException($"ftruncate / F_ADD_SEALS: errno {errno}");
        }

        return handle;
    }

    /// <summary>Guest memory over an unsealed memfd, as QEMU's memory-backend-memfd with seal=off shares it.</summary>
    public static GuestMemory CreateUnsealedMemory()
    {
        using SafeFileHandle fd = Create(TestFrontEnd.MemorySize, seals: 0, "vhost-test-unsealed");
        int dup = LibC.fcntl((int)fd.DangerousGetHandle(), LibC.F_DUPFD_CLOEXEC, 0);
        return new GuestMemory([GuestMemoryRegion.MapFileDescriptor(new GuestAddress(0), TestFrontEnd.MemorySize, dup, 0)]);
    }

    /// <summary>fcntl(F_GET_SEALS), or -1.</summary>
    public static int Seals(int fd) => LibC.fcntl(fd, LibC.F_GET_SEALS, 0);

    /// <summary>ftruncate(fd, 0): 0, or the errno.</summary>
    public static int TryTruncate(int fd) => LibC.ftruncate(fd, 0) == 0 ? 0 : LibC.errno;
}
