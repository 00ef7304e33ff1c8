using System;
using System.Buffers.Binary;
using System.Threading;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser;

/// <summary>
/// The back-end request channel of VHOST_USER_PROTOCOL_F_BACKEND_REQ: the socket the front end
/// handed over with SET_BACKEND_REQ_FD, on which this side sends requests. Only
/// VHOST_USER_BACKEND_CONFIG_CHANGE_MSG is sent, from whichever thread the device raises its
/// configuration interrupt on (an I/O thread, the connection's thread), so nothing here waits for
/// the peer: the message goes with MSG_DONTWAIT, without need_reply (a reply could only be read by
/// waiting), and one the socket cannot take at once is dropped, counted and logged. A channel
/// that took part of a message, or failed, is marked broken and sends nothing more (the front end
/// would read the rest as a new header).
/// </summary>
internal sealed class BackendChannel : IDisposable
{
    /// <summary>VHOST_USER_BACKEND_CONFIG_CHANGE_MSG (vhost-user.rst, "Back-end message types").</summary>
    public const uint ConfigChangeMessage = 2;

    private readonly SafeFileHandle _socket;
    private readonly ILogger _logger;
    private int _broken;

    /// <summary>Takes ownership of <paramref name="socket"/>.</summary>
    public BackendChannel(SafeFileHandle socket, ILogger logger)
    {
        _socket = socket;
        _logger = logger;
    }

    /// <summary>Whether a send failed or was cut short: nothing more is sent.</summary>
    public bool IsBroken => Volatile.Read(ref _broken) != 0;

    /// <summary>Sends CONFIG_CHANGE_MSG (header only) if the socket takes it now; true when sent. Any thread; never blocks.</summary>
    public bool TrySendConfigChange()
    {
        if (IsBroken)
        {
            VhostUserMetrics.ConfigChangesDropped.Add(1);
            return false;
        }

        Span<byte> header = stackalloc byte[VhostUserMessage.HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, ConfigChangeMessage);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], VhostUserMessage.Version);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], 0);
        long sent = Send(header, out int errno);
        if (sent == header.Length)
        {
            VhostUserMetrics.ConfigChangesSent.Add(1);
            Log.ConfigChangeSent(_logger);
            return true;
        }

        VhostUserMetrics.ConfigChangesDropped.Add(1);
        if (sent > 0 || errno != LibC.EAGAIN)
        {
            Volatile.Write(ref _broken, 1);
        }

        Log.ConfigChangeDropped(_logger, sent < 0 ? $"errno {errno}" : $"{sent} of {header.Length} bytes taken", IsBroken);
        return false;
    }

    private unsafe long Send(ReadOnlySpan<byte> bytes, out int errno)
    {
        bool added = false;
        try
        {
            _socket.DangerousAddRef(ref added);
            long sent;
            fixed (byte* data = bytes)
            {
                do
                {
                    // SAFETY: data is pinned for the call and the kernel reads bytes.Length bytes of
                    // it; the reference taken above keeps the fd open.
                    sent = LibC.send((int)_socket.DangerousGetHandle(), data, (size_t)bytes.Length, LibC.MSG_DONTWAIT | LibC.MSG_NOSIGNAL);
                }
                while (sent < 0 && LibC.errno == LibC.EINTR);
            }

            errno = sent < 0 ? LibC.errno : 0;
            return sent;
        }
        catch (ObjectDisposedException)
        {
            // The connection ended while a device thread raised the interrupt.
            errno = LibC.EBADF;
            return -1;
        }
        finally
        {
            if (added)
            {
                _socket.DangerousRelease();
            }
        }
    }

    public void Dispose() => _socket.Dispose();
}
