using System;
using System.IO;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// The shared buffer of VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD: one region per queue recording which
/// descriptor heads the back end popped and has not yet completed, kept by the front end across
/// back-end restarts. Layout of a split queue's region (vhost-user.rst, "InFlight I/O tracking"):
/// a 16-byte header (features u64, version u16, desc_num u16, last_batch_head u16, used_idx u16)
/// then desc_num 16-byte entries (inflight u8, 5 bytes padding, next u16, counter u64). A packed
/// queue's region has the packed layout (<see cref="PackedInFlightTracker"/>); each queue gets room for that.
/// </summary>
internal sealed class InFlightRegion : IDisposable
{
    public const int HeaderSize = 16;
    public const int EntrySize = 16;
    private const int QueueAlignment = 64;

    // The mapping's address (zero once disposed): kept as a number so that only the members that
    // dereference it are unsafe.
    private nint _base;
    private readonly ulong _size;

    private InFlightRegion(nint mapping, ulong size, SafeFileHandle fd, ushort queueCount, ushort queueSize)
    {
        _base = mapping;
        _size = size;
        Fd = fd;
        QueueCount = queueCount;
        QueueSize = queueSize;
    }

    /// <summary>The file the region lives in (a memfd), owned by this object.</summary>
    public SafeFileHandle Fd { get; }

    public ushort QueueCount { get; }

    public ushort QueueSize { get; }

    public ulong Size => _size;

    /// <summary>
    /// Bytes of one queue's region, rounded up to 64: room for the packed layout
    /// (<see cref="PackedInFlightTracker"/>, 32-byte header and entries), which is larger than the split
    /// one, since the region is made (GET_INFLIGHT_FD) before the features say which layout the ring has.
    /// </summary>
    public static ulong QueueRegionSize(ushort queueSize) => ((ulong)PackedInFlightTracker.RegionSize(queueSize) + QueueAlignment - 1) & ~(ulong)(QueueAlignment - 1);

    /// <summary>The seals of a region this class creates: its size is fixed before the front end gets it.</summary>
    public static int CreatedSeals => LibC.F_SEAL_SHRINK | LibC.F_SEAL_GROW | LibC.F_SEAL_SEAL;

    /// <summary>
    /// Creates a zeroed memfd for <paramref name="queueCount"/> queues, sealed with
    /// <see cref="CreatedSeals"/> (so neither side can truncate it under the other's mapping), and
    /// marks each region version 1.
    /// </summary>
    public static InFlightRegion Create(ushort queueCount, ushort queueSize)
    {
        ulong size = QueueRegionSize(queueSize) * queueCount;
        int fd = CreateMemFd();

        if (fd < 0)
        {
            throw new IOException($"memfd_create failed (errno {LibC.errno}).");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (LibC.ftruncate(fd, (off_t)(long)size) != 0)
        {
            int errno = LibC.errno;
            handle.Dispose();
            throw new IOException($"ftruncate failed (errno {errno}).");
        }

        if (LibC.fcntl(fd, LibC.F_ADD_SEALS, CreatedSeals) != 0)
        {
            int errno = LibC.errno;
            handle.Dispose();
            throw new IOException($"sealing the in-flight memfd failed (errno {errno}).");
        }

        InFlightRegion region = Map(handle, 0, size, queueCount, queueSize);
        for (int q = 0; q < queueCount; q++)
        {
            Span<byte> header = region.QueueSpan(q)[..HeaderSize];
            BitConverter.TryWriteBytes(header[8..], (ushort)1);
            BitConverter.TryWriteBytes(header[10..], queueSize);
        }

        return region;
    }

    /// <summary>Maps an existing region the front end handed back; takes ownership of <paramref name="fd"/>.</summary>
    public static InFlightRegion Map(SafeFileHandle fd, ulong offset, ulong size, ushort queueCount, ushort queueSize)
    {
        nint mapping = MapShared(fd, offset, size);
        if (mapping == -1)
        {
            int errno = LibC.errno;
            fd.Dispose();
            throw new IOException($"mmap of the in-flight region failed (errno {errno}).");
        }

        return new InFlightRegion(mapping, size, fd, queueCount, queueSize);
    }

    /// <summary>Queue <paramref name="queue"/>'s part of the mapping.</summary>
    public unsafe Span<byte> QueueSpan(int queue)
    {
        byte* start = QueuePointer(queue);
        // SAFETY: QueuePointer checked queue < QueueCount, so the QueueRegionSize bytes from start
        // lie inside the live mapping (the span must not outlive this object).
        return new Span<byte>(start, (int)QueueRegionSize(QueueSize));
    }

    /// <summary>A pointer to queue <paramref name="queue"/>'s region, for the tracker's atomic stores; valid until <see cref="Dispose"/>.</summary>
    public unsafe byte* QueuePointer(int queue)
    {
        ObjectDisposedException.ThrowIf(_base == 0, this);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)queue, (uint)QueueCount, nameof(queue));
        // SAFETY: queue < QueueCount and the mapping holds QueueCount regions of QueueRegionSize
        // bytes, so the offset stays inside it.
        return (byte*)_base + ((ulong)queue * QueueRegionSize(QueueSize));
    }

    public unsafe void Dispose()
    {
        if (_base != 0)
        {
            // SAFETY: unmaps exactly the mapping made in Map, once (_base is cleared right after).
            _ = LibC.munmap((void*)_base, (size_t)_size);
            _base = 0;
        }

        Fd.Dispose();
    }

    private static unsafe int CreateMemFd()
    {
        fixed (byte* name = "vhost-user-inflight\0"u8)
        {
            // SAFETY: name is a NUL-terminated literal pinned for the call.
            return LibC.memfd_create(name, LibC.MFD_CLOEXEC | LibC.MFD_ALLOW_SEALING);
        }
    }

    /// <summary>mmap of [offset, offset + size) of the file, shared and writable; -1 on failure (errno set).</summary>
    internal static unsafe nint MapShared(SafeFileHandle fd, ulong offset, ulong size)
    {
        // SAFETY: no address hint; the kernel checks the fd, which the caller's handle keeps open,
        // and the range; the mapping stays valid after the fd is closed, until munmap.
        void* p = LibC.mmap(null, (size_t)size, LibC.PROT_READ | LibC.PROT_WRITE, LibC.MAP_SHARED, (int)fd.DangerousGetHandle(), (off_t)(long)offset);
        return p == LibC.MAP_FAILED ? -1 : (nint)p;
    }
}
