using System;
using Microsoft.Extensions.Logging;

namespace Virtio.Blk;

/// <summary>Virtio.Blk's log messages (compile-time generated, no allocation when disabled).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 2001, Level = LogLevel.Debug, Message = "virtio-blk queue {QueueIndex}: chain {Head} rejected ({Error}): no writable status byte; returned with length 0")]
    public static partial void MalformedRequest(ILogger logger, ushort queueIndex, ushort head, BlockRequestError error);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Debug, Message = "virtio-blk queue {QueueIndex}: request {Head} rejected with {Status} ({Error})")]
    public static partial void RequestRejected(ILogger logger, ushort queueIndex, ushort head, BlockRequestError error, BlockStatus status);

    [LoggerMessage(EventId = 2003, Level = LogLevel.Warning, Message = "virtio-blk queue {QueueIndex}: the backend threw from Submit; the request fails with IOERR")]
    public static partial void BackendThrew(ILogger logger, ushort queueIndex, Exception exception);

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "virtio-blk reset: {InFlight} request(s) still in flight after {Timeout}; their completions will be dropped, but the backend may still touch guest memory")]
    public static partial void ResetTimedOut(ILogger logger, int inFlight, TimeSpan timeout);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Debug, Message = "virtio-blk: writeback cache {Enabled} by the driver")]
    public static partial void WritebackChanged(ILogger logger, bool enabled);

    [LoggerMessage(EventId = 2006, Level = LogLevel.Debug, Message = "virtio-blk queue {QueueIndex}: request {Head} rejected with IOERR: {Count} buffers, more than the {Limit} (seg_max + 2) the device accepts")]
    public static partial void ChainTooLong(ILogger logger, ushort queueIndex, ushort head, int count, int limit);

    [LoggerMessage(EventId = 2101, Level = LogLevel.Debug, Message = "File backend: {Operation} at {Offset} failed with errno {Errno}")]
    public static partial void FileIoFailed(ILogger logger, Backends.BlockOperation operation, ulong offset, int errno);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Warning, Message = "io_uring backend: io_uring_enter failed with errno {Errno}")]
    public static partial void IoUringEnterFailed(ILogger logger, int errno);

    [LoggerMessage(EventId = 2103, Level = LogLevel.Warning, Message = "{Path}: io_uring_setup failed with errno {Errno} (kernel.io_uring_disabled, a seccomp filter or an old kernel); serving it with the thread engine instead")]
    public static partial void IoUringFallback(ILogger logger, string path, int errno);

    [LoggerMessage(EventId = 2110, Level = LogLevel.Warning, Message = "{Path}: the file system has no open file description locks (fcntl F_OFD_SETLK failed with errno {Errno}); opened without the image lock")]
    public static partial void ImageLockUnsupported(ILogger logger, string path, int errno);

    [LoggerMessage(EventId = 2111, Level = LogLevel.Information, Message = "{Path}: opened without the image lock (lock off): keep every other writer away, or share it on purpose (both sides of a live migration)")]
    public static partial void ImageUnlocked(ILogger logger, string path);

    [LoggerMessage(EventId = 2120, Level = LogLevel.Information, Message = "virtio-blk {Name}: capacity {OldSectors} -> {NewSectors} sectors; configuration change sent to the driver")]
    public static partial void CapacityChanged(ILogger logger, string name, ulong oldSectors, ulong newSectors);
}
