using System;
using Microsoft.Extensions.Logging;

namespace Virtio.Core.Threading;

/// <summary>Log messages of the threading primitives; event ids 2000-2099.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1401, Level = LogLevel.Debug, Message = "I/O thread {ThreadName} started")]
    public static partial void IoThreadStarted(ILogger logger, string threadName);

    [LoggerMessage(EventId = 1402, Level = LogLevel.Debug, Message = "I/O thread {ThreadName} stopped")]
    public static partial void IoThreadStopped(ILogger logger, string threadName);

    [LoggerMessage(EventId = 1403, Level = LogLevel.Error, Message = "I/O thread {ThreadName}: an fd handler threw; the loop keeps running")]
    public static partial void HandlerFailed(ILogger logger, string threadName, Exception exception);

    [LoggerMessage(EventId = 1404, Level = LogLevel.Error, Message = "I/O thread {ThreadName}: scheduled work threw; the loop keeps running")]
    public static partial void ScheduledWorkFailed(ILogger logger, string threadName, Exception exception);

    [LoggerMessage(EventId = 1405, Level = LogLevel.Error, Message = "I/O thread {ThreadName}: a poller threw; the loop keeps running")]
    public static partial void PollerFailed(ILogger logger, string threadName, Exception exception);

    [LoggerMessage(EventId = 1406, Level = LogLevel.Critical, Message = "I/O thread {ThreadName}: epoll_wait failed with errno {Errno}; the loop exits")]
    public static partial void EpollWaitFailed(ILogger logger, string threadName, int errno);

    [LoggerMessage(EventId = 1410, Level = LogLevel.Error, Message = "A deferred call threw; the remaining deferred calls still run")]
    public static partial void DeferredCallFailed(ILogger logger, Exception exception);
}
