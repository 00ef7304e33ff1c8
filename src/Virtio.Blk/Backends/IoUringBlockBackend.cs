using System;
using System.Collections.Generic;
using System.IO;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Blk.Interop;
using Virtio.Core.Threading;

namespace Virtio.Blk.Backends;

/// <summary>
/// A raw disk image or a block device served through io_uring: readv/writev straight on the guest
/// buffers (zero copy), fsync(DATASYNC) for FLUSH and fallocate for discard / write-zeroes go into
/// the kernel's submission ring, and every request up to <see cref="QueueDepth"/> per ring is in the
/// kernel at once. Given the device's I/O threads, it keeps one ring per thread, driven only from
/// it: the requests a drain pass pops are submitted with one io_uring_enter at the end of the pass,
/// and completions are taken on the same thread (the ring's eventfd is in its epoll set), so a
/// request crosses no thread at all. Without I/O threads, one ring and a reaper thread of its own.
/// Same semantics as <see cref="FileBlockBackend"/>, which works where io_uring is not allowed
/// (<see cref="BlockBackends.OpenFile"/> picks).
/// </summary>
/// <remarks>
/// <see cref="Submit"/> may be called from any thread: on one of the I/O threads it uses that
/// thread's ring, anywhere else the first ring, entering at once. Requests complete on the ring's
/// I/O thread (or reaper), or on the submitting thread when they fail before reaching the kernel. A
/// transfer the kernel cuts short continues where it stopped; end of file inside the capacity, and
/// any error, is VIRTIO_BLK_S_IOERR for that request. Requests beyond <see cref="QueueDepth"/> wait
/// in order for a free slot. A request the device abandoned (<see cref="BlockIo.IsAbandoned"/>) and
/// not yet in the kernel fails without touching guest memory. io_uring can be disabled by the host
/// (<c>kernel.io_uring_disabled</c>, seccomp): <see cref="IsSupported"/> tells.
/// </remarks>
public sealed class IoUringBlockBackend : IBlockBackend, IDisposable
{
    private readonly DiskImage _image;
    private readonly IoUringEngine[] _engines;

    /// <summary>Opens <paramref name="path"/> and sets up the rings. Any thread.</summary>
    /// <param name="path">A regular file or a block device; its size is the capacity (rounded down to 512).</param>
    /// <param name="readOnly">Open read-only; the device then offers VIRTIO_BLK_F_RO.</param>
    /// <param name="direct">Open with O_DIRECT (bypass the host page cache).</param>
    /// <param name="queueDepth">The most requests in the kernel at once per ring (rounded up to a power of two by the kernel): in-flight per queue × queues per I/O thread keeps them all there.</param>
    /// <param name="logger">Where failed requests are logged (Debug).</param>
    /// <param name="ioThreads">
    /// The started I/O threads the device processes its queues on (<see cref="BlockDeviceOptions.IoThreads"/>):
    /// one ring each, submitted and reaped there. They must run until this backend is disposed. Null
    /// or empty: one ring and a reaper thread.
    /// </param>
    /// <remarks>Locks the image (<see cref="FileBackendOptions.LockImage"/>); <see cref="BlockBackends.OpenFile"/> opens without the lock when asked.</remarks>
    /// <exception cref="ImageLockedException">Another open holds a conflicting lock on the image.</exception>
    /// <exception cref="IOException">open, lseek, fcntl, io_uring_setup, mmap, io_uring_register or epoll_ctl failed; the message holds the errno.</exception>
    public IoUringBlockBackend(string path, bool readOnly = false, bool direct = false, int queueDepth = 256, ILogger? logger = null, IReadOnlyList<IoThread>? ioThreads = null)
        : this(path, readOnly, direct, queueDepth, logger, ioThreads, lockImage: true)
    {
    }

    /// <summary>The constructor with the image lock chosen (<see cref="FileBackendOptions.LockImage"/>).</summary>
    internal IoUringBlockBackend(string path, bool readOnly, bool direct, int queueDepth, ILogger? logger, IReadOnlyList<IoThread>? ioThreads, bool lockImage)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(queueDepth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(queueDepth, 4096);
        logger ??= NullLogger.Instance;
        _image = DiskImage.Open(path, readOnly, direct, lockImage, logger);
        _engines = new IoUringEngine[ioThreads is { Count: > 0 } ? ioThreads.Count : 1];
        try
        {
            for (int i = 0; i < _engines.Length; i++)
            {
                _engines[i] = new IoUringEngine(_image, queueDepth, ioThreads is { Count: > 0 } ? ioThreads[i] : null, logger);
            }
        }
        catch
        {
            DisposeEngines();
            _image.Dispose();
            throw;
        }

        QueueDepth = _engines[0].QueueDepth;
    }

    /// <summary>The most requests in the kernel at once, per ring.</summary>
    public int QueueDepth { get; }

    /// <inheritdoc />
    public ulong Capacity => _image.Capacity;

    /// <summary>
    /// Reads the image's size again (it was grown or truncated under the backend) and returns it in
    /// bytes, rounded down to 512; <see cref="Capacity"/> says it from then on. Tell the device with
    /// <see cref="BlockDevice.UpdateCapacity"/>. Any thread.
    /// </summary>
    /// <returns>The new capacity in bytes.</returns>
    /// <exception cref="System.IO.IOException">The size could not be read (the message holds the errno).</exception>
    public ulong RefreshCapacity() => _image.RefreshCapacity();

    /// <inheritdoc />
    public bool IsReadOnly => _image.IsReadOnly;

    /// <inheritdoc />
    public BlockBackendCapabilities Capabilities => DiskImage.Capabilities;

    /// <summary>Whether completions are taken by a reaper thread (no I/O thread was given). For tests.</summary>
    internal bool HasReaperThread => _engines[0].HasReaperThread;

    /// <summary>io_uring_enter calls that submitted, over every ring. For tests.</summary>
    internal long SubmitCalls
    {
        get
        {
            long calls = 0;
            foreach (IoUringEngine engine in _engines)
            {
                calls += engine.SubmitCalls;
            }

            return calls;
        }
    }

    /// <summary>Whether this process may use io_uring (a ring of one entry can be set up). Any thread.</summary>
    /// <param name="reason">Why not, when it returns false.</param>
    /// <returns>True when io_uring works here.</returns>
    public static bool IsSupported(out string? reason)
    {
        if (!IoUringRing.Probe(out int errno))
        {
            reason = $"io_uring_setup failed with errno {errno} (disabled by kernel.io_uring_disabled or a seccomp filter, or an old kernel)";
            return false;
        }

        reason = null;
        return true;
    }

    /// <summary>Puts <paramref name="io"/> into the ring of the calling I/O thread (the first ring from any other thread), or in line for a free slot. Any thread; never blocks on I/O.</summary>
    /// <param name="io">The request, validated by the device.</param>
    public void Submit(BlockIo io)
    {
        ArgumentNullException.ThrowIfNull(io);
        IoUringEngine engine = _engines[0];
        for (int i = 1; i < _engines.Length; i++)
        {
            if (_engines[i].IsOnItsThread)
            {
                engine = _engines[i];
                break;
            }
        }

        engine.Submit(io);
    }

    /// <summary>Waits for the requests in flight and in line (they complete), stops taking completions, then closes the rings and the file. Any thread but the I/O threads, once the device is stopped.</summary>
    public void Dispose()
    {
        DisposeEngines();
        _image.Dispose();
    }

    private void DisposeEngines()
    {
        foreach (IoUringEngine? engine in _engines)
        {
            engine?.Dispose();
        }
    }
}
