using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Net.NetworkInformation;
using System.Security.Cryptography;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Net;

/// <summary>
/// The virtio-net device (virtio 1.2 §5.1, device ID 1): receiveq1, transmitq1, ...,
/// receiveqN, transmitqN, then the control queue, one <see cref="INetBackend"/> per queue pair.
/// </summary>
/// <remarks>
/// <para>Transmit: each chain (12-byte virtio_net_hdr_v1 + frame) is checked and handed to the backend as
/// guest-memory vectors; a malformed header or a frame of bad length is dropped and counted, and the
/// chain still goes back on the used ring (length 0).</para>
/// <para>Receive: runs when the backend's readiness fd fires on the pair's <see cref="IoThread"/> and when
/// the guest kicks the receive queue. Frames go into guest chains (merged, with num_buffers, under
/// VIRTIO_NET_F_MRG_RXBUF). When the guest has no buffers the device stops watching the backend and keeps
/// the frame it holds: nothing is lost; the guest's next receive kick resumes.</para>
/// <para>Queue processing runs on whichever thread notifies the queue (Core serializes each queue);
/// the transport calls the other members from one thread at a time.</para>
/// </remarks>
public sealed class NetDevice : VirtioDevice, IDisposable
{
    /// <summary>The virtio device ID of a network card.</summary>
    public const ushort NetDeviceId = 1;

    /// <summary>The largest Ethernet frame (without the virtio-net header) the device moves: 64 KiB of GSO payload plus headers.</summary>
    public const int MaxFrameLength = 65536 + 256;

    private const int ConfigSize = 12;
    private const int EthernetHeader = 14;
    private const int MtuOverhead = 18; // Ethernet header + one VLAN tag
    private const int RxBudget = 256;
    private const ushort StatusLinkUp = 1;
    private const byte AckOk = 0, AckErr = 1;
    private const int ControlBufferSize = 8192;

    private static readonly Action<object?> s_onReceiveReady = static state => ((RxQueueState)state!).Device.OnReceiveReady((RxQueueState)state);
    private static readonly Action<object?> s_kickTx = static state => ((TxQueueState)state!).Device.NotifyQueue(((TxQueueState)state).QueueIndex);
    private static readonly Action<object?> s_setEvent = static state => ((ManualResetEventSlim)state!).Set();

    private readonly INetBackend[] _backends;
    private readonly IoThread[] _ioThreads;
    private readonly RxQueueState[] _rx;
    private readonly TxQueueState[] _tx;
    private readonly byte[] _controlBuffer = new byte[ControlBufferSize];
    private readonly ulong _initialMac;
    private readonly ushort _mtu;
    private readonly bool _hasControlQueue;
    private readonly int _pairs;

    private long _mac;
    private volatile bool _linkUp;
    private volatile int _activePairs = 1;
    private volatile RxFilter _filter = RxFilter.Default;
    private int _maxTxFrame = MaxFrameLength;
    private bool _disposed;

    /// <summary>Creates the device. Called by the embedder, on any thread, before the transport is attached.</summary>
    /// <param name="memory">Guest memory.</param>
    /// <param name="backends">One backend per queue pair; more than one offers VIRTIO_NET_F_MQ.</param>
    /// <param name="options">Address, MTU, features and I/O threads; <see cref="NetDeviceOptions.IoThreads"/> is required.</param>
    /// <param name="logger">Where device events go; none by default.</param>
    /// <exception cref="ArgumentException">No backends, no I/O threads, or several pairs without a control queue.</exception>
    public NetDevice(IGuestMemory memory, IReadOnlyList<INetBackend> backends, NetDeviceOptions options, ILogger? logger = null)
        : base(NetDeviceId, OfferedFeatures(backends, options), memory, QueueSizes(backends, options), logger)
    {
        _pairs = backends.Count;
        _backends = new INetBackend[_pairs];
        for (int i = 0; i < _pairs; i++)
        {
            _backends[i] = backends[i] ?? throw new ArgumentException("A backend is null.", nameof(backends));
        }

        _ioThreads = new IoThread[options.IoThreads.Count];
        for (int i = 0; i < _ioThreads.Length; i++)
        {
            _ioThreads[i] = options.IoThreads[i];
        }

        _hasControlQueue = options.ControlQueue;
        _mtu = options.Mtu ?? 0;
        _linkUp = options.LinkUp;
        _initialMac = options.MacAddress is { } mac ? ToMacValue(mac.GetAddressBytes()) : RandomMac();
        _mac = (long)_initialMac;
        _rx = new RxQueueState[_pairs];
        _tx = new TxQueueState[_pairs];
        for (int i = 0; i < _pairs; i++)
        {
            _rx[i] = new RxQueueState(this, i, options.QueueSize, MaxFrameLength);
            _tx[i] = new TxQueueState(this, i, 2 * options.QueueSize);
        }
    }

