using System;
using System.Runtime.InteropServices;
using System.Text;
using Tmds.Linux;
using Virtio.Core.Interop;

namespace Virtio.Core.Memory;

/// <summary>
/// One contiguous range of guest physical memory backed by a host mapping this object owns
/// (anonymous memory, a memfd it created, or a file descriptor handed over by a front-end).
/// </summary>
/// <remarks>
/// Create regions on any thread, give them to a <see cref="GuestMemory"/>, and dispose the
/// <see cref="GuestMemory"/> (which unmaps them) only after every device using it has stopped.
/// </remarks>
public sealed class GuestMemoryRegion : IDisposable
{
    private nint _host; // the mapping's first byte; 0 once unmapped
    private readonly SafeFdHandle? _fd;

    private GuestMemoryRegion(GuestAddress start, ulong size, nint host, SafeFdHandle? fd, ulong fileOffset)
    {
        Start = start;
        Size = size;
        _host = host;
        _fd = fd;
        FileOffset = fileOffset;
    }

    /// <summary>The first guest physical address of the region.</summary>
    public GuestAddress Start { get; }

    /// <summary>The region's length in bytes.</summary>
    public ulong Size { get; }

    /// <summary>The offset into <see cref="FileDescriptor"/> at which the region's memory begins.</summary>
    public ulong FileOffset { get; }

    /// <summary>
    /// The host virtual address of the region's first byte. For hypervisor bindings only (a KVM
    /// memory slot's userspace_addr); device code reaches memory through <see cref="IGuestMemory"/>.
    /// </summary>
    public nint HostAddress => _host;

    /// <summary>
    /// The file descriptor backing the region, or null for anonymous memory. Shared with other
    /// processes (vhost-user front-ends and back-ends) so they can map the same memory.
    /// </summary>
    public SafeHandle? FileDescriptor => _fd;

    /// <summary>Maps <paramref name="size"/> bytes of private anonymous memory at guest address <paramref name="start"/>.</summary>
    /// <param name="start">The first guest physical address.</param>
    /// <param name="size">Bytes, a multiple of the host page size.</param>
    /// <returns>The region; the caller owns it until handed to a <see cref="GuestMemory"/>.</returns>
    public static GuestMemoryRegion CreateAnonymous(GuestAddress start, ulong size)
    {
        ValidateGeometry(start, size);
        nint p = Map(size, LibC.MAP_PRIVATE | LibC.MAP_ANONYMOUS | LibC.MAP_NORESERVE, -1, 0);
        if (p == -1)
        {
            ThrowErrno("mmap", LibC.errno);
        }

        return new GuestMemoryRegion(start, size, p, null, 0);
    }

