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
/// <para>The device is the control plane: features, configuration, link state and lifecycle. Each
/// queue is its own type: transmit (<c>NetTxQueue</c>: each chain, 12-byte virtio_net_hdr_v1 + frame, is
/// checked and handed to the backend as guest-memory vectors; a malformed header or a frame of bad
/// length is dropped and counted, and the chain still goes back on the used ring, length 0), receive
/// (<c>NetRxQueue</c>: runs when the backend's readiness fd fires on the pair's <see cref="IoThread"/>
/// and when the guest kicks the receive queue; frames go into guest chains, merged with num_buffers
/// under VIRTIO_NET_F_MRG_RXBUF; when the guest has no buffers it stops watching the backend and keeps
/// the frame it holds: nothing is lost, the guest's next receive kick resumes), and control
/// (<c>NetControlQueue</c>).</para>
/// <para>Queue processing runs on whichever thread notifies the queue (Core serializes each queue),
/// inside a <see cref="DeferredCalls"/> section: the used ring of a data queue is published, and the
/// driver interrupted, once at the end of the section, not once per frame or per pass. The
/// transport calls the other members from one thread at a time.</para>
/// </remarks>
public sealed class NetDevice : VirtioDevice
{
    /// <summary>The virtio device ID of a network card.</summary>
    public const ushort NetDeviceId = 1;

    /// <summary>The largest Ethernet frame (without the virtio-net header) the device moves: 64 KiB of GSO payload plus headers.</summary>
    public const int MaxFrameLength = 65536 + 256;

    /// <summary>The Ethernet header: the shortest frame the device transmits.</summary>
    internal const int EthernetHeaderLength = 14;

    private const int ConfigSize = 12;
    private const int MtuOverhead = 18; // Ethernet header + one VLAN tag
    private const ushort StatusLinkUp = 1;

    private static readonly Action<object?> s_nothing = static _ => { };
    private static readonly TimeSpan s_quiesceTimeout = TimeSpan.FromSeconds(2);

    private readonly INetBackend[] _backends;
    private readonly IoThread[] _ioThreads;
    private readonly NetRxQueue[] _rx;
    private readonly NetTxQueue[] _tx;
    private readonly NetControlQueue? _control;
    private readonly ulong _initialMac;
    private readonly ushort _mtu;
    private readonly int _pairs;

    private long _mac;
    private volatile bool _linkUp;
    private volatile int _activePairs = 1;
    private volatile RxFilter _filter = RxFilter.Default;
    private int _maxTxFrame = MaxFrameLength;

    /// <summary>Creates the device. Called by the embedder, on any thread, before the transport is attached.</summary>
    /// <param name="memory">Guest memory.</param>
    /// <param name="backends">One backend per queue pair; more than one offers VIRTIO_NET_F_MQ.</param>
    /// <param name="options">Address, MTU, features and I/O threads; <see cref="NetDeviceOptions.IoThreads"/> is required.</param>
    /// <param name="logger">Where device events go; none by default.</param>
    /// <exception cref="ArgumentException">No backends, no I/O threads, or several pairs without a control queue.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="NetDeviceOptions.MaxRxChainBuffers"/> is below 1.</exception>
    public NetDevice(IGuestMemory memory, IReadOnlyList<INetBackend> backends, NetDeviceOptions options, ILogger? logger = null)
        : base(NetDeviceId, OfferedFeatures(backends, options), memory, QueueSizes(backends, options), logger)
    {
        Name = options.Name ?? NetMetrics.NextUnnamed();
        MetricsName = Name;
        DeviceTag = new(NetMetrics.DeviceTagName, Name);
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

        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxRxChainBuffers, 1, nameof(options));
        _mtu = options.Mtu ?? 0;
        _linkUp = options.LinkUp;
        _initialMac = options.MacAddress is { } mac ? ToMacValue(mac.GetAddressBytes()) : RandomMac();
        _mac = (long)_initialMac;
        _rx = new NetRxQueue[_pairs];
        _tx = new NetTxQueue[_pairs];
        for (int i = 0; i < _pairs; i++)
        {
            IoThread ioThread = _ioThreads[i % _ioThreads.Length];
            _rx[i] = new NetRxQueue(this, i, _backends[i], ioThread, options.QueueSize, options.MaxRxChainBuffers, MaxFrameLength, Logger);
            _tx[i] = new NetTxQueue(this, i, _backends[i], ioThread, 2 * options.QueueSize, Logger);
        }

