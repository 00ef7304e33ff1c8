using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Net;

/// <summary>
/// The receive queue of one queue pair (receiveq, virtio 1.2 §5.1.6.3): takes frames from the pair's
/// backend, filters them (VIRTIO_NET_F_CTRL_RX) and fits their offloads to what the guest negotiated,
/// and writes them into the guest chains its <see cref="NetRxReservation"/> holds. It watches the
/// backend's readiness fd on the pair's <see cref="IoThread"/> while the guest can take frames; when
/// the guest has no buffers it stops watching and keeps the frame it holds, so nothing is lost.
/// </summary>
/// <remarks>
/// <see cref="Process"/> runs on whichever thread notifies the queue (Core serializes each queue),
/// normally the pair's I/O thread, inside the device's <see cref="DeferredCalls"/> section: a pass
/// reads up to <c>Budget</c> frames from the non-blocking backend and publishes the used ring once,
/// at the end of the section. <see cref="Arm"/>, <see cref="Disarm"/> and <see cref="Close"/> run on any thread.
/// </remarks>
internal sealed class NetRxQueue
{
    private const int Budget = 256;

    private static readonly Action<object?> s_onReady = static state => ((NetRxQueue)state!).OnReady();

    private readonly NetDevice _device;
    private readonly INetBackend _backend;
    private readonly IoThread _ioThread;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly byte[] _staging;
    private readonly NetRxReservation _reservation;
    private readonly DeferredUsedPublish _publish;
    private readonly int _maxChainBuffers;
    private long _refusedReported;

    // Guarded by _gate: the registration of the backend's readiness fd (null while not watched).
    private IDisposable? _registration;
    private bool _closed;

    // The frame read from the backend and not yet delivered: at most one.
    private bool _hasPending;
    private int _pendingLength;
    private VirtioNetHeader _pendingHeader;
    private readonly KeyValuePair<string, object?> _queueTag;

    public NetRxQueue(NetDevice device, int pair, INetBackend backend, IoThread ioThread, int maxChains, int maxChainBuffers, int stagingSize, ILogger logger)
    {
        _device = device;
        _backend = backend;
        _ioThread = ioThread;
        _logger = logger;
        Pair = pair;
        QueueIndex = (ushort)(2 * pair);
        _staging = new byte[stagingSize];
        _maxChainBuffers = maxChainBuffers;
        _reservation = new NetRxReservation(maxChains, maxChainBuffers);
        _publish = new DeferredUsedPublish(device, device.Queues[QueueIndex]);
        _queueTag = NetMetrics.QueueTag(QueueIndex);
    }

    public int Pair { get; }

    public ushort QueueIndex { get; }

    public void Process(SplitVirtqueue queue)
    {
        lock (_publish.Gate)
        {
            Drain(queue);
        }
    }

    /// <summary>
    /// The ring is stopping (QueueReady = 0, a vhost-user GET_VRING_BASE, SET_VRING_ENABLE 0 or memory
    /// table change): stops the watch, returns the reserved chains unused (length 0) and publishes them,
    /// so nothing stays in flight and no frame is written into them after the ring restarts. The held
    /// frame, if any, is the backend's and is kept for the restarted ring. Under Core's processing lock.
    /// </summary>
    public void ReturnReserved(SplitVirtqueue queue)
    {
        Disarm();
        lock (_publish.Gate)
        {
            if (_reservation.ChainCount == 0)
            {
                return;
            }

            _reservation.ReturnAll(queue);

            // Published now, not at the end of a section: the stop that called us waits for it.
            _device.PublishUsed(queue);
        }
    }

    /// <summary>Forgets the held frame and the reserved chains. Only while the device resets, with the watch stopped.</summary>
    public void Clear()
    {
        _hasPending = false;
        _reservation.Clear();
    }

    private void Drain(SplitVirtqueue queue)
    {
        if (!_device.LinkUp)
        {
            Disarm();
            return;
        }

        Arm();
        int budget = Budget;
        bool starved;
        while (true)
        {
            starved = false;
            queue.DisableNotification();
            while (budget > 0)
            {
                if (!_hasPending)
                {
                    // At most one frame is read ahead of the guest's buffers, and kept until they come:
                    // an empty ring alone does not stop the watch (that would cost a re-registration per
                    // batch), a frame with nowhere to go does.
                    if (!_backend.TryReceive(_staging, out int length, out VirtioNetHeader header))
                    {
                        break;
                    }

                    budget--;
                    if (!TryPrepare(length, ref header))
                    {
                        continue;
                    }

                    _pendingLength = length;
                    _pendingHeader = header;
                    _hasPending = true;
                }

                NetRxResult result = TryDeliver(queue);
                if (result == NetRxResult.NoBuffers)
                {
                    starved = true;
                    break;
                }
                else if (result == NetRxResult.Broken)
                {
                    return;
                }
            }

            // Once per section, however many passes it holds: one used->idx store, at most one interrupt
            // (also for chains returned unused, which TryReserve put on the used ring without a frame).
            _publish.Request();
            ReportRefusedChains();

            // Re-enable kicks, then look again: buffers added meanwhile would otherwise wait for a kick that never comes.
            if (queue.EnableNotification() && starved && budget > 0)
            {
                continue;
            }

            break;
        }

        if (starved)
        {
            _device.Counters.Stalled();
            Disarm();
        }
    }