    /// <summary>Frame, byte and drop counts of this device. Any thread may read them.</summary>
    public NetDeviceCounters Counters { get; } = new();

    /// <summary>Whether the link is up (VIRTIO_NET_S_LINK_UP). Any thread may read it.</summary>
    public bool LinkUp => _linkUp;

    /// <summary>The MAC address the configuration shows (changed by VIRTIO_NET_CTRL_MAC_ADDR_SET). Any thread.</summary>
    public PhysicalAddress MacAddress
    {
        get
        {
            byte[] bytes = new byte[6];
            WriteMac(bytes);
            return new PhysicalAddress(bytes);
        }
    }

    /// <summary>Queue pairs the driver uses (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET); 1 until it says otherwise.</summary>
    public int ActiveQueuePairs => _activePairs;

    /// <summary>Whether the guest asked for promiscuous mode (VIRTIO_NET_CTRL_RX_PROMISC); true until it says otherwise.</summary>
    public bool Promiscuous => _filter.Promiscuous;

    /// <summary>Whether the guest asked for all multicast frames (VIRTIO_NET_CTRL_RX_ALLMULTI).</summary>
    public bool AllMulticast => _filter.AllMulticast;

    /// <summary>Entries in the guest's unicast MAC table (VIRTIO_NET_CTRL_MAC_TABLE_SET).</summary>
    public int UnicastFilterEntries => _filter.UnicastEntries;

    /// <summary>Entries in the guest's multicast MAC table.</summary>
    public int MulticastFilterEntries => _filter.MulticastEntries;

    private int ControlQueueIndex => IsNegotiated(NetFeatures.Mq) ? 2 * _pairs : 2;

    /// <summary>
    /// Sets the link state (VIRTIO_NET_S_LINK_UP) and, when it changed, sends the driver a
    /// configuration-change interrupt. While down, transmitted frames are dropped and nothing is
    /// received. Any thread (the embedder's).
    /// </summary>
    /// <param name="up">The new state.</param>
    public void SetLinkUp(bool up)
    {
        if (_linkUp == up)
        {
            return;
        }

        _linkUp = up;
        Log.LinkChanged(Logger, up ? "up" : "down");
        if (IsLive)
        {
            NotifyConfigChanged();
            if (up)
            {
                for (int i = 0; i < _activePairs; i++)
                {
                    Arm(_rx[i]);
                }
            }
        }
    }

    /// <inheritdoc />
    public override void ReadConfig(int offset, Span<byte> data)
    {
        // virtio 1.2 §5.1.4: mac[6] @0, le16 status @6, le16 max_virtqueue_pairs @8, le16 mtu @10.
        Span<byte> config = stackalloc byte[ConfigSize];
        WriteMac(config);
        BinaryPrimitives.WriteUInt16LittleEndian(config[6..], _linkUp ? StatusLinkUp : (ushort)0);
        BinaryPrimitives.WriteUInt16LittleEndian(config[8..], (ushort)_pairs);
        BinaryPrimitives.WriteUInt16LittleEndian(config[10..], _mtu);
        CopyConfig(config, offset, data);
    }

