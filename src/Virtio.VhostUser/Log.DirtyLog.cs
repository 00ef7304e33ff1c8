using Microsoft.Extensions.Logging;

namespace Virtio.VhostUser;

/// <summary>Virtio.VhostUser's dirty-logging messages (event ids 4040-4049).</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 4040, Level = LogLevel.Information, Message = "vhost-user: dirty log set (SET_LOG_BASE): {Size} bytes, covering guest addresses below 0x{Covered:x}")]
    public static partial void DirtyLogBase(ILogger logger, ulong size, ulong covered);

    [LoggerMessage(EventId = 4041, Level = LogLevel.Information, Message = "vhost-user: dirty logging {State} (VHOST_F_LOG_ALL {Acked}, log {HasLog}); {Restarted} running ring(s) drained and restarted")]
    public static partial void DirtyLogging(ILogger logger, string state, bool acked, bool hasLog, int restarted);

    [LoggerMessage(EventId = 4042, Level = LogLevel.Warning, Message = "vhost-user: a write at guest address 0x{Address:x} lies past the dirty log's {Size} bytes; not logged (further ones counted, not logged)")]
    public static partial void DirtyLogBeyondEnd(ILogger logger, ulong address, ulong size);

    [LoggerMessage(EventId = 4043, Level = LogLevel.Warning, Message = "vhost-user: {Count} dirty log mapping(s) left mapped at close: a request that outlived the drain may still mark them")]
    public static partial void DirtyLogLeftMapped(ILogger logger, int count);

    [LoggerMessage(EventId = 4044, Level = LogLevel.Information, Message = "vhost-user: log eventfd set (SET_LOG_FD): signalled after each returned request's pages are marked")]
    public static partial void DirtyLogFdSet(ILogger logger);
}
