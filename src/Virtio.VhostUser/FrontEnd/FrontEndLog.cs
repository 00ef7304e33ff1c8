using Microsoft.Extensions.Logging;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.FrontEnd;

/// <summary>The front end's log events (4100-4199; the back end's are 4001-4099).</summary>
internal static partial class FrontEndLog
{
    [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "Connected to {SocketPath} (back-end pid {PeerProcessId})")]
    public static partial void Connected(ILogger logger, string socketPath, int peerProcessId);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Debug, Message = "Sent {Request} ({PayloadSize} bytes, {FdCount} fds, need_reply {NeedReply})")]
    public static partial void Sent(ILogger logger, VhostUserRequest request, int payloadSize, int fdCount, bool needReply);
}
