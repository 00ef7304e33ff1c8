using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.VhostUser.Interop;
using Virtio.VhostUser.Protocol;

namespace Virtio.VhostUser.FrontEnd;

/// <summary>
/// The front-end (VMM) side of a vhost-user connection (QEMU docs/interop/vhost-user.rst): connects
/// to a back end's Unix socket (qemu-storage-daemon, virtiofsd, <see cref="VhostUserServer"/>),
/// negotiates features, shares guest memory by fd and hands over split rings with their kick and
/// call eventfds. It speaks the protocol only; driving the rings is the caller's job.
/// </summary>
/// <remarks>
/// One thread at a time: each method sends one request and, where the protocol has one, waits
/// (bounded by <see cref="VhostUserFrontEndOptions.ReplyTimeout"/>) for its reply. Once
/// <see cref="VhostUserProtocolFeatures.ReplyAck"/> is in use every request without a reply of its
/// own asks for a status, and a non-zero status throws <see cref="VhostUserBackEndException"/>.
/// The usual order is <see cref="Negotiate"/>, <see cref="GetConfig"/>, <see cref="SetMemoryTable"/>,
/// then <see cref="StartVring"/> per ring, and <see cref="GetVringBase"/> to stop one.
/// </remarks>
public sealed class VhostUserFrontEnd : IDisposable
{
    /// <summary>VHOST_USER_F_PROTOCOL_FEATURES (feature bit 30): GET/SET_PROTOCOL_FEATURES exist, rings start disabled.</summary>
    public const ulong ProtocolFeaturesBit = 1ul << 30;

    /// <summary>VHOST_F_LOG_ALL (bit 26 of the feature word): acknowledged with <see cref="SetFeatures"/>, the back end logs its guest-memory writes in the <see cref="SetLogBase"/> bitmap.</summary>
    public const ulong LogAllBit = 1ul << 26;

    private const int SoPeerCred = 17; // SO_PEERCRED: struct ucred { pid, uid, gid }
    private const int SolSocket = 1;

    private readonly Socket _socket;
    private readonly UnixMessageChannel _channel;
    private readonly VhostUserMessage _reply = new();
    private readonly byte[] _payload = new byte[VhostUserMessage.MaxPayloadSize];
    private readonly ILogger? _logger;
    private GuestMemory? _memory;
    private bool _disposed;

    private VhostUserFrontEnd(Socket socket, ILogger? logger)
    {
        _socket = socket;
        _channel = new UnixMessageChannel(socket);
        _logger = logger;
        PeerProcessId = ReadPeerProcessId(socket);
    }

    /// <summary>The back end's process id from SO_PEERCRED at connect time, or -1 if the kernel gave none.</summary>
    public int PeerProcessId { get; }

    /// <summary>The protocol features in use (after <see cref="SetProtocolFeatures"/>); <see cref="VhostUserProtocolFeatures.None"/> before.</summary>
    public VhostUserProtocolFeatures ProtocolFeatures { get; private set; }

    /// <summary>The feature bits acknowledged with <see cref="SetFeatures"/>; 0 before.</summary>
    public ulong Features { get; private set; }

