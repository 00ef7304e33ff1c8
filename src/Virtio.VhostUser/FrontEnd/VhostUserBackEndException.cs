using System;
using System.IO;

namespace Virtio.VhostUser.FrontEnd;

/// <summary>
/// The back end refused a request (a non-zero REPLY_ACK status), answered with a malformed reply
/// (wrong request, size or flags), or closed the connection. The connection is then unusable:
/// dispose the <see cref="VhostUserFrontEnd"/>.
/// </summary>
public sealed class VhostUserBackEndException : IOException
{
    /// <summary>Creates the exception with a message naming the request and what went wrong.</summary>
    /// <param name="message">The reason.</param>
    public VhostUserBackEndException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with no message.</summary>
    public VhostUserBackEndException()
    {
    }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    /// <param name="message">The reason.</param>
    /// <param name="innerException">The cause.</param>
    public VhostUserBackEndException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
