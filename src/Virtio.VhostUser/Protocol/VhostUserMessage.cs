using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using Microsoft.Win32.SafeHandles;

namespace Virtio.VhostUser.Protocol;

/// <summary>
/// One received vhost-user message: the 12-byte header (request, flags, size), the payload and the
/// file descriptors that came with it. Reused for every message of a connection; the fds belong to
/// it until taken with <see cref="TakeFd"/> and are closed by <see cref="ClearFds"/>.
/// </summary>
internal sealed class VhostUserMessage
{
    /// <summary>Bytes in the header.</summary>
    public const int HeaderSize = 12;

    /// <summary>The largest payload accepted (the biggest defined one, a 256-byte config access, is 268).</summary>
    public const int MaxPayloadSize = 4096;

    /// <summary>The most fds one message may carry (a full SET_MEM_TABLE).</summary>
    public const int MaxFds = 8;

    /// <summary>Flags: the protocol version in bits 0-1.</summary>
    public const uint VersionMask = 0x3;

    /// <summary>Flags: the version this back end speaks.</summary>
    public const uint Version = 0x1;

    /// <summary>Flags: set on every back-end reply.</summary>
    public const uint ReplyFlag = 0x4;

    /// <summary>Flags: the front end asks for a REPLY_ACK status.</summary>
    public const uint NeedReplyFlag = 0x8;

    private readonly List<SafeFileHandle?> _fds = new(MaxFds);

    public VhostUserRequest Request { get; set; }

    public uint Flags { get; set; }

    public int Size { get; set; }

    public byte[] Payload { get; } = new byte[MaxPayloadSize];

    public int FdCount => _fds.Count;

    public bool NeedsReply => (Flags & NeedReplyFlag) != 0;

    public ReadOnlySpan<byte> PayloadSpan => Payload.AsSpan(0, Size);

    public uint ReadUInt32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(Payload.AsSpan(offset, 4));

    public ulong ReadUInt64(int offset) => BinaryPrimitives.ReadUInt64LittleEndian(Payload.AsSpan(offset, 8));

    public void AddFd(SafeFileHandle fd) => _fds.Add(fd);

    /// <summary>Fd <paramref name="index"/>, still owned by the message.</summary>
    public SafeFileHandle PeekFd(int index) => _fds[index] ?? throw new InvalidOperationException($"fd {index} was already taken.");

    /// <summary>Hands fd <paramref name="index"/> to the caller, who then owns it.</summary>
    public SafeFileHandle TakeFd(int index)
    {
        SafeFileHandle fd = _fds[index] ?? throw new InvalidOperationException($"fd {index} was already taken.");
        _fds[index] = null;
        return fd;
    }

    /// <summary>Closes every fd nobody took.</summary>
    public void ClearFds()
    {
        foreach (SafeFileHandle? fd in _fds)
        {
            fd?.Dispose();
        }

        _fds.Clear();
    }
}
