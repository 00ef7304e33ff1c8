using System;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// A front-end message broke the protocol (bad size, fd count, address, index...). The connection
/// that sent it is closed with the message as the logged reason; the server keeps serving.
/// </summary>
internal sealed class VhostUserProtocolException : Exception
{
    public VhostUserProtocolException(string message)
        : base(message)
    {
    }

    public VhostUserProtocolException()
    {
    }

    public VhostUserProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