    /// <summary>
    /// Connects to the back end listening on <paramref name="socketPath"/>, retrying (bounded by
    /// <see cref="VhostUserFrontEndOptions.ConnectTimeout"/>) while the socket is missing or refuses.
    /// Any thread may call it.
    /// </summary>
    /// <param name="socketPath">The back end's Unix socket.</param>
    /// <param name="options">Timeouts and logging; defaults when null.</param>
    /// <returns>A connected front end that owns the socket.</returns>
    /// <exception cref="SocketException">No connection within the timeout.</exception>
    public static VhostUserFrontEnd Connect(string socketPath, VhostUserFrontEndOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(socketPath);
        options ??= new VhostUserFrontEndOptions();
        long deadline = Stopwatch.GetTimestamp() + (long)(options.ConnectTimeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                socket.Connect(new UnixDomainSocketEndPoint(socketPath));
                socket.ReceiveTimeout = (int)Math.Clamp(options.ReplyTimeout.TotalMilliseconds, 1, int.MaxValue);
                var frontEnd = new VhostUserFrontEnd(socket, options.Logger);
                if (options.Logger is { } logger)
                {
                    FrontEndLog.Connected(logger, socketPath, frontEnd.PeerProcessId);
                }

                return frontEnd;
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline)
            {
                socket.Dispose();
                Thread.Sleep(20);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    /// <summary>GET_FEATURES: the virtio and vhost-user feature bits the back end offers.</summary>
    /// <returns>The offered bits.</returns>
    public ulong GetFeatures() => CallUInt64(VhostUserRequest.GetFeatures);

    /// <summary>SET_FEATURES: acknowledges <paramref name="features"/> (a subset of <see cref="GetFeatures"/>; keep <see cref="ProtocolFeaturesBit"/> to use protocol features).</summary>
    /// <param name="features">The bits to acknowledge.</param>
    public void SetFeatures(ulong features)
    {
        SendUInt64(VhostUserRequest.SetFeatures, features);
        Features = features;
    }

    /// <summary>GET_PROTOCOL_FEATURES: the protocol features the back end offers (only when it offered <see cref="ProtocolFeaturesBit"/>), unknown bits included.</summary>
    /// <returns>The offered protocol features.</returns>
    public VhostUserProtocolFeatures GetProtocolFeatures() => (VhostUserProtocolFeatures)CallUInt64(VhostUserRequest.GetProtocolFeatures);

    /// <summary>SET_PROTOCOL_FEATURES: uses <paramref name="features"/> from now on (REPLY_ACK applies to the next request).</summary>
    /// <param name="features">A subset of <see cref="GetProtocolFeatures"/>.</param>
    public void SetProtocolFeatures(VhostUserProtocolFeatures features)
    {
        SendUInt64(VhostUserRequest.SetProtocolFeatures, (ulong)features);
        ProtocolFeatures = features;
    }

    /// <summary>SET_OWNER: claims the back end's device for this connection (once, before the memory table).</summary>
    public void SetOwner() => Send(VhostUserRequest.SetOwner, 0, []);

    /// <summary>GET_QUEUE_NUM: how many queues the device has (needs <see cref="VhostUserProtocolFeatures.MultiQueue"/> in use).</summary>
    /// <returns>The queue count.</returns>
    public int GetQueueNum()
    {
        RequireProtocolFeature(VhostUserProtocolFeatures.MultiQueue, "GET_QUEUE_NUM");
        return (int)Math.Min(CallUInt64(VhostUserRequest.GetQueueNum), int.MaxValue);
    }

    /// <summary>
    /// The start-up handshake QEMU does: GET_FEATURES, GET/SET_PROTOCOL_FEATURES (when offered),
    /// GET_QUEUE_NUM (when MQ is in use), SET_OWNER, SET_FEATURES with what is both offered and wanted.
    /// </summary>
    /// <param name="wantedFeatures">The feature bits the caller's driver understands; <see cref="ProtocolFeaturesBit"/> is added when offered.</param>
    /// <param name="wantedProtocolFeatures">The protocol features to use when offered.</param>
    /// <returns>What was settled.</returns>
    public VhostUserNegotiation Negotiate(ulong wantedFeatures, VhostUserProtocolFeatures wantedProtocolFeatures)
    {
        ulong offered = GetFeatures();
        VhostUserProtocolFeatures protocol = VhostUserProtocolFeatures.None;
        if ((offered & ProtocolFeaturesBit) != 0)
        {
            protocol = GetProtocolFeatures() & wantedProtocolFeatures;
            SetProtocolFeatures(protocol);
        }

        int? queues = (protocol & VhostUserProtocolFeatures.MultiQueue) != 0 ? GetQueueNum() : null;
        SetOwner();
        ulong features = offered & (wantedFeatures | ProtocolFeaturesBit);
        SetFeatures(features);
        return new VhostUserNegotiation(offered, features, protocol, queues);
    }

    /// <summary>
    /// SET_MEM_TABLE: shares every region of <paramref name="memory"/> by its fd (memfd or file;
    /// anonymous memory cannot be shared). Its host addresses are the "user addresses" the rings are
    /// given in, so <paramref name="memory"/> must outlive the connection.
    /// </summary>
    /// <param name="memory">One to eight fd-backed regions.</param>
    /// <exception cref="ArgumentException">A region has no fd, or there are more than eight.</exception>
    public void SetMemoryTable(GuestMemory memory)
    {
        ArgumentNullException.ThrowIfNull(memory);
        int count = memory.Regions.Count;
        if (count is 0 or > VhostUserPayloadDecoder.MemTableMaxRegions)
        {
            throw new ArgumentException($"SET_MEM_TABLE carries 1 to {VhostUserPayloadDecoder.MemTableMaxRegions} regions; the memory has {count}.", nameof(memory));
        }

        Span<MemoryRegionDescription> regions = stackalloc MemoryRegionDescription[count];
        var fds = new SafeHandle[count];
        for (int i = 0; i < count; i++)
        {
            GuestMemoryRegion region = memory.Regions[i];
            fds[i] = region.FileDescriptor ?? throw new ArgumentException($"Region {i} at {region.Start} has no file descriptor: create it with GuestMemoryRegion.CreateMemfd.", nameof(memory));
            regions[i] = new MemoryRegionDescription(region.Start.Value, region.Size, (ulong)region.HostAddress, region.FileOffset);
        }

        Send(VhostUserRequest.SetMemTable, VhostUserPayloadEncoder.WriteMemoryTable(_payload, regions), fds);
        _memory = memory;
    }

    /// <summary>SET_VRING_NUM: ring <paramref name="queueIndex"/> has <paramref name="size"/> entries.</summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="size">The queue size.</param>
    public void SetVringNum(ushort queueIndex, ushort size) => SendState(VhostUserRequest.SetVringNum, queueIndex, size);

    /// <summary>SET_VRING_BASE: the back end starts reading the available ring at <paramref name="nextAvail"/>.</summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="nextAvail">The first avail index to serve (0 for a new ring).</param>
    public void SetVringBase(ushort queueIndex, ushort nextAvail) => SendState(VhostUserRequest.SetVringBase, queueIndex, nextAvail);

    /// <summary>
    /// SET_VRING_ADDR: where ring <paramref name="queueIndex"/>'s parts lie, given as guest addresses in
    /// the memory of <see cref="SetMemoryTable"/> and sent as its host ("user") addresses.
    /// </summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="descriptorTable">Guest address of the descriptor table.</param>
    /// <param name="availRing">Guest address of the available ring.</param>
    /// <param name="usedRing">Guest address of the used ring.</param>
    /// <exception cref="InvalidOperationException">No memory table was sent yet.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An address is outside the memory.</exception>
    public void SetVringAddress(ushort queueIndex, GuestAddress descriptorTable, GuestAddress availRing, GuestAddress usedRing) =>
        SetVringAddress(queueIndex, descriptorTable, availRing, usedRing, usedRingLog: null);

    /// <summary>
    /// SET_VRING_ADDR with VHOST_VRING_F_LOG when <paramref name="usedRingLog"/> is given: the back end
    /// logs its used-ring writes at that guest address (QEMU gives the used ring's own). A running ring
    /// takes it when the addresses are the ones it runs on.
    /// </summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="descriptorTable">Guest address of the descriptor table.</param>
    /// <param name="availRing">Guest address of the available ring.</param>
    /// <param name="usedRing">Guest address of the used ring.</param>
    /// <param name="usedRingLog">Where the used ring's writes are logged, or null for no VHOST_VRING_F_LOG.</param>
    /// <exception cref="InvalidOperationException">No memory table was sent yet.</exception>
    /// <exception cref="ArgumentOutOfRangeException">An address is outside the memory.</exception>
    public void SetVringAddress(ushort queueIndex, GuestAddress descriptorTable, GuestAddress availRing, GuestAddress usedRing, GuestAddress? usedRingLog)
    {
        uint flags = usedRingLog.HasValue ? VringAddress.FlagLog : 0;
        var address = new VringAddress(queueIndex, flags, UserAddress(descriptorTable), UserAddress(usedRing), UserAddress(availRing), usedRingLog?.Value ?? 0);
        Send(VhostUserRequest.SetVringAddr, VhostUserPayloadEncoder.WriteVringAddress(_payload, address), []);
    }

    /// <summary>
    /// SET_LOG_BASE (needs <see cref="VhostUserProtocolFeatures.LogSharedMemory"/> in use): the dirty-page
    /// bitmap, <paramref name="size"/> bytes at <paramref name="offset"/> in <paramref name="fd"/> (a memfd
    /// sealed against shrinking), one bit per 4 KiB guest page. Waits for the back end's reply: from then
    /// on it marks this bitmap, and no longer an earlier one.
    /// </summary>
    /// <param name="fd">The bitmap's file (a duplicate is sent; the caller keeps and maps it).</param>
    /// <param name="size">Bytes of the bitmap.</param>
    /// <param name="offset">Where it starts in the file (page-aligned).</param>
    public void SetLogBase(SafeHandle fd, ulong size, ulong offset)
    {
        ArgumentNullException.ThrowIfNull(fd);
        RequireProtocolFeature(VhostUserProtocolFeatures.LogSharedMemory, "SET_LOG_BASE");
        BinaryPrimitives.WriteUInt64LittleEndian(_payload, size);
        BinaryPrimitives.WriteUInt64LittleEndian(_payload.AsSpan(8), offset);
        SendRaw(VhostUserRequest.SetLogBase, needReply: false, _payload.AsSpan(0, LogDescription.Size), [fd]);
        Receive(VhostUserRequest.SetLogBase);
        _ = ReplyPayload(VhostUserPayloadDecoder.ReadUInt64);
    }

    /// <summary>SET_LOG_FD: the back end signals <paramref name="fd"/> after it marks the log.</summary>
    /// <param name="fd">The eventfd (a duplicate is sent).</param>
    public void SetLogFd(EventFd fd)
    {
        ArgumentNullException.ThrowIfNull(fd);
        Send(VhostUserRequest.SetLogFd, 0, [fd]);
    }

    /// <summary>SET_VRING_KICK: the back end watches <paramref name="kick"/> for ring <paramref name="queueIndex"/>; null asks it to poll instead.</summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="kick">The eventfd (a duplicate is sent), or null for "no fd".</param>
    public void SetVringKick(ushort queueIndex, EventFd? kick) => SendVringFile(VhostUserRequest.SetVringKick, queueIndex, kick);

    /// <summary>SET_VRING_CALL: the back end signals <paramref name="call"/> for ring <paramref name="queueIndex"/>; null means no interrupts.</summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="call">The eventfd (a duplicate is sent), or null for "no fd".</param>
    public void SetVringCall(ushort queueIndex, EventFd? call) => SendVringFile(VhostUserRequest.SetVringCall, queueIndex, call);

    /// <summary>SET_VRING_ENABLE: starts or pauses ring <paramref name="queueIndex"/> (with <see cref="ProtocolFeaturesBit"/> acknowledged, rings start disabled).</summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="enabled">Whether the back end may process it.</param>
    public void SetVringEnable(ushort queueIndex, bool enabled) => SendState(VhostUserRequest.SetVringEnable, queueIndex, enabled ? 1u : 0u);

    /// <summary>
    /// Hands ring <paramref name="queueIndex"/> to the back end in QEMU's order: SET_VRING_NUM, BASE,
    /// ADDR, KICK, CALL, then SET_VRING_ENABLE when <see cref="ProtocolFeaturesBit"/> was acknowledged.
    /// </summary>
    /// <param name="queueIndex">The ring.</param>
    /// <param name="setup">Its size, addresses, start index and eventfds.</param>
    public void StartVring(ushort queueIndex, VhostUserVringSetup setup)
    {
        ArgumentNullException.ThrowIfNull(setup);
        SetVringNum(queueIndex, setup.Size);
        SetVringBase(queueIndex, setup.NextAvail);
        SetVringAddress(queueIndex, setup.DescriptorTable, setup.AvailRing, setup.UsedRing);
        SetVringKick(queueIndex, setup.Kick);
        SetVringCall(queueIndex, setup.Call);
        if ((Features & ProtocolFeaturesBit) != 0)
        {
            SetVringEnable(queueIndex, enabled: true);
        }
    }

    /// <summary>GET_VRING_BASE: stops ring <paramref name="queueIndex"/> and returns the avail index to resume from.</summary>
    /// <param name="queueIndex">The ring.</param>
    /// <returns>The back end's next avail index.</returns>
    public ushort GetVringBase(ushort queueIndex)
    {
        int size = VhostUserPayloadEncoder.WriteVringState(_payload, new VringState(queueIndex, 0));
        SendAndReceive(VhostUserRequest.GetVringBase, _payload.AsSpan(0, size));
        VringState state = ReplyPayload(VhostUserPayloadDecoder.ReadVringState);
        if (state.Index != queueIndex)
        {
            throw new VhostUserBackEndException($"GET_VRING_BASE: asked for ring {queueIndex}, the reply is for ring {state.Index}");
        }

        return (ushort)state.Num;
    }

    /// <summary>
    /// RESET_DEVICE (needs <see cref="VhostUserProtocolFeatures.ResetDevice"/> in use): the back end
    /// drains and stops every ring and returns the device, the rings' configuration and the in-flight
    /// state to their initial state; the features, the memory table's rings and fds are set up again
    /// before the next start. The connection and its protocol features stay.
    /// </summary>
    public void ResetDevice()
    {
        RequireProtocolFeature(VhostUserProtocolFeatures.ResetDevice, "RESET_DEVICE");
        Send(VhostUserRequest.ResetDevice, 0, []);
    }

    /// <summary>
    /// SET_STATUS (needs <see cref="VhostUserProtocolFeatures.Status"/> in use): tells the back end the
    /// driver's status byte (virtio 1.2 §2.1); 0 stops and resets the device, each ring keeping its position.
    /// </summary>
    /// <param name="status">The status byte.</param>
    public void SetStatus(byte status)
    {
        RequireProtocolFeature(VhostUserProtocolFeatures.Status, "SET_STATUS");
        SendUInt64(VhostUserRequest.SetStatus, status);
    }

    /// <summary>
    /// GET_STATUS (needs <see cref="VhostUserProtocolFeatures.Status"/> in use): the status the back end
    /// holds: the last one set, with DEVICE_NEEDS_RESET (0x40) when the device needs a reset.
    /// </summary>
    /// <returns>The status byte.</returns>
    /// <exception cref="VhostUserBackEndException">The back end answered with more than a byte.</exception>
    public byte GetStatus()
    {
        RequireProtocolFeature(VhostUserProtocolFeatures.Status, "GET_STATUS");
        ulong status = CallUInt64(VhostUserRequest.GetStatus);
        return status <= byte.MaxValue ? (byte)status : throw new VhostUserBackEndException($"GET_STATUS: 0x{status:x} is not a status byte");
    }

    /// <summary>
    /// GET_CONFIG: reads <paramref name="destination"/>.Length bytes of the device configuration
    /// space from <paramref name="offset"/> (needs <see cref="VhostUserProtocolFeatures.Config"/> in use).
    /// </summary>
    /// <param name="offset">Byte offset in the configuration space.</param>
    /// <param name="destination">Where the bytes go; at most 256.</param>
    public void GetConfig(int offset, Span<byte> destination)
    {
        RequireProtocolFeature(VhostUserProtocolFeatures.Config, "GET_CONFIG");
        if (offset < 0 || destination.Length > ConfigSpaceAccess.MaxConfigSize || offset > ConfigSpaceAccess.MaxConfigSize - destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), $"A {destination.Length}-byte read at {offset} is outside the {ConfigSpaceAccess.MaxConfigSize}-byte configuration space.");
        }

        var access = new ConfigSpaceAccess(offset, destination.Length, 0);
        int size = VhostUserPayloadEncoder.WriteConfigRead(_payload, access);
        SendAndReceive(VhostUserRequest.GetConfig, _payload.AsSpan(0, size));
        if (_reply.Size != size)
        {
            throw new VhostUserBackEndException($"GET_CONFIG: reply of {_reply.Size} bytes, expected {size} (the back end failed the read)");
        }

        _reply.PayloadSpan.Slice(ConfigSpaceAccess.HeaderSize, destination.Length).CopyTo(destination);
    }

