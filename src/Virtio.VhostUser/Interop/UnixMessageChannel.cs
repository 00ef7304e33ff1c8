using System;
using System.Buffers.Binary;
using System.IO;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.Interop;

/// <summary>
/// Reads vhost-user messages with their SCM_RIGHTS file descriptors from a connected Unix stream
/// socket and writes replies. One thread uses it at a time (the connection's thread).
/// </summary>
internal sealed class UnixMessageChannel
{
    private readonly Socket _socket;
    private readonly byte[] _header = new byte[VhostUserMessage.HeaderSize];

    public UnixMessageChannel(Socket socket) => _socket = socket;

    /// <summary>
    /// Reads the next message into <paramref name="message"/>. Returns false on a clean end of
    /// stream before any byte of a message; throws <see cref="VhostUserProtocolException"/> for a
    /// truncated or malformed frame (the header is checked here, the payload by the caller).
    /// </summary>
    public bool TryReceive(VhostUserMessage message)
    {
        message.ClearFds();
        if (!TryReceiveHeader(message, out uint size))
        {
            return false;
        }

        uint request = (uint)message.Request;
        uint flags = message.Flags;
        if ((flags & VhostUserMessage.VersionMask) != VhostUserMessage.Version)
        {
            throw new VhostUserProtocolException($"request {request}: header version {flags & VhostUserMessage.VersionMask}, expected {VhostUserMessage.Version}");
        }

        if ((flags & ~(VhostUserMessage.VersionMask | VhostUserMessage.NeedReplyFlag)) != 0)
        {
            throw new VhostUserProtocolException($"request {request}: unknown or reply flags 0x{flags:x} in a front-end message");
        }

        ReceivePayload(message, size);
        return true;
    }

    /// <summary>
    /// The front end's side: reads the back end's reply to <paramref name="expected"/> into
    /// <paramref name="message"/> (header, payload, fds). Throws <see cref="VhostUserProtocolException"/>
    /// when the stream ends, or the reply is for another request or lacks the reply flag.
    /// </summary>
    public void ReceiveReply(VhostUserMessage message, VhostUserRequest expected)
    {
        message.ClearFds();
        if (!TryReceiveHeader(message, out uint size))
        {
            throw new VhostUserProtocolException($"{expected}: the back end closed the connection instead of replying");
        }

        if (message.Request != expected)
        {
            throw new VhostUserProtocolException($"{expected}: the back end replied to request {(uint)message.Request}");
        }

        if ((message.Flags & ~VhostUserMessage.NeedReplyFlag) != (VhostUserMessage.Version | VhostUserMessage.ReplyFlag))
        {
            throw new VhostUserProtocolException($"{expected}: reply flags 0x{message.Flags:x}, expected version 1 with the reply flag");
        }

        ReceivePayload(message, size);
    }

    /// <summary>
    /// The front end's side: sends one message with <paramref name="flags"/> (version and
    /// need_reply) and up to <see cref="VhostUserMessage.MaxFds"/> descriptors in one SCM_RIGHTS
    /// control message. The handles are kept open during the call; the peer gets duplicates.
    /// </summary>
    public void Send(VhostUserRequest request, uint flags, ReadOnlySpan<byte> payload, ReadOnlySpan<SafeHandle> fds)
    {
        if (payload.Length > VhostUserMessage.MaxPayloadSize || fds.Length > VhostUserMessage.MaxFds)
        {
            throw new ArgumentException($"{request}: {payload.Length} payload bytes and {fds.Length} fds exceed one message");
        }

        Span<byte> frame = stackalloc byte[VhostUserMessage.HeaderSize + payload.Length];
        WriteHeader(frame, request, flags, payload.Length);
        payload.CopyTo(frame[VhostUserMessage.HeaderSize..]);
        SendFrame(frame, fds);
    }

    /// <summary>Sends a reply: header with the reply flag, then <paramref name="payload"/>.</summary>
    public void SendReply(VhostUserRequest request, ReadOnlySpan<byte> payload)
    {
        Span<byte> frame = stackalloc byte[VhostUserMessage.HeaderSize + payload.Length];
        WriteHeader(frame, request, VhostUserMessage.Version | VhostUserMessage.ReplyFlag, payload.Length);
        payload.CopyTo(frame[VhostUserMessage.HeaderSize..]);
        while (!frame.IsEmpty)
        {
            int sent = _socket.Send(frame, SocketFlags.None);
            frame = frame[sent..];
        }
    }

