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
/// configuration interrupt on (an I/O thread, the connection's thread, the daemon's resize
/// trigger), so nothing here waits for the peer: the message goes with MSG_DONTWAIT, and one the
/// socket cannot take at once is dropped, counted and logged. With REPLY_ACK negotiated the message
/// asks for an acknowledgement (need_reply, as QEMU's vhost-user-blk expects); the replies are
/// collected without waiting before the next send (a failed one logged), never waited for: the
/// front end answers only after reading the configuration with GET_CONFIG, which the connection's
/// thread serves, so waiting there would deadlock. A channel that took part of a message, or
/// failed, or answered with something that is not an acknowledgement, is marked broken and sends
/// nothing more (the front end would read the rest as a new header).
/// </summary>
internal sealed class BackendChannel : IDisposable
{
    /// <summary>VHOST_USER_BACKEND_CONFIG_CHANGE_MSG (vhost-user.rst, "Back-end message types").</summary>
    public const uint ConfigChangeMessage = 2;

    /// <summary>A reply on the channel: header and u64 status.</summary>
    private const int AckSize = VhostUserMessage.HeaderSize + sizeof(ulong);

    private readonly SafeFileHandle _socket;
    private readonly ILogger _logger;
    private readonly bool _replyAck;
    private readonly object _gate = new();
    private int _broken;
    private long _awaitingAcks;

    /// <summary>Takes ownership of <paramref name="socket"/>; <paramref name="replyAck"/>: REPLY_ACK negotiated, messages ask for an acknowledgement.</summary>
    public BackendChannel(SafeFileHandle socket, bool replyAck, ILogger logger)
    {
        _socket = socket;
        _replyAck = replyAck;
        _logger = logger;
    }

    /// <summary>Messages sent with need_reply whose acknowledgement has not been collected yet.</summary>
    public long AwaitingAcks => Interlocked.Read(ref _awaitingAcks);

    /// <summary>Whether a send failed or was cut short: nothing more is sent.</summary>
    public bool IsBroken => Volatile.Read(ref _broken) != 0;

    /// <summary>Sends CONFIG_CHANGE_MSG (header only) if the socket takes it now; true when sent. Any thread; never blocks.</summary>
    public bool TrySendConfigChange()
    {
        lock (_gate)
        {
            // Senders on several threads: one message at a time on the stream.
            return TrySendLocked();
        }
    }

    private bool TrySendLocked()
    {
        if (!IsBroken)
        {
            CollectAcks();
        }

        if (IsBroken)
        {
            VhostUserMetrics.ConfigChangesDropped.Add(1);
            return false;
        }

        Span<byte> header = stackalloc byte[VhostUserMessage.HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, ConfigChangeMessage);
        BinaryPrimitives.WriteUInt32LittleEndian(header[4..], VhostUserMessage.Version | (_replyAck ? VhostUserMessage.NeedReplyFlag : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], 0);
        long sent = Send(header, out int errno);
        if (sent == header.Length)
        {
            if (_replyAck)
            {
                Interlocked.Increment(ref _awaitingAcks);
            }

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

    /// <summary>
    /// Reads the acknowledgements that have arrived, without waiting: whole 20-byte replies only
    /// (peeked first), each for CONFIG_CHANGE_MSG with the reply flag; a non-zero status is logged.
    /// Anything else breaks the channel.
    /// </summary>
    public void CollectAcks()
    {
        Span<byte> reply = stackalloc byte[AckSize];
        while (Receive(reply, LibC.MSG_PEEK) == AckSize)
        {
            // Fewer bytes: nothing yet, or a reply not yet whole (read once it is).

            _ = Receive(reply, 0);
            uint request = BinaryPrimitives.ReadUInt32LittleEndian(reply);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(reply[4..]);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(reply[8..]);
            if (request != ConfigChangeMessage || (flags & VhostUserMessage.ReplyFlag) == 0 || size != sizeof(ulong) || Interlocked.Read(ref _awaitingAcks) == 0)
            {
                Volatile.Write(ref _broken, 1);
                Log.ConfigChangeDropped(_logger, $"the front end sent request {request} flags 0x{flags:x} size {size} on the back-end channel, not an acknowledgement", true);
                return;
            }

            Interlocked.Decrement(ref _awaitingAcks);
            ulong status = BinaryPrimitives.ReadUInt64LittleEndian(reply[VhostUserMessage.HeaderSize..]);
            if (status != 0)
            {
                Log.ConfigChangeRefused(_logger, status);
            }
        }
    }

    private unsafe long Receive(Span<byte> into, int flags)
    {
        bool added = false;
        try
        {
            _socket.DangerousAddRef(ref added);
            long read;
            fixed (byte* data = into)
            {
                do
                {
                    // SAFETY: data is pinned for the call and the kernel writes at most into.Length
                    // bytes to it; the reference taken above keeps the fd open.
                    read = LibC.recv((int)_socket.DangerousGetHandle(), data, (size_t)into.Length, flags | LibC.MSG_DONTWAIT);
                }
                while (read < 0 && LibC.errno == LibC.EINTR);
            }

            return read;
        }
        catch (ObjectDisposedException)
        {
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