    /// <summary>Watches the backend's readiness fd on the pair's I/O thread, unless already watching or closed.</summary>
    public void Arm()
    {
        lock (_gate)
        {
            if (_registration is null && !_closed)
            {
                _registration = _ioThread.Register(_backend.ReceiveReadyHandle, s_onReady, this);
            }
        }
    }

    /// <summary>Stops watching the backend's readiness fd.</summary>
    public void Disarm()
    {
        lock (_gate)
        {
            _registration?.Dispose();
            _registration = null;
        }
    }

    /// <summary>Stops watching for good (the device is disposed).</summary>
    public void Close()
    {
        lock (_gate)
        {
            _closed = true;
            _registration?.Dispose();
            _registration = null;
        }
    }

    private void ReportRefusedChains()
    {
        long refused = _reservation.RefusedChains;
        if (refused == _refusedReported)
        {
            return;
        }

        if (_refusedReported == 0)
        {
            Log.RxChainRefused(_logger, QueueIndex, _maxChainBuffers);
        }

        NetMetrics.RxChainsRefused.Add(refused - _refusedReported, _device.DeviceTag, _queueTag);
        _refusedReported = refused;
    }

    private void OnReady()
    {
        if (!_device.IsLive || !_device.LinkUp || Pair >= _device.ActiveQueuePairs || !_device.Queues[QueueIndex].IsReady)
        {
            // Nobody can take frames now; the next kick, DRIVER_OK or link-up arms the fd again.
            Disarm();
            return;
        }

        _device.NotifyQueue(QueueIndex);
    }

    private bool TryPrepare(int length, ref VirtioNetHeader header)
    {
        Span<byte> frame = _staging.AsSpan(0, Math.Min(length, _staging.Length));
        if (_device.IsNegotiated(NetFeatures.CtrlRx) && length >= 6)
        {
            Span<byte> mac = stackalloc byte[6];
            _device.WriteMac(mac);
            if (!_device.Filter.Accepts(frame[..6], mac))
            {
                Drop(length, NetDropReason.Filtered);
                return false;
            }
        }

        byte gso = (byte)(header.GsoType & ~VirtioNetHeader.GsoEcn);
        bool gsoOk = gso switch
        {
            VirtioNetHeader.GsoNone => true,
            VirtioNetHeader.GsoTcpV4 => _device.IsNegotiated(NetFeatures.GuestTso4),
            VirtioNetHeader.GsoTcpV6 => _device.IsNegotiated(NetFeatures.GuestTso6),
            _ => false,
        };
        if (!gsoOk || ((header.GsoType & VirtioNetHeader.GsoEcn) != 0 && !_device.IsNegotiated(NetFeatures.GuestEcn)))
        {
            Drop(length, NetDropReason.OffloadNotNegotiated);
            return false;
        }

        byte flags = header.Flags;
        if (!_device.IsNegotiated(NetFeatures.GuestCsum))
        {
            // The guest cannot take a partial checksum: complete it here (virtio 1.2 §5.1.6.4).
            if ((flags & VirtioNetHeader.FlagNeedsCsum) != 0 && !PartialChecksum.TryComplete(frame, header.ChecksumStart, header.ChecksumOffset))
            {
                Drop(length, NetDropReason.OffloadNotNegotiated);
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

    private NetRxResult TryDeliver(SplitVirtqueue queue)
    {
        NetRxReservation reservation = _reservation;
        int needed = VirtioNetHeader.Size + _pendingLength;
        if (!_device.IsNegotiated(NetFeatures.MrgRxBuf))
        {
            if (reservation.ChainCount == 0 && !reservation.TryReserve(queue))
            {
                return queue.Error != QueueError.None ? NetRxResult.Broken : NetRxResult.NoBuffers;
            }

            if (reservation.FirstCapacity < needed)
            {
                // The chain stays reserved for the next frame.
                _hasPending = false;
                Drop(_pendingLength, NetDropReason.RxBufferTooSmall);
                return NetRxResult.Dropped;
            }
        }
        else
        {
            while (reservation.TotalCapacity < needed)
            {
                if (!reservation.TryReserve(queue))
                {
                    return queue.Error != QueueError.None ? NetRxResult.Broken : NetRxResult.NoBuffers;
                }
            }
        }

        int chains = reservation.ChainsFor(needed);
        Span<byte> header = stackalloc byte[VirtioNetHeader.Size];
        (_pendingHeader with { NumBuffers = (ushort)chains }).Write(header);
        reservation.Complete(queue, header, _staging.AsSpan(0, _pendingLength), chains);
        _hasPending = false;
        _device.Counters.Received(_pendingLength);
        NetMetrics.Frames.Add(1, _device.DeviceTag, _queueTag, NetMetrics.Rx);
        NetMetrics.Bytes.Add(_pendingLength, _device.DeviceTag, _queueTag, NetMetrics.Rx);
        return NetRxResult.Delivered;
    }

    private void Drop(int length, NetDropReason reason)
    {
        _device.CountDrop(reason);
        Log.RxDropped(_logger, QueueIndex, length, reason);
    }
}