    /// <summary>
    /// Creates a memfd of <paramref name="size"/> bytes and maps it shared at guest address
    /// <paramref name="start"/>, so the same memory can be handed to another process. The memfd is
    /// sealed against shrinking, growing and further seals (F_SEAL_SHRINK | F_SEAL_GROW |
    /// F_SEAL_SEAL, what QEMU's memory-backend-memfd does by default): a process it is shared with
    /// may rely on its size (a vhost-user back end refuses memory that could be truncated under it).
    /// </summary>
    /// <param name="start">The first guest physical address.</param>
    /// <param name="size">Bytes, a multiple of the host page size.</param>
    /// <param name="name">The memfd's name, shown in /proc/PID/fd.</param>
    /// <returns>The region; it owns the memfd.</returns>
    public static GuestMemoryRegion CreateMemfd(GuestAddress start, ulong size, string name = "virtio-guest-ram")
    {
        ValidateGeometry(start, size);
        ArgumentNullException.ThrowIfNull(name);
        byte[] nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        int fd;
        unsafe
        {
            fixed (byte* n = nameBytes)
            {
                // SAFETY: `n` is a NUL-terminated buffer pinned for the duration of the call.
                fd = LibC.memfd_create(n, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
            }
        }

        if (fd < 0)
        {
            ThrowErrno("memfd_create", LibC.errno);
        }

        var handle = new SafeFdHandle(fd);
        if (LibC.ftruncate(fd, (off_t)(long)size) != 0)
        {
            int errno = LibC.errno;
            handle.Dispose();
            ThrowErrno("ftruncate", errno);
        }

        if (LibC.fcntl(fd, LibC.F_ADD_SEALS, LibC.F_SEAL_SHRINK | LibC.F_SEAL_GROW | LibC.F_SEAL_SEAL) != 0)
        {
            int errno = LibC.errno;
            handle.Dispose();
            ThrowErrno("fcntl(F_ADD_SEALS)", errno);
        }

        return MapShared(start, size, handle, 0);
    }

    /// <summary>
    /// Maps <paramref name="size"/> bytes of the file <paramref name="fd"/> (usually a memfd a
    /// vhost-user front-end sent) shared at guest address <paramref name="start"/>, taking
    /// ownership of the descriptor.
    /// </summary>
    /// <param name="start">The first guest physical address.</param>
    /// <param name="size">Bytes of the mapping.</param>
    /// <param name="fd">An open file descriptor; the region closes it on Dispose.</param>
    /// <param name="fileOffset">Where in the file the region's memory begins (page aligned).</param>
    /// <returns>The region.</returns>
    public static GuestMemoryRegion MapFileDescriptor(GuestAddress start, ulong size, int fd, ulong fileOffset)
    {
        ValidateGeometry(start, size);
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        return MapShared(start, size, new SafeFdHandle(fd), fileOffset);
    }

    private static GuestMemoryRegion MapShared(GuestAddress start, ulong size, SafeFdHandle handle, ulong fileOffset)
    {
        nint p = Map(size, LibC.MAP_SHARED, (int)handle.DangerousGetHandle(), fileOffset);
        if (p == -1)
        {
            int errno = LibC.errno;
            handle.Dispose();
            ThrowErrno("mmap", errno);
        }

        return new GuestMemoryRegion(start, size, p, handle, fileOffset);
    }

    /// <summary>mmap, read-write: the address, or -1 (MAP_FAILED) with errno set.</summary>
    private static unsafe nint Map(ulong size, int flags, int fd, ulong fileOffset)
    {
        // SAFETY: asks the kernel for a new mapping at an address it chooses (no fixed address, so
        // nothing existing is replaced); for a shared mapping the caller's handle keeps `fd` open.
        // The address is kept only while the mapping lives (until Dispose).
        void* p = LibC.mmap(null, (size_t)size, LibC.PROT_READ | LibC.PROT_WRITE, flags, fd, (off_t)(long)fileOffset);
        return p == LibC.MAP_FAILED ? -1 : (nint)p;
    }

    internal bool Contains(ulong address) => address - Start.Value < Size;

    /// <summary>
    /// A span over [offset, offset + length) of this region; the caller has checked that the
    /// range lies inside it.
    /// </summary>
    internal Span<byte> UncheckedSpan(ulong offset, int length)
    {
        unsafe
        {
            // SAFETY: the caller proved offset + length <= Size, and the mapping lives while the region does.
            return new Span<byte>((byte*)_host + offset, length);
        }
    }

    /// <summary>Unmaps the memory and closes the backing descriptor. Call only when no device uses it.</summary>
    public void Dispose()
    {
        if (_host != 0)
        {
            unsafe
            {
                // SAFETY: unmaps exactly the mapping created in the factory, once (_host is cleared).
                _ = LibC.munmap((void*)_host, (size_t)Size);
            }

            _host = 0;
        }

        _fd?.Dispose();
    }

    private static void ValidateGeometry(GuestAddress start, ulong size)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size);
        if (start.Value % (ulong)Environment.SystemPageSize != 0)
        {
            throw new ArgumentException($"The start must be page aligned ({Environment.SystemPageSize}).", nameof(start));
        }

        if (!start.TryAdd(size - 1, out _))
        {
            throw new ArgumentOutOfRangeException(nameof(size), "The region would extend past the end of the 64-bit address space.");
        }

        if (size % (ulong)Environment.SystemPageSize != 0)
        {
            throw new ArgumentException($"The size must be a multiple of the page size ({Environment.SystemPageSize}).", nameof(size));
        }
    }

    private static void ThrowErrno(string call, int errno) =>
        throw new System.IO.IOException($"{call} failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", errno);
}