        _control = options.ControlQueue ? new NetControlQueue(this, _ioThreads[0], 2 * options.QueueSize, Logger) : null;
    }

    /// <summary>
    /// The device's name in its measurements (the <c>virtio.device</c> tag, docs/metrics.md):
    /// <see cref="NetDeviceOptions.Name"/>, or net0, net1, ... in creation order when that is null.
    /// </summary>
    public string Name { get; }

    /// <summary>The device's tag on its measurements.</summary>
    internal KeyValuePair<string, object?> DeviceTag { get; }

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

    /// <summary>The queue pairs the device has (max_virtqueue_pairs).</summary>
    internal int QueuePairs => _pairs;

    /// <summary>The longest frame the transmit queues accept without GSO (the MTU when negotiated).</summary>
    internal int MaxTxFrame => _maxTxFrame;

    /// <summary>The receive filter the control queue sets and the receive queues apply.</summary>
    internal RxFilter Filter
    {
        get => _filter;
        set => _filter = value;
    }

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
                    _rx[i].Arm();
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

    /// <summary>
    /// Resets the device (the base: receive queues disarmed, readiness handlers waited for), then stops
    /// watching the backends. Called once, by <see cref="VirtioDevice.Dispose()"/>, before the backends
    /// and I/O threads are disposed.
    /// </summary>
    /// <param name="disposing">True from <see cref="VirtioDevice.Dispose()"/>.</param>
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            foreach (NetRxQueue rx in _rx)
            {
                rx.Close();
            }
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
            _rx[0].Arm();
        }
    }

    /// <summary>
    /// Disarms the receive queues and waits until no readiness handler runs on the device's I/O
    /// threads (each wait bounded by <paramref name="timeout"/>, 2 s by default, and by
    /// <paramref name="cancellationToken"/>), then forgets the held receive buffers and the filters.
    /// </summary>
    /// <param name="timeout">The bound on each I/O thread's wait, or null for 2 s.</param>
    /// <param name="cancellationToken">Ends the waits early.</param>
    /// <returns>True when every I/O thread was seen past its handlers (or had stopped).</returns>
    protected override bool OnReset(TimeSpan? timeout, CancellationToken cancellationToken)
    {
        foreach (NetRxQueue rx in _rx)
        {
            rx.Disarm();
        }

        // A readiness handler may still be running on an I/O thread: wait until each is past it,
        // so nothing touches the queues while Core clears them. A stopped thread runs nothing; the
        // wait is bounded, since a thread never started runs nothing either.
        bool quiet = true;
        foreach (IoThread thread in _ioThreads)
        {
            quiet &= thread.RunAndWaitOrCancel(s_nothing, null, timeout ?? s_quiesceTimeout, cancellationToken) != IoThreadRunResult.TimedOut;
        }

        foreach (NetRxQueue rx in _rx)
        {
            rx.Clear();
        }

        _filter = RxFilter.Default;
        Interlocked.Exchange(ref _mac, (long)_initialMac);
        _activePairs = 1;
        return quiet;
    }

    /// <inheritdoc />
    protected override void OnQueueQuiescing(SplitVirtqueue queue)
    {
        // Receive queues are the even indices below the control queue: they hold chains between frames.
        int index = queue.Index;
        if ((index & 1) == 0 && index / 2 < _pairs)
        {
            _rx[index / 2].ReturnReserved(queue);
        }
    }

    /// <inheritdoc />
    protected override void ProcessQueue(SplitVirtqueue queue)
    {
        // A pass publishes its used entries, and interrupts, at the end of this section, or of the
        // caller's when there is one (an I/O thread's kick handler): one publish and at most one
        // interrupt per queue however many passes run before it ends.
        using DeferredCallSection section = DeferredCalls.Section(Logger);
        int index = queue.Index;
        if (_control is not null && index == ControlQueueIndex)
        {
            _control.Process(queue);
            return;
        }

        int pair = index / 2;
        if (pair >= _activePairs)
        {
            return;
        }

        if ((index & 1) == 0)
        {
            _rx[pair].Process(queue);
        }
        else
        {
            _tx[pair].Process(queue);
        }
    }

    /// <summary>Sets the address the configuration shows (VIRTIO_NET_CTRL_MAC_ADDR_SET); six bytes.</summary>
    internal void SetMac(ReadOnlySpan<byte> mac) => Interlocked.Exchange(ref _mac, (long)ToMacValue(mac));

    /// <summary>Uses the first <paramref name="pairs"/> queue pairs (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET): watches their backends, stops watching the others'.</summary>
    internal void SetActivePairs(int pairs)
    {
        _activePairs = pairs;
        for (int i = 0; i < _pairs; i++)
        {
            if (i < pairs && _linkUp)
            {
                _rx[i].Arm();
            }
            else if (i >= pairs)
            {
                _rx[i].Disarm();
            }
        }
    }

    /// <summary>Publishes a queue's used entries and interrupts the driver if it wants to be (for the queue types).</summary>
    internal bool PublishUsed(SplitVirtqueue queue) => PublishUsedAndNotify(queue);

    /// <summary>Counts a dropped frame, in <see cref="Counters"/> and the metrics.</summary>
    internal void CountDrop(NetDropReason reason)
    {
        Counters.Dropped(reason);
        NetMetrics.Drops.Add(1, DeviceTag, NetMetrics.Reason(reason));
    }

    /// <summary>Writes the current MAC address (six bytes). Any thread.</summary>
    internal void WriteMac(Span<byte> destination)
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
}
