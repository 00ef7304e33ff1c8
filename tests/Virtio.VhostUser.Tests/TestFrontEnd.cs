using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Threading;
using System;
using Tmds.Linux;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// Plays a vhost-user front end (what QEMU does) in process: memfd guest memory shared by fd, one
/// <see cref="GuestDriver"/> per ring, kick and call eventfds, raw messages for the bad cases.
/// </summary>
internal sealed unsafe class TestFrontEnd : IDisposable
{
    /// <summary>The front end's "user address" of guest address 0 (any value works, as long as it is consistent).</summary>
    public const ulong UserBase = 0x7f00_0000_0000;

    public const ulong ProtocolFeaturesBit = 1ul << 30;
    public const ulong ReplyAck = 1ul << 3;
    public const ulong AllProtocolFeatures = (1ul << 0) | (1ul << 3) | (1ul << 9) | (1ul << 12) | (1ul << 15);
    public const ulong MemorySize = 16 << 20;
    private const ulong RingArea = 0x10000;

    private readonly Socket _socket;

    public TestFrontEnd(string socketPath, GuestMemoryRegion region)
    {
        _socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _socket.Connect(new UnixDomainSocketEndPoint(socketPath));
        _socket.ReceiveTimeout = 15000;
        Region = region;
    }

    public GuestMemoryRegion Region { get; }

    public List<GuestDriver> Drivers { get; } = [];

    public List<EventFd> Kicks { get; } = [];

    public List<EventFd> Calls { get; } = [];

    /// <summary>Creates the shared guest memory (a memfd) the drivers lay their rings in.</summary>
    public static GuestMemory CreateMemory() => new([GuestMemoryRegion.CreateMemfd(new GuestAddress(0), MemorySize, "vhost-test-guest")]);

    /// <summary>Lays out <paramref name="queues"/> rings in <paramref name="memory"/> (one 64 KiB ring area and 1 MiB of buffers each).</summary>
    public static List<GuestDriver> CreateDrivers(GuestMemory memory, int queues, ushort queueSize = 64, bool eventIdx = true)
    {
        var drivers = new List<GuestDriver>();
        for (int i = 0; i < queues; i++)
        {
            drivers.Add(new GuestDriver(memory, new GuestAddress(RingArea * (ulong)(i + 1)), queueSize, (4ul << 20) + ((ulong)i << 20), 4096, eventIdx, indirect: false, heapSize: 1 << 20));
        }

        return drivers;
    }