    /// <summary>
    /// GET_INFLIGHT_FD: asks the back end for a new zeroed in-flight buffer covering
    /// <paramref name="queueCount"/> rings of up to <paramref name="queueSize"/> entries (needs
    /// <see cref="VhostUserProtocolFeatures.InFlightSharedMemory"/> in use; every ring stopped).
    /// </summary>
    /// <param name="queueCount">Rings the buffer tracks, from ring 0.</param>
    /// <param name="queueSize">The largest ring size used (a power of two).</param>
    /// <returns>The buffer; the caller owns it and keeps it for later connections.</returns>
    public VhostUserInFlightBuffer GetInFlightFd(ushort queueCount, ushort queueSize)
    {
        RequireProtocolFeature(VhostUserProtocolFeatures.InFlightSharedMemory, "GET_INFLIGHT_FD");
        new InFlightDescription(0, 0, queueCount, queueSize).Write(_payload);
        SendAndReceive(VhostUserRequest.GetInFlightFd, _payload.AsSpan(0, InFlightDescription.Size));
        if (_reply.Size is not (InFlightDescription.Size or InFlightDescription.Size - 4) || _reply.FdCount != 1)
        {
            throw new VhostUserBackEndException($"GET_INFLIGHT_FD: reply of {_reply.Size} bytes with {_reply.FdCount} fds, expected {InFlightDescription.Size} bytes and one fd");
        }

        ulong mmapSize = _reply.ReadUInt64(0);
        ulong mmapOffset = _reply.ReadUInt64(8);
        if (mmapSize == 0)
        {
            throw new VhostUserBackEndException("GET_INFLIGHT_FD: the back end replied an empty buffer");
        }

        return new VhostUserInFlightBuffer(_reply.TakeFd(0), mmapSize, mmapOffset, queueCount, queueSize);
    }