    /// <summary>Sends a reply with one file descriptor in SCM_RIGHTS (GET_INFLIGHT_FD).</summary>
    public void SendReply(VhostUserRequest request, ReadOnlySpan<byte> payload, SafeFileHandle fd)
    {
        Span<byte> frame = stackalloc byte[VhostUserMessage.HeaderSize + payload.Length];
        WriteHeader(frame, request, VhostUserMessage.Version | VhostUserMessage.ReplyFlag, payload.Length);
        payload.CopyTo(frame[VhostUserMessage.HeaderSize..]);
        SendFrame(frame, [fd]);
    }

    /// <summary>Sends a reply whose payload is one u64.</summary>
    public void SendReply(VhostUserRequest request, ulong value)
    {
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, value);
        SendReply(request, payload);
    }

    private static void WriteHeader(Span<byte> frame, VhostUserRequest request, uint flags, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)request);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], flags);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[8..], (uint)payloadLength);
    }

    /// <summary>Reads the 12-byte header into <paramref name="message"/>; false on a clean end of stream before it.</summary>
    private bool TryReceiveHeader(VhostUserMessage message, out uint size)
    {
        size = 0;
        int got = ReceiveWithFds(_header, message);
        if (got == 0)
        {
            return false;
        }

        while (got < VhostUserMessage.HeaderSize)
        {
            int more = ReceiveWithFds(_header.AsSpan(got), message);
            if (more == 0)
            {
                throw new VhostUserProtocolException($"short header: {got} of {VhostUserMessage.HeaderSize} bytes before the end of the stream");
            }

            got += more;
        }

        message.Request = (VhostUserRequest)BinaryPrimitives.ReadUInt32LittleEndian(_header);
        message.Flags = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(4));
        size = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(8));
        return true;
    }

    /// <summary>Reads <paramref name="size"/> payload bytes (checked against the limit) into <paramref name="message"/>.</summary>
    private void ReceivePayload(VhostUserMessage message, uint size)
    {
        uint request = (uint)message.Request;
        if (size > VhostUserMessage.MaxPayloadSize)
        {
            throw new VhostUserProtocolException($"request {request}: payload of {size} bytes is over the {VhostUserMessage.MaxPayloadSize}-byte limit");
        }

        message.Size = (int)size;
        int read = 0;
        while (read < message.Size)
        {
            int more = ReceiveWithFds(message.Payload.AsSpan(read, message.Size - read), message);
            if (more == 0)
            {
                throw new VhostUserProtocolException($"request {request}: the stream ended after {read} of {size} payload bytes");
            }

            read += more;
        }
    }

    /// <summary>Sends a whole frame with <paramref name="fds"/> (none, or up to eight) in SCM_RIGHTS.</summary>
    private unsafe void SendFrame(ReadOnlySpan<byte> frame, ReadOnlySpan<SafeHandle> fds)
    {
        int controlSize = fds.IsEmpty ? 0 : (int)LibC.CMSG_SPACE(sizeof(int) * VhostUserMessage.MaxFds);
        byte* control = stackalloc byte[Math.Max(controlSize, 1)];
        // SAFETY: control points at at least controlSize bytes of this frame's stack.
        new Span<byte>(control, controlSize).Clear();
        Span<bool> added = stackalloc bool[VhostUserMessage.MaxFds];
        bool addedSocket = false;
        SafeSocketHandle socket = _socket.SafeHandle;
        try
        {
            for (int i = 0; i < fds.Length; i++)
            {
                fds[i].DangerousAddRef(ref added[i]);
            }

            socket.DangerousAddRef(ref addedSocket);
            fixed (byte* data = frame)
            {
                iovec iov = default;
                msghdr header = MessageHeader(&iov, data, frame.Length, fds.IsEmpty ? null : control, fds.IsEmpty ? 0 : (int)LibC.CMSG_SPACE(sizeof(int) * fds.Length));
                if (!fds.IsEmpty)
                {
                    // SAFETY: the control buffer is CMSG_SPACE(8 * sizeof(int)) bytes, room for one
                    // header and up to eight ints, so the first header and its data lie inside it.
                    cmsghdr* cmsg = LibC.CMSG_FIRSTHDR(&header);
                    cmsg->cmsg_level = LibC.SOL_SOCKET;
                    cmsg->cmsg_type = LibC.SCM_RIGHTS;
                    // Tmds.LibC 0.5.0's CMSG_LEN rounds up like CMSG_SPACE: compute the exact length.
                    cmsg->cmsg_len = (socklen_t)(sizeof(cmsghdr) + (sizeof(int) * fds.Length));
                    int* slots = (int*)LibC.CMSG_DATA(cmsg);
                    for (int i = 0; i < fds.Length; i++)
                    {
                        // SAFETY: slot i < fds.Length <= 8 lies in the control data sized above.
                        slots[i] = (int)fds[i].DangerousGetHandle();
                    }
                }

                long sent;
                do
                {
                    // SAFETY: the frame is pinned, the control buffer is on the stack and sized with
                    // CMSG_SPACE, and every handle is kept open by the references taken above.
                    sent = LibC.sendmsg((int)socket.DangerousGetHandle(), &header, LibC.MSG_NOSIGNAL);
                }
                while (sent < 0 && LibC.errno == LibC.EINTR);

                if (sent != frame.Length)
                {
                    throw new IOException($"sendmsg of a {frame.Length}-byte message returned {sent} (errno {LibC.errno}).");
                }
            }
        }
        finally
        {
            if (addedSocket)
            {
                socket.DangerousRelease();
            }

            for (int i = 0; i < fds.Length; i++)
            {
                if (added[i])
                {
                    fds[i].DangerousRelease();
                }
            }
        }
    }

    /// <summary>A msghdr for one buffer and one control buffer; <paramref name="iov"/> must outlive its use.</summary>
    private static unsafe msghdr MessageHeader(iovec* iov, byte* data, int length, byte* control, int controlLength)
    {
        // SAFETY: iov points at a caller's local iovec (the caller keeps it alive while the header is used).
        iov->iov_base = data;
        iov->iov_len = (size_t)length;
        msghdr header = default;
        header.msg_iov = iov;
        header.msg_iovlen = 1;
        header.msg_control = control;
        header.msg_controllen = (socklen_t)controlLength;
        return header;
    }

    private unsafe int ReceiveWithFds(Span<byte> into, VhostUserMessage message)
    {
        const int ControlSize = 256; // CMSG_SPACE(8 * sizeof(int)) is 48; room for a second header
        byte* control = stackalloc byte[ControlSize];
        fixed (byte* data = into)
        {
            iovec iov = default;
            msghdr header = MessageHeader(&iov, data, into.Length, control, ControlSize);

            long received;
            SafeSocketHandle handle = _socket.SafeHandle;
            bool added = false;
            try
            {
                handle.DangerousAddRef(ref added);
                do
                {
                    // SAFETY: iov points at the pinned destination span, control at a stack buffer of
                    // ControlSize bytes; the kernel writes within the lengths given; the socket is
                    // kept open by the reference taken above.
                    received = LibC.recvmsg((int)handle.DangerousGetHandle(), &header, LibC.MSG_CMSG_CLOEXEC);
                }
                while (received < 0 && LibC.errno == LibC.EINTR);
            }
            finally
            {
                if (added)
                {
                    handle.DangerousRelease();
                }
            }

            if (received < 0)
            {
                int errno = LibC.errno;
                if (errno == LibC.ECONNRESET)
                {
                    return 0;
                }

                if (errno == LibC.EAGAIN)
                {
                    // Only a socket with SO_RCVTIMEO (the front end's) gets here: the peer went quiet.
                    throw new TimeoutException("no vhost-user message within the socket's receive timeout");
                }

                throw new IOException($"recvmsg failed (errno {errno}).");
            }

            // Take ownership of every fd first, so none leaks whatever is wrong with the message.
            bool extraFds = false;
            for (cmsghdr* cmsg = LibC.CMSG_FIRSTHDR(&header); cmsg != null; cmsg = LibC.CMSG_NXTHDR(&header, cmsg))
            {
                if (cmsg->cmsg_level != LibC.SOL_SOCKET || cmsg->cmsg_type != LibC.SCM_RIGHTS)
                {
                    continue;
                }

                // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return only headers that lie inside the
                // msg_controllen bytes the kernel filled, and cmsg_len bounds this header's data.
                int count = (int)(((uint)cmsg->cmsg_len - (uint)LibC.CMSG_LEN(0)) / sizeof(int));
                int* fds = (int*)LibC.CMSG_DATA(cmsg);
                for (int i = 0; i < count; i++)
                {
                    var fd = new SafeFileHandle(fds[i], ownsHandle: true);
                    if (message.FdCount < VhostUserMessage.MaxFds)
                    {
                        message.AddFd(fd);
                    }
                    else
                    {
                        fd.Dispose();
                        extraFds = true;
                    }
                }
            }

            if (extraFds || (header.msg_flags & LibC.MSG_CTRUNC) != 0)
            {
                throw new VhostUserProtocolException($"more than {VhostUserMessage.MaxFds} file descriptors in one message");
            }

            return (int)received;
        }
    }
}