    public void Send(uint request, ReadOnlySpan<byte> payload, ReadOnlySpan<int> fds = default, uint flags = 1)
    {
        byte[] frame = new byte[12 + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, request);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(8), (uint)payload.Length);
        payload.CopyTo(frame.AsSpan(12));
        SendRaw(frame, fds);
    }

    public void SendRaw(ReadOnlySpan<byte> bytes, ReadOnlySpan<int> fds = default, bool shutdownAfter = false)
    {
        byte* control = stackalloc byte[256];
        fixed (byte* data = bytes)
        fixed (int* fdData = fds)
        {
            iovec iov = default;
            iov.iov_base = data;
            iov.iov_len = (size_t)bytes.Length;
            msghdr header = default;
            header.msg_iov = &iov;
            header.msg_iovlen = 1;
            if (fds.Length > 0)
            {
                header.msg_control = control;
                header.msg_controllen = (socklen_t)(int)LibC.CMSG_SPACE(sizeof(int) * fds.Length);
                cmsghdr* cmsg = LibC.CMSG_FIRSTHDR(&header);
                cmsg->cmsg_level = LibC.SOL_SOCKET;
                cmsg->cmsg_type = LibC.SCM_RIGHTS;
                // Tmds.LibC 0.5.0 CMSG_LEN rounds up like CMSG_SPACE: the kernel would then read a zeroed slot as fd 0.
                cmsg->cmsg_len = (socklen_t)(sizeof(cmsghdr) + (sizeof(int) * fds.Length));
                Buffer.MemoryCopy(fdData, LibC.CMSG_DATA(cmsg), sizeof(int) * fds.Length, sizeof(int) * fds.Length);
            }

            long sent = LibC.sendmsg((int)_socket.Handle, &header, LibC.MSG_NOSIGNAL);
            if (sent != bytes.Length)
            {
                throw new IOException($"sendmsg sent {sent} of {bytes.Length} (errno {LibC.errno})");
            }
        }

        if (shutdownAfter)
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
    }

    public byte[] Receive(uint request)
    {
        byte[] header = ReadExactly(12);
        Assert.Equal(request, BinaryPrimitives.ReadUInt32LittleEndian(header));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4)));
        return ReadExactly((int)BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)));
    }

    /// <summary>GET_INFLIGHT_FD for <paramref name="queues"/> queues of <paramref name="queueSize"/>: the region's size and fd.</summary>
    public (ulong Size, int Fd) GetInFlightFd(ushort queues, ushort queueSize)
    {
        byte[] payload = new byte[24];
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(16), queues);
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(18), queueSize);
        Send(31, payload);
        byte[] reply = new byte[12 + 24];
        byte* control = stackalloc byte[64];
        int fd = -1;
        fixed (byte* data = reply)
        {
            iovec iov = default;
            iov.iov_base = data;
            iov.iov_len = (size_t)reply.Length;
            msghdr header = default;
            header.msg_iov = &iov;
            header.msg_iovlen = 1;
            header.msg_control = control;
            header.msg_controllen = (socklen_t)64;
            long got = LibC.recvmsg((int)_socket.Handle, &header, LibC.MSG_CMSG_CLOEXEC | LibC.MSG_WAITALL);
            Assert.Equal(reply.Length, got);
            cmsghdr* cmsg = LibC.CMSG_FIRSTHDR(&header);
            Assert.True(cmsg != null, "no fd in the GET_INFLIGHT_FD reply");
            fd = *(int*)LibC.CMSG_DATA(cmsg);
        }

        Assert.Equal(31u, BinaryPrimitives.ReadUInt32LittleEndian(reply));
        return (BinaryPrimitives.ReadUInt64LittleEndian(reply.AsSpan(12)), fd);
    }

    public void SetInFlightFd(ulong size, int fd, ushort queues, ushort queueSize)
    {
        byte[] payload = new byte[24];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, size);
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(16), queues);
        BinaryPrimitives.WriteUInt16LittleEndian(payload.AsSpan(18), queueSize);
        Send(32, payload, [fd]);
    }

    public ulong Call64(uint request)
    {
        Send(request, []);
        return BinaryPrimitives.ReadUInt64LittleEndian(Receive(request));
    }

    public void Send64(uint request, ulong value, ReadOnlySpan<int> fds = default) => Send(request, U64(value), fds);

    public void SendState(uint request, uint index, uint num) => Send(request, State(index, num));

    /// <summary>True when the server closed the connection (end of stream, or a reset) within the receive timeout.</summary>
    public bool IsClosedByPeer()
    {
        byte[] buffer = new byte[64];
        try
        {
            while (true)
            {
                int n = _socket.Receive(buffer);
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (SocketException exception) when (exception.SocketErrorCode == SocketError.ConnectionReset)
        {
            // The server closed with bytes of ours still unread (a payload it refused to read).
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>
    /// The start-up sequence QEMU sends: features, protocol features, owner, memory table, and for
    /// each ring num, base, addresses, kick, call, enable.
    /// </summary>
    public ulong Start(List<GuestDriver> drivers, ulong featureMask = ulong.MaxValue, ushort[]? bases = null, bool addMemReg = false, Action? beforeRings = null, ulong moreProtocolFeatures = 0)
    {
        ulong offered = Call64(1);
        Assert.NotEqual(0ul, offered & ProtocolFeaturesBit);
        ulong protocol = Call64(15);
        Send64(16, protocol & (AllProtocolFeatures | moreProtocolFeatures));
        Send(3, []);
        ulong features = offered & featureMask;
        Send64(2, features);
        if (addMemReg)
        {
            AddMemReg();
        }
        else
        {
            SetMemTable();
        }

        beforeRings?.Invoke();

        for (int i = 0; i < drivers.Count; i++)
        {
            StartRing(drivers[i], (uint)i, bases?[i] ?? 0);
        }

        Drivers.AddRange(drivers);
        return features;
    }

    public void SetMemTable()
    {
        byte[] table = new byte[8 + 32];
        BinaryPrimitives.WriteUInt32LittleEndian(table, 1);
        WriteRegion(table.AsSpan(8), Region.Start.Value, Region.Size, UserBase + Region.Start.Value, 0);
        Send(5, table, [(int)Region.FileDescriptor!.DangerousGetHandle()]);
    }

    /// <summary>ADD_MEM_REG of the whole shared memory, as QEMU does with CONFIGURE_MEM_SLOTS.</summary>
    public void AddMemReg(uint flags = 1)
    {
        Send(37, SingleRegion(), [(int)Region.FileDescriptor!.DangerousGetHandle()], flags);
    }

    /// <summary>
    /// SET_MEM_TABLE (5) of one region or ADD_MEM_REG (37): <paramref name="size"/> bytes of
    /// <paramref name="fd"/> from offset 0 at <paramref name="guest"/> (user address UserBase + guest).
    /// </summary>
    public void SendRegion(uint request, System.Runtime.InteropServices.SafeHandle fd, ulong guest, ulong size)
    {
        // SET_MEM_TABLE: count 1 and padding, then the region; ADD_MEM_REG: 8 bytes of padding, then the region.
        byte[] payload = new byte[8 + 32];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, request == 5 ? 1u : 0u);
        WriteRegion(payload.AsSpan(8), guest, size, UserBase + guest, 0);
        Send(request, payload, [(int)fd.DangerousGetHandle()]);
    }

    public byte[] SingleRegion()
    {
        byte[] region = new byte[40];
        WriteRegion(region.AsSpan(8), Region.Start.Value, Region.Size, UserBase + Region.Start.Value, 0);
        return region;
    }

    public void StartRing(GuestDriver driver, uint index, ushort ringBase) =>
        StartRing(index, driver.QueueSize, ringBase, driver.DescriptorTable, driver.UsedRing, driver.AvailRing);

    /// <summary>
    /// Ring <paramref name="index"/> as a packed ring of <paramref name="driver"/>: num, the 32-bit base,
    /// addresses (descriptor ring, device event area in the used field, driver event area in the avail
    /// field), new kick and call fds, enable.
    /// </summary>
    public void StartPackedRing(PackedGuestDriver driver, uint index, uint ringBase) =>
        StartRing(index, driver.QueueSize, ringBase, driver.DescriptorRing, driver.DeviceEvent, driver.DriverEvent);

    private void StartRing(uint index, ushort size, uint ringBase, GuestAddress descriptors, GuestAddress used, GuestAddress avail)
    {
        SendState(8, index, size);
        SendState(10, index, ringBase);
        byte[] addr = new byte[40];
        BinaryPrimitives.WriteUInt32LittleEndian(addr, index);
        BinaryPrimitives.WriteUInt64LittleEndian(addr.AsSpan(8), UserBase + descriptors.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(addr.AsSpan(16), UserBase + used.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(addr.AsSpan(24), UserBase + avail.Value);
        Send(9, addr);
        var kick = EventFd.Create();
        var call = EventFd.Create();
        Kicks.Add(kick);
        Calls.Add(call);
        Send64(12, index, [kick.Fd]);
        Send64(13, index, [call.Fd]);
        SendState(18, index, 1);
    }

    /// <summary>The handshake of <see cref="Start"/> without the rings: features (masked), protocol features, owner, memory table.</summary>
    public ulong Negotiate(ulong featureMask = ulong.MaxValue)
    {
        ulong offered = Call64(1);
        ulong protocol = Call64(15);
        Send64(16, protocol & AllProtocolFeatures);
        Send(3, []);
        ulong features = offered & featureMask;
        Send64(2, features);
        SetMemTable();
        return features;
    }

    /// <summary>GET_VRING_BASE: stops the ring and returns where it stopped.</summary>
    public uint GetVringBase(uint index)
    {
        SendState(11, index, 0);
        byte[] reply = Receive(11);
        Assert.Equal(index, BinaryPrimitives.ReadUInt32LittleEndian(reply));
        return BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(4));
    }

    /// <summary>Waits (bounded) until the device put something on ring <paramref name="queue"/>'s used ring, signalling its call fd.</summary>
    public (ushort Head, uint Length) WaitUsed(int queue, TimeSpan? timeout = null)
    {
        long deadline = Environment.TickCount64 + (long)(timeout ?? TimeSpan.FromSeconds(10)).TotalMilliseconds;
        while (Environment.TickCount64 < deadline)
        {
            if (Drivers[queue].TryGetUsed(out ushort head, out uint length))
            {
                return (head, length);
            }

            Thread.Sleep(1);
        }

        throw new TimeoutException($"ring {queue}: nothing used in time");
    }

    /// <summary>Waits, bounded, until <paramref name="fd"/> is readable (poll(2) on the fd itself).</summary>
    public static bool WaitReadable(int fd, TimeSpan timeout)
    {
        pollfd entry = default;
        entry.fd = fd;
        entry.events = (short)LibC.POLLIN;
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        int ready;
        do
        {
            ready = LibC.poll(&entry, 1, (int)Math.Max(0, deadline - Environment.TickCount64));
        }
        while (ready < 0 && LibC.errno == LibC.EINTR);

        return ready > 0;
    }

    public static byte[] U64(ulong value)
    {
        byte[] b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        return b;
    }

    public static byte[] State(uint index, uint num)
    {
        byte[] b = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(b, index);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), num);
        return b;
    }

    public static void WriteRegion(Span<byte> into, ulong guest, ulong size, ulong user, ulong offset)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(into, guest);
        BinaryPrimitives.WriteUInt64LittleEndian(into[8..], size);
        BinaryPrimitives.WriteUInt64LittleEndian(into[16..], user);
        BinaryPrimitives.WriteUInt64LittleEndian(into[24..], offset);
    }

    private byte[] ReadExactly(int length)
    {
        byte[] buffer = new byte[length];
        int read = 0;
        while (read < length)
        {
            int n = _socket.Receive(buffer, read, length - read, SocketFlags.None);
            if (n == 0)
            {
                throw new IOException("the server closed the connection");
            }

            read += n;
        }

        return buffer;
    }

    public void Dispose()
    {
        _socket.Dispose();
        foreach (EventFd fd in Kicks)
        {
            fd.Dispose();
        }

        foreach (EventFd fd in Calls)
        {
            fd.Dispose();
        }
    }
}