    /// <summary>SET_INFLIGHT_FD: hands <paramref name="buffer"/> (from an earlier <see cref="GetInFlightFd"/>) to this back end, before the rings start.</summary>
    /// <param name="buffer">The buffer; it stays the caller's (a duplicate of its fd is sent).</param>
    public void SetInFlightFd(VhostUserInFlightBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        RequireProtocolFeature(VhostUserProtocolFeatures.InFlightSharedMemory, "SET_INFLIGHT_FD");
        new InFlightDescription(buffer.MmapSize, buffer.MmapOffset, buffer.QueueCount, buffer.QueueSize).Write(_payload);
        Send(VhostUserRequest.SetInFlightFd, InFlightDescription.Size, [buffer.Fd]);
    }

    /// <summary>Closes the connection (the back end then stops the device). Any thread, once the other calls are done.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _reply.ClearFds();
        _socket.Dispose();
    }

    private static int ReadPeerProcessId(Socket socket)
    {
        Span<byte> credentials = stackalloc byte[12];
        try
        {
            return socket.GetRawSocketOption(SolSocket, SoPeerCred, credentials) >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(credentials) : -1;
        }
        catch (SocketException)
        {
            return -1;
        }
    }

    private void RequireProtocolFeature(VhostUserProtocolFeatures feature, string request)
    {
        if ((ProtocolFeatures & feature) == 0)
        {
            throw new InvalidOperationException($"{request} needs the protocol feature {feature}, which is not in use.");
        }
    }

    private ulong UserAddress(GuestAddress address)
    {
        GuestMemory memory = _memory ?? throw new InvalidOperationException("SET_VRING_ADDR before SET_MEM_TABLE: call SetMemoryTable first.");
        GuestMemoryRegion region = memory.FindRegion(address) ?? throw new ArgumentOutOfRangeException(nameof(address), $"{address} is outside the shared guest memory.");
        return (ulong)region.HostAddress + (address.Value - region.Start.Value);
    }

    private void SendState(VhostUserRequest request, ushort queueIndex, uint num) =>
        Send(request, VhostUserPayloadEncoder.WriteVringState(_payload, new VringState(queueIndex, num)), []);

    private void SendUInt64(VhostUserRequest request, ulong value) =>
        Send(request, VhostUserPayloadEncoder.WriteUInt64(_payload, value), []);

    private void SendVringFile(VhostUserRequest request, ushort queueIndex, EventFd? fd)
    {
        int size = VhostUserPayloadEncoder.WriteVringFile(_payload, new VringFile(queueIndex, fd is null));
        if (fd is null)
        {
            Send(request, size, []);
        }
        else
        {
            Send(request, size, [fd]);
        }
    }

    /// <summary>A request without a reply of its own: with REPLY_ACK in use, asks for and checks the status.</summary>
    private void Send(VhostUserRequest request, int payloadSize, ReadOnlySpan<SafeHandle> fds)
    {
        // REPLY_ACK covers requests after SET_PROTOCOL_FEATURES, not that request itself.
        bool ack = request != VhostUserRequest.SetProtocolFeatures && (ProtocolFeatures & VhostUserProtocolFeatures.ReplyAck) != 0;
        SendRaw(request, ack, _payload.AsSpan(0, payloadSize), fds);
        if (ack)
        {
            Receive(request);
            ulong status = ReplyPayload(VhostUserPayloadDecoder.ReadUInt64);
            if (status != 0)
            {
                throw new VhostUserBackEndException($"{request}: the back end refused it (REPLY_ACK status {status})");
            }
        }
    }

    private ulong CallUInt64(VhostUserRequest request)
    {
        SendAndReceive(request, []);
        return ReplyPayload(VhostUserPayloadDecoder.ReadUInt64);
    }

    private void SendAndReceive(VhostUserRequest request, ReadOnlySpan<byte> payload)
    {
        SendRaw(request, needReply: false, payload, []);
        Receive(request);
    }

    private void SendRaw(VhostUserRequest request, bool needReply, ReadOnlySpan<byte> payload, ReadOnlySpan<SafeHandle> fds)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        uint flags = VhostUserMessage.Version | (needReply ? VhostUserMessage.NeedReplyFlag : 0);
        try
        {
            _channel.Send(request, flags, payload, fds);
        }
        catch (SocketException e)
        {
            throw new VhostUserBackEndException($"{request}: sending failed ({e.SocketErrorCode})", e);
        }

        if (_logger is { } logger)
        {
            FrontEndLog.Sent(logger, request, payload.Length, fds.Length, needReply);
        }
    }

    /// <summary>Decodes the reply with the decoder the back end uses for the same payload; a malformed one is the back end's fault.</summary>
    private T ReplyPayload<T>(Func<VhostUserMessage, T> decode)
    {
        try
        {
            return decode(_reply);
        }
        catch (VhostUserProtocolException e)
        {
            throw new VhostUserBackEndException($"malformed reply: {e.Message}", e);
        }
    }

    private void Receive(VhostUserRequest request)
    {
        try
        {
            _channel.ReceiveReply(_reply, request);
        }
        catch (VhostUserProtocolException e)
        {
            throw new VhostUserBackEndException(e.Message, e);
        }
        catch (IOException e) when (e is not VhostUserBackEndException)
        {
            throw new VhostUserBackEndException($"{request}: receiving the reply failed ({e.Message})", e);
        }
    }
}
