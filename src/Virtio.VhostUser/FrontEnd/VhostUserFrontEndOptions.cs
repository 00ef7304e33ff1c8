using System;
using Microsoft.Extensions.Logging;

namespace Virtio.VhostUser.FrontEnd;

/// <summary>How <see cref="VhostUserFrontEnd.Connect"/> connects and how long it waits for the back end.</summary>
/// <remarks>A plain value: build one on any thread and pass it to <see cref="VhostUserFrontEnd.Connect"/>.</remarks>
public sealed record VhostUserFrontEndOptions
{
    /// <summary>
    /// How long to keep retrying while the socket is missing or refuses connections (a back end
    /// still starting). Zero tries once. Default 10 s.
    /// </summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait for each reply (and REPLY_ACK status) before a <see cref="TimeoutException"/>. Default 10 s.</summary>
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where each message sent is logged (debug level); none by default.</summary>
    public ILogger? Logger { get; init; }
}