    /// <summary>Stops watching the backends. Called by the embedder after the device is detached.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (RxQueueState rx in _rx)
        {
            Disarm(rx);
        }
    }

    /// <inheritdoc />
    protected override bool AcceptFeatures(ulong features)
    {
        // virtio 1.2 §5.1.3.1: feature dependencies the driver must respect.
        string? reason = null;
        if ((features & (NetFeatures.GuestTso4 | NetFeatures.GuestTso6)) != 0 && (features & NetFeatures.GuestCsum) == 0)
        {
            reason = "GUEST_TSO4/6 need GUEST_CSUM";
        }
        else if ((features & (NetFeatures.HostTso4 | NetFeatures.HostTso6)) != 0 && (features & NetFeatures.Csum) == 0)
        {
            reason = "HOST_TSO4/6 need CSUM";
        }
        else if ((features & (NetFeatures.CtrlRx | NetFeatures.CtrlMacAddr | NetFeatures.Mq)) != 0 && (features & NetFeatures.CtrlVq) == 0)
        {
            reason = "CTRL_RX, CTRL_MAC_ADDR and MQ need CTRL_VQ";
        }

        if (reason is not null)
        {
            Log.FeatureDependency(Logger, features, reason);
            return false;
        }

        return true;
    }

    /// <inheritdoc />
    protected override void OnDriverOk()
    {
        NetOffloads guest = NetOffloads.None;
        if (IsNegotiated(NetFeatures.GuestCsum))
        {
            guest |= NetOffloads.Checksum;
        }

        if (IsNegotiated(NetFeatures.GuestTso4))
        {
            guest |= NetOffloads.Tso4;
        }

        if (IsNegotiated(NetFeatures.GuestTso6))
        {
            guest |= NetOffloads.Tso6;
        }

        foreach (INetBackend backend in _backends)
        {
            backend.SetReceiveOffloads(guest);
        }

        bool gso = (DriverFeatures & (NetFeatures.HostTso4 | NetFeatures.HostTso6)) != 0;
        _maxTxFrame = IsNegotiated(NetFeatures.Mtu) && !gso ? _mtu + MtuOverhead : MaxFrameLength;
        _activePairs = 1;
        if (_linkUp)
        {
            Arm(_rx[0]);
        }
    }

    /// <inheritdoc />
    protected override void OnReset()
    {
        foreach (RxQueueState rx in _rx)
        {
            Disarm(rx);
        }

        // A readiness handler may still be running on an I/O thread: wait until each is past it,
        // so nothing touches the queues while Core clears them.
        foreach (IoThread thread in _ioThreads)
        {
            Quiesce(thread);
        }

        foreach (RxQueueState rx in _rx)
        {
            rx.Clear();
        }

        _filter = RxFilter.Default;
        Interlocked.Exchange(ref _mac, (long)_initialMac);
        _activePairs = 1;
    }

    /// <inheritdoc />
    protected override void ProcessQueue(SplitVirtqueue queue)
    {
        int index = queue.Index;
        if (_hasControlQueue && index == ControlQueueIndex)
        {
            ProcessControl(queue);
            return;
        }

        int pair = index / 2;
        if (pair >= _activePairs)
        {
            return;
        }

        if ((index & 1) == 0)
        {
            ProcessRx(queue, _rx[pair]);
        }
        else
        {
            ProcessTx(queue, _tx[pair]);
        }
    }

    private void ProcessTx(SplitVirtqueue queue, TxQueueState tx)
    {
        // Bounded: a guest refilling as fast as we drain cannot keep this thread here forever.
        int budget = 2 * queue.Size;
        do
        {
            queue.DisableNotification();
            while (budget > 0 && queue.TryPopChain(out DescriptorChain chain))
            {
                budget--;
                NetSegment[] segments = tx.Segments;
                int count = 0;
                bool overflow = false;
                while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
                {
                    if (buffer.IsWriteOnly || buffer.Length == 0)
                    {
                        continue;
                    }

                    if (count == segments.Length)
                    {
                        overflow = true;
                        continue;
                    }

                    segments[count++] = new NetSegment(buffer.Address, buffer.Length);
                }

                if (chain.Error != QueueError.None)
                {
                    return; // the queue is broken: the device is in DEVICE_NEEDS_RESET
                }

                NetDropReason? drop = overflow ? NetDropReason.MalformedHeader : Transmit(tx, segments.AsSpan(0, count));
                if (drop is { } reason)
                {
                    CountDrop(reason);
                    Log.TxDropped(Logger, queue.Index, reason);
                }

                // Transmit buffers are device-readable only: nothing written.
                queue.AddUsed(chain.HeadIndex, 0);
            }

            PublishUsedAndNotify(queue);
            if (budget == 0)
            {
                if (queue.EnableNotification())
                {
                    _ioThreads[tx.Pair % _ioThreads.Length].Schedule(s_kickTx, tx);
                }

                return;
            }
        }
        while (queue.EnableNotification());
    }

    private NetDropReason? Transmit(TxQueueState tx, Span<NetSegment> segments)
    {
        if (!_linkUp)
        {
            return NetDropReason.LinkDown;
        }

        // The header may be split across buffers: gather its 12 bytes.
        Span<byte> raw = stackalloc byte[VirtioNetHeader.Size];
        int gathered = 0;
        int first = 0;
        int total = 0;
        for (int i = 0; i < segments.Length; i++)
        {
            total += segments[i].Length;
        }

        while (gathered < VirtioNetHeader.Size && first < segments.Length)
        {
            NetSegment segment = segments[first];
            if (!Memory.TryGetSpan(segment.Address, segment.Length, out Span<byte> span))
            {
                return NetDropReason.MalformedHeader;
            }

            int take = Math.Min(span.Length, VirtioNetHeader.Size - gathered);
            span[..take].CopyTo(raw[gathered..]);
            gathered += take;
            if (take == segment.Length)
            {
                first++;
            }
            else
            {
                segments[first] = new NetSegment(new GuestAddress(segment.Address.Value + (ulong)take), segment.Length - take);
            }
        }

        if (gathered < VirtioNetHeader.Size)
        {
            return NetDropReason.MalformedHeader;
        }

        VirtioNetHeader header = VirtioNetHeader.Read(raw);
        int frameLength = total - VirtioNetHeader.Size;
        if (!IsValidTxHeader(header, frameLength))
        {
            return NetDropReason.MalformedHeader;
        }

        int limit = header.GsoType == VirtioNetHeader.GsoNone ? _maxTxFrame : MaxFrameLength;
        if (frameLength < EthernetHeader || frameLength > limit)
        {
            return NetDropReason.BadLength;
        }

        if (!_backends[tx.Pair].TryTransmit(header with { NumBuffers = 0 }, new NetFrameSegments(Memory, segments[first..])))
        {
            return NetDropReason.BackendBusy;
        }

        Counters.Transmitted(frameLength);
        NetMetrics.Frames.Add(1, NetMetrics.Tx);
        NetMetrics.Bytes.Add(frameLength, NetMetrics.Tx);
        return null;
    }

    private bool IsValidTxHeader(in VirtioNetHeader header, int frameLength)
    {
        // virtio 1.2 §5.1.6.2: offloads only as negotiated; a GSO frame needs a partial checksum.
        byte gso = header.GsoType;
        if ((gso & VirtioNetHeader.GsoEcn) != 0 && !IsNegotiated(NetFeatures.HostEcn))
        {
            return false;
        }

        bool gsoOk = (gso & ~VirtioNetHeader.GsoEcn) switch
        {
            VirtioNetHeader.GsoNone => (gso & VirtioNetHeader.GsoEcn) == 0,
            VirtioNetHeader.GsoTcpV4 => IsNegotiated(NetFeatures.HostTso4),
            VirtioNetHeader.GsoTcpV6 => IsNegotiated(NetFeatures.HostTso6),
            VirtioNetHeader.GsoUdp => IsNegotiated(NetFeatures.HostUfo),
            _ => false,
        };
        if (!gsoOk)
        {
            return false;
        }

        bool needsCsum = (header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0;
        if (needsCsum)
        {
            if (!IsNegotiated(NetFeatures.Csum) || header.ChecksumStart + header.ChecksumOffset + 2 > frameLength)
            {
                return false;
            }
        }
        else if (gso != VirtioNetHeader.GsoNone)
        {
            return false;
        }

        return true;
    }

    private void ProcessRx(SplitVirtqueue queue, RxQueueState rx)
    {
        if (!_linkUp)
        {
            Disarm(rx);
            return;
        }

        Arm(rx);
        INetBackend backend = _backends[rx.Pair];
        int budget = RxBudget;
        bool starved;
        while (true)
        {
            starved = false;
            bool delivered = false;
            queue.DisableNotification();
            while (budget > 0)
            {
                if (!rx.HasPending)
                {
                    // At most one frame is read ahead of the guest's buffers, and kept until they come:
                    // an empty ring alone does not stop the watch (that would cost a re-registration per
                    // batch), a frame with nowhere to go does.
                    if (!backend.TryReceive(rx.Staging, out int length, out VirtioNetHeader header))
                    {
                        break;
                    }

                    budget--;
                    if (!TryPrepareRx(rx, length, ref header))
                    {
                        continue;
                    }

                    rx.PendingLength = length;
                    rx.PendingHeader = header;
                    rx.HasPending = true;
                }

                RxResult result = TryDeliver(queue, rx);
                if (result == RxResult.Delivered)
                {
                    delivered = true;
                }
                else if (result == RxResult.NoBuffers)
                {
                    starved = true;
                    break;
                }
                else if (result == RxResult.Broken)
                {
                    return;
                }
            }

            if (delivered)
            {
                PublishUsedAndNotify(queue);
            }

            // Re-enable kicks, then look again: buffers added meanwhile would otherwise wait for a kick that never comes.
            if (queue.EnableNotification() && starved && budget > 0)
            {
                continue;
            }

            break;
        }

        if (starved)
        {
            Counters.Stalled();
            Disarm(rx);
        }
    }

    private bool TryPrepareRx(RxQueueState rx, int length, ref VirtioNetHeader header)
    {
        Span<byte> frame = rx.Staging.AsSpan(0, Math.Min(length, rx.Staging.Length));
        if (IsNegotiated(NetFeatures.CtrlRx) && length >= 6)
        {
            Span<byte> mac = stackalloc byte[6];
            WriteMac(mac);
            if (!_filter.Accepts(frame[..6], mac))
            {
                DropRx(rx, length, NetDropReason.Filtered);
                return false;
            }
        }

        byte gso = (byte)(header.GsoType & ~VirtioNetHeader.GsoEcn);
        bool gsoOk = gso switch
        {
            VirtioNetHeader.GsoNone => true,
            VirtioNetHeader.GsoTcpV4 => IsNegotiated(NetFeatures.GuestTso4),
            VirtioNetHeader.GsoTcpV6 => IsNegotiated(NetFeatures.GuestTso6),
            _ => false,
        };
        if (!gsoOk || ((header.GsoType & VirtioNetHeader.GsoEcn) != 0 && !IsNegotiated(NetFeatures.GuestEcn)))
        {
            DropRx(rx, length, NetDropReason.OffloadNotNegotiated);
            return false;
        }

        byte flags = header.Flags;
        if (!IsNegotiated(NetFeatures.GuestCsum))
        {
            // The guest cannot take a partial checksum: complete it here (virtio 1.2 §5.1.6.4).
            if ((flags & VirtioNetHeader.FlagNeedsCsum) != 0 && !PartialChecksum.TryComplete(frame, header.ChecksumStart, header.ChecksumOffset))
            {
                DropRx(rx, length, NetDropReason.OffloadNotNegotiated);
                return false;
            }

            header = default;
        }
        else
        {
            header = header with { Flags = (byte)(flags & (VirtioNetHeader.FlagNeedsCsum | VirtioNetHeader.FlagDataValid)) };
        }

        return true;
    }

    private RxResult TryDeliver(SplitVirtqueue queue, RxQueueState rx)
    {
        int needed = VirtioNetHeader.Size + rx.PendingLength;
        bool mergeable = IsNegotiated(NetFeatures.MrgRxBuf);
        if (!mergeable)
        {
            if (rx.ChainCount == 0 && !TryReserveChain(queue, rx))
            {
                return queue.Error != QueueError.None ? RxResult.Broken : RxResult.NoBuffers;
            }

            if (rx.Capacity[0] < needed)
            {
                // The chain stays reserved for the next frame.
                rx.HasPending = false;
                DropRx(rx, rx.PendingLength, NetDropReason.RxBufferTooSmall);
                return RxResult.Dropped;
            }
        }
        else
        {
            while (rx.TotalCapacity < needed)
            {
                if (!TryReserveChain(queue, rx))
                {
                    return queue.Error != QueueError.None ? RxResult.Broken : RxResult.NoBuffers;
                }
            }
        }

        int chains = 1;
        long capacity = rx.Capacity[0];
        while (capacity < needed)
        {
            capacity += rx.Capacity[chains++];
        }

        Span<byte> header = stackalloc byte[VirtioNetHeader.Size];
        (rx.PendingHeader with { NumBuffers = (ushort)chains }).Write(header);
        Array.Clear(rx.Written, 0, chains);
        var cursor = new RxCursor();
        Write(rx, ref cursor, header);
        Write(rx, ref cursor, rx.Staging.AsSpan(0, rx.PendingLength));
        for (int i = 0; i < chains; i++)
        {
            queue.AddUsed(rx.Heads[i], (uint)rx.Written[i]);
        }

        rx.RemoveFirst(chains);
        rx.HasPending = false;
        Counters.Received(rx.PendingLength);
        NetMetrics.Frames.Add(1, NetMetrics.Rx);
        NetMetrics.Bytes.Add(rx.PendingLength, NetMetrics.Rx);
        return RxResult.Delivered;
    }

    private void Write(RxQueueState rx, ref RxCursor cursor, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty && cursor.Chain < rx.ChainCount)
        {
            if (cursor.Segment >= rx.SegmentCount[cursor.Chain])
            {
                cursor.Chain++;
                cursor.Segment = 0;
                cursor.Offset = 0;
                continue;
            }

            NetSegment segment = rx.Segments[rx.SegmentStart[cursor.Chain] + cursor.Segment];
            if (!Memory.TryGetSpan(segment.Address, segment.Length, out Span<byte> span))
            {
                cursor.Segment++;
                cursor.Offset = 0;
                continue;
            }

            int take = Math.Min(source.Length, span.Length - cursor.Offset);
            source[..take].CopyTo(span[cursor.Offset..]);
            source = source[take..];
            cursor.Offset += take;
            rx.Written[cursor.Chain] += take;
            if (cursor.Offset == span.Length)
            {
                cursor.Segment++;
                cursor.Offset = 0;
            }
        }
    }

    private static bool TryReserveChain(SplitVirtqueue queue, RxQueueState rx)
    {
        // Chains with no writable bytes are returned at once; the loop ends when the ring is empty.
        for (int attempts = 0; attempts <= queue.Size; attempts++)
        {
            if (rx.ChainCount == rx.Heads.Length || !queue.TryPopChain(out DescriptorChain chain))
            {
                return false;
            }

            int start = rx.UsedSegments;
            long capacity = 0;
            while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
            {
                if (buffer.IsWriteOnly && buffer.Length > 0)
                {
                    rx.AddSegment(new NetSegment(buffer.Address, buffer.Length));
                    capacity += buffer.Length;
                }
            }

            if (chain.Error != QueueError.None)
            {
                rx.UsedSegments = start;
                return false;
            }

            if (capacity == 0)
            {
                rx.UsedSegments = start;
                queue.AddUsed(chain.HeadIndex, 0);
                continue;
            }

            int slot = rx.ChainCount++;
            rx.Heads[slot] = chain.HeadIndex;
            rx.SegmentStart[slot] = start;
            rx.SegmentCount[slot] = rx.UsedSegments - start;
            rx.Capacity[slot] = (int)Math.Min(capacity, int.MaxValue);
            rx.TotalCapacity += rx.Capacity[slot];
            return true;
        }

        return false;
    }

    private void ProcessControl(SplitVirtqueue queue)
    {
        do
        {
            queue.DisableNotification();
            while (queue.TryPopChain(out DescriptorChain chain))
            {
                int length = 0;
                bool tooLong = false;
                GuestAddress ack = default;
                bool hasAck = false;
                while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
                {
                    if (buffer.IsWriteOnly)
                    {
                        if (!hasAck && buffer.Length > 0)
                        {
                            ack = buffer.Address;
                            hasAck = true;
                        }
                    }
                    else if (length + buffer.Length <= _controlBuffer.Length)
                    {
                        buffer.Span.CopyTo(_controlBuffer.AsSpan(length));
                        length += buffer.Length;
                    }
                    else
                    {
                        tooLong = true;
                    }
                }

                if (chain.Error != QueueError.None)
                {
                    return;
                }

                if (!hasAck)
                {
                    Log.ControlWithoutAck(Logger, queue.Index);
                    queue.AddUsed(chain.HeadIndex, 0);
                    continue;
                }

                ReadOnlySpan<byte> command = _controlBuffer.AsSpan(0, length);
                byte status = tooLong || length < 2 ? AckErr : Execute(command[0], command[1], command[2..]);
                if (Memory.TryGetSpan(ack, 1, out Span<byte> ackByte))
                {
                    ackByte[0] = status;
                }

                Log.ControlCommand(Logger, length > 0 ? command[0] : (byte)0, length > 1 ? command[1] : (byte)0, status);
                queue.AddUsed(chain.HeadIndex, 1);
            }

            PublishUsedAndNotify(queue);
        }
        while (queue.EnableNotification());
    }

    private byte Execute(byte commandClass, byte command, ReadOnlySpan<byte> data)
    {
        switch (commandClass)
        {
            case 0 when IsNegotiated(NetFeatures.CtrlRx): // VIRTIO_NET_CTRL_RX
                if (data.Length != 1 || command > 1)
                {
                    return AckErr;
                }

                _filter = command == 0 ? _filter.WithPromiscuous(data[0] != 0) : _filter.WithAllMulticast(data[0] != 0);
                return AckOk;

            case 1 when command == 0 && IsNegotiated(NetFeatures.CtrlRx): // VIRTIO_NET_CTRL_MAC_TABLE_SET
                return SetMacTables(data) ? AckOk : AckErr;

            case 1 when command == 1 && IsNegotiated(NetFeatures.CtrlMacAddr): // VIRTIO_NET_CTRL_MAC_ADDR_SET
                if (data.Length != 6)
                {
                    return AckErr;
                }

                Interlocked.Exchange(ref _mac, (long)ToMacValue(data));
                return AckOk;

            case 4 when command == 0 && IsNegotiated(NetFeatures.Mq): // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET
                if (data.Length != 2)
                {
                    return AckErr;
                }

                ushort pairs = BinaryPrimitives.ReadUInt16LittleEndian(data);
                if (pairs < 1 || pairs > _pairs)
                {
                    return AckErr;
                }

                SetActivePairs(pairs);
                return AckOk;

            default:
                return AckErr;
        }
    }

    private bool SetMacTables(ReadOnlySpan<byte> data)
    {
        // Two virtio_net_ctrl_mac: le32 entries, then entries * 6 bytes; unicast first, multicast second.
        if (!TryReadTable(ref data, out byte[] unicast, out bool unicastOverflow)
            || !TryReadTable(ref data, out byte[] multicast, out bool multicastOverflow)
            || !data.IsEmpty)
        {
            return false;
        }

        _filter = _filter.WithTables(unicast, multicast, unicastOverflow, multicastOverflow);
        return true;
    }

    private static bool TryReadTable(ref ReadOnlySpan<byte> data, out byte[] table, out bool overflow)
    {
        table = [];
        overflow = false;
        if (data.Length < 4)
        {
            return false;
        }

        uint entries = BinaryPrimitives.ReadUInt32LittleEndian(data);
        data = data[4..];
        if (entries > (uint)data.Length / 6)
        {
            return false;
        }

        int bytes = (int)entries * 6;
        if (entries > RxFilter.MaxTableEntries)
        {
            overflow = true; // too many to match: accept that kind of address
        }
        else
        {
            table = data[..bytes].ToArray();
        }

        data = data[bytes..];
        return true;
    }

    private void SetActivePairs(int pairs)
    {
        _activePairs = pairs;
        for (int i = 0; i < _pairs; i++)
        {
            if (i < pairs && _linkUp)
            {
                Arm(_rx[i]);
            }
            else if (i >= pairs)
            {
                Disarm(_rx[i]);
            }
        }
    }

    private void OnReceiveReady(RxQueueState rx)
    {
        if (!IsLive || !_linkUp || rx.Pair >= _activePairs || !Queues[rx.QueueIndex].IsReady)
        {
            // Nobody can take frames now; the next kick, DRIVER_OK or link-up arms the fd again.
            Disarm(rx);
            return;
        }

        NotifyQueue(rx.QueueIndex);
    }

    private void Arm(RxQueueState rx)
    {
        lock (rx.Gate)
        {
            if (rx.Registration is null && !_disposed && _ioThreads.Length > 0)
            {
                rx.Registration = _ioThreads[rx.Pair % _ioThreads.Length].Register(_backends[rx.Pair].ReceiveReadyHandle, s_onReceiveReady, rx);
            }
        }
    }

    private static void Disarm(RxQueueState rx)
    {
        lock (rx.Gate)
        {
            rx.Registration?.Dispose();
            rx.Registration = null;
        }
    }

    private static void Quiesce(IoThread thread)
    {
        if (thread.IsCurrentThread)
        {
            return;
        }

        using var done = new ManualResetEventSlim();
        try
        {
            thread.Schedule(s_setEvent, done);
        }
        catch (InvalidOperationException)
        {
            return; // stopped: nothing runs there
        }

        // Bounded: a thread never started runs nothing either.
        done.Wait(TimeSpan.FromSeconds(2));
    }

    private void DropRx(RxQueueState rx, int length, NetDropReason reason)
    {
        CountDrop(reason);
        Log.RxDropped(Logger, rx.QueueIndex, length, reason);
    }

    private void CountDrop(NetDropReason reason)
    {
        Counters.Dropped(reason);
        NetMetrics.Drops.Add(1, NetMetrics.Reason(reason));
    }

    private void WriteMac(Span<byte> destination)
    {
        ulong mac = (ulong)Interlocked.Read(ref _mac);
        for (int i = 0; i < 6; i++)
        {
            destination[i] = (byte)(mac >> (8 * (5 - i)));
        }
    }

    private static ulong ToMacValue(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != 6)
        {
            throw new ArgumentException("A MAC address has 6 bytes.", nameof(bytes));
        }

        ulong value = 0;
        foreach (byte b in bytes)
        {
            value = (value << 8) | b;
        }

        return value;
    }

    private static ulong RandomMac()
    {
        Span<byte> bytes = stackalloc byte[6];
        RandomNumberGenerator.Fill(bytes);
        bytes[0] = (byte)((bytes[0] & 0xFE) | 0x02); // unicast, locally administered
        return ToMacValue(bytes);
    }

    private static ulong OfferedFeatures(IReadOnlyList<INetBackend> backends, NetDeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(backends);
        ArgumentNullException.ThrowIfNull(options);
        if (backends.Count is 0 or > 0x8000)
        {
            throw new ArgumentException("A network device has from 1 to 32768 queue pairs (one backend each).", nameof(backends));
        }

        if (options.IoThreads is null || options.IoThreads.Count == 0)
        {
            throw new ArgumentException("The device needs at least one I/O thread to watch its backends.", nameof(options));
        }

        if (backends.Count > 1 && !options.ControlQueue)
        {
            throw new ArgumentException("Several queue pairs need the control queue (VIRTIO_NET_F_MQ depends on CTRL_VQ).", nameof(options));
        }

        NetOffloads offloads = NetOffloads.Checksum | NetOffloads.Tso4 | NetOffloads.Tso6;
        foreach (INetBackend backend in backends)
        {
            offloads &= backend?.Offloads ?? NetOffloads.None;
        }

        ulong features = VirtioFeatures.CoreDefaults | NetFeatures.Mac | NetFeatures.Status;
        if (options.Mtu is not null)
        {
            features |= NetFeatures.Mtu;
        }

        if (options.MergeableRxBuffers)
        {
            features |= NetFeatures.MrgRxBuf;
        }

        if (options.ControlQueue)
        {
            features |= NetFeatures.CtrlVq | NetFeatures.CtrlRx | NetFeatures.CtrlMacAddr;
            if (backends.Count > 1)
            {
                features |= NetFeatures.Mq;
            }
        }

        if ((offloads & NetOffloads.Checksum) != 0)
        {
            features |= NetFeatures.Csum | NetFeatures.GuestCsum;
            if ((offloads & NetOffloads.Tso4) != 0)
            {
                features |= NetFeatures.HostTso4 | NetFeatures.GuestTso4;
            }

            if ((offloads & NetOffloads.Tso6) != 0)
            {
                features |= NetFeatures.HostTso6 | NetFeatures.GuestTso6;
            }
        }

        return features;
    }

    private static ushort[] QueueSizes(IReadOnlyList<INetBackend> backends, NetDeviceOptions options)
    {
        var sizes = new ushort[(2 * backends.Count) + (options.ControlQueue ? 1 : 0)];
        Array.Fill(sizes, options.QueueSize);
        return sizes;
    }

    private enum RxResult
    {
        Delivered,
        Dropped,
        NoBuffers,
        Broken,
    }

    private struct RxCursor
    {
        public int Chain;
        public int Segment;
        public int Offset;
    }
}
