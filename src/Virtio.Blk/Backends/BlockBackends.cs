using System;
using System.Collections.Generic;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Blk.Interop;
using Virtio.Core.Threading;

namespace Virtio.Blk.Backends;

/// <summary>Opens the backend over an image file with the engine asked for, falling back from io_uring to threads where the host does not allow it.</summary>
public static class BlockBackends
{
    /// <summary>
    /// Opens <paramref name="path"/> with <see cref="FileBackendOptions.Engine"/>: an
    /// <see cref="IoUringBlockBackend"/> on <paramref name="ioThreads"/> when io_uring can be set up
    /// here; otherwise (io_uring_setup fails: <c>kernel.io_uring_disabled</c>, seccomp, an old
    /// kernel) a <see cref="FileBlockBackend"/>, logged once as a warning with the errno. Any thread.
    /// </summary>
    /// <param name="path">A regular file or a block device.</param>
    /// <param name="options">Engine, read-only, O_DIRECT, depth; defaults when null.</param>
    /// <param name="ioThreads">The device's started I/O threads (<see cref="BlockDeviceOptions.IoThreads"/>), for io_uring's rings; null: a reaper thread.</param>
    /// <param name="logger">Where the fallback and failed requests are logged.</param>
    /// <returns>The backend; the caller disposes it (both engines are <see cref="IDisposable"/>) after the device stops.</returns>
    /// <exception cref="ImageLockedException">The image is locked by another open (<see cref="FileBackendOptions.LockImage"/>).</exception>
    /// <exception cref="System.IO.IOException">The file cannot be opened, or io_uring set up but its ring could not be; the message holds the errno.</exception>
    public static IBlockBackend OpenFile(string path, FileBackendOptions? options = null, IReadOnlyList<IoThread>? ioThreads = null, ILogger? logger = null) =>
        OpenFileProbed(path, options, ioThreads, logger, ProbeIoUring);

    /// <summary><see cref="OpenFile"/> with the io_uring check given: <paramref name="probe"/> returns 0 when io_uring_setup works, else its errno (a test makes it fail).</summary>
    internal static IBlockBackend OpenFileProbed(string path, FileBackendOptions? options, IReadOnlyList<IoThread>? ioThreads, ILogger? logger, Func<int> probe)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new FileBackendOptions();
        logger ??= NullLogger.Instance;
        if (options.Engine == BlockEngine.IoUring)
        {
            int errno = probe();
            if (errno == 0)
            {
                return new IoUringBlockBackend(path, options.ReadOnly, options.Direct, options.QueueDepth, logger, ioThreads, options.LockImage);
            }

            Log.IoUringFallback(logger, path, errno);
        }

        return new FileBlockBackend(path, options.ReadOnly, options.Direct, options.QueueDepth, logger, options.LockImage);
    }

    private static int ProbeIoUring() => IoUringRing.Probe(out int errno) ? 0 : errno;
}
