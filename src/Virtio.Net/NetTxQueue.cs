using System;
using System.Collections.Generic;
using Microsoft.Extensions.Logging;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Net;

/// <summary>
/// The transmit queue of one queue pair (transmitq, virtio 1.2 §5.1.6.2): pops the guest's chains
/// (12-byte virtio_net_hdr_v1 + frame), checks the header against the negotiated offloads and the
/// frame against the length limits, and hands the frame to the pair's backend as guest-memory pieces.
/// A frame that fails is dropped and counted; every chain goes back on the used ring with length 0.
/// </summary>
/// <remarks>
/// <see cref="Process"/> runs on whichever thread notifies the queue (Core serializes each queue),
/// normally the pair's I/O thread, inside the device's <see cref="DeferredCalls"/> section: a pass
/// writes every available frame (up to 2 x queue size) to the non-blocking backend and publishes the
/// used ring once, at the end of the section. The buffers of the chain being sent are kept between
/// chains, so nothing is allocated per frame.
/// </remarks>
internal sealed class NetTxQueue
{
    private static readonly Action<object?> s_kick = static state => ((NetTxQueue)state!).Kick();

    private readonly NetDevice _device;
    private readonly INetBackend _backend;
    private readonly IoThread _ioThread;
    private readonly ILogger _logger;
    private readonly IoSegment[] _segments;
    private readonly IoSegment[] _frame;
    private readonly DeferredUsedPublish _publish;
    private readonly KeyValuePair<string, object?> _queueTag;

    public NetTxQueue(NetDevice device, int pair, INetBackend backend, IoThread ioThread, int maxSegments, ILogger logger)
    {
        _device = device;
        _backend = backend;
        _ioThread = ioThread;
        _logger = logger;
        QueueIndex = (ushort)((2 * pair) + 1);
        _segments = new IoSegment[maxSegments];
        _frame = new IoSegment[maxSegments];
        _publish = new DeferredUsedPublish(device, device.Queues[QueueIndex]);
        _queueTag = NetMetrics.QueueTag(QueueIndex);
    }

    public ushort QueueIndex { get; }

    public void Process(SplitVirtqueue queue)
    {
        lock (_publish.Gate)
        {
            Drain(queue);
        }
    }

    private void Drain(SplitVirtqueue queue)
    {
        // Bounded: a guest refilling as fast as we drain cannot keep this thread here forever.
        int budget = 2 * queue.Size;
        do
        {
            queue.DisableNotification();
            while (budget > 0 && queue.TryPopChain(out DescriptorChain chain))
            {
                budget--;
                if (!chain.TryGather(_segments, out int readable, out _))
                {
                    return; // the queue is broken: the device is in DEVICE_NEEDS_RESET
                }

                // Device-readable buffers come first; any writable ones after them are ignored.
                bool overflow = readable > _segments.Length;
                NetDropReason? drop = overflow ? NetDropReason.MalformedHeader : Transmit(_segments.AsSpan(0, readable));
                if (drop is { } reason)
                {
                    _device.CountDrop(reason);
                    Log.TxDropped(_logger, queue.Index, reason);
                }

                // Transmit buffers are device-readable only: nothing written.
                queue.AddUsed(chain.HeadIndex, 0);
            }

            // Once per section, however many passes it holds: one used->idx store, at most one interrupt.
            _publish.Request();
            if (budget == 0)
            {
                if (queue.EnableNotification())
                {
                    _ioThread.Schedule(s_kick, this);
                }

                return;
            }
        }
        while (queue.EnableNotification());
    }

    private void Kick() => _device.NotifyQueue(QueueIndex);

    private NetDropReason? Transmit(ReadOnlySpan<IoSegment> segments)
    {
        if (!_device.LinkUp)
        {
            return NetDropReason.LinkDown;
        }

        // The header may be split across buffers: the reader gathers its 12 bytes.
        var reader = new ChainReader(segments);
        Span<byte> raw = stackalloc byte[VirtioNetHeader.Size];
        if (!reader.TryRead(raw))
        {
            return NetDropReason.MalformedHeader;
        }

        VirtioNetHeader header = VirtioNetHeader.Read(raw);
        long frameLength = reader.Remaining;
        if (!IsValidHeader(header, frameLength))
        {
            return NetDropReason.MalformedHeader;
        }

        int limit = header.GsoType == VirtioNetHeader.GsoNone ? _device.MaxTxFrame : NetDevice.MaxFrameLength;
        if (frameLength < NetDevice.EthernetHeaderLength || frameLength > limit)
        {
            return NetDropReason.BadLength;
        }

        // The frame: what follows the header, handed over as the guest laid it out.
        int length = (int)frameLength;
        int pieces = reader.PeekSegments(_frame);
        if (!_backend.TryTransmit(header with { NumBuffers = 0 }, new NetFrameSegments(_frame.AsSpan(0, pieces), length)))
        {
            return NetDropReason.BackendBusy;
        }

        _device.Counters.Transmitted(length);
        NetMetrics.Frames.Add(1, _device.DeviceTag, _queueTag, NetMetrics.Tx);
        NetMetrics.Bytes.Add(length, _device.DeviceTag, _queueTag, NetMetrics.Tx);
        return null;
    }

    private bool IsValidHeader(in VirtioNetHeader header, long frameLength)
    {
        // virtio 1.2 §5.1.6.2: offloads only as negotiated; a GSO frame needs a partial checksum.
        byte gso = header.GsoType;
        if ((gso & VirtioNetHeader.GsoEcn) != 0 && !_device.IsNegotiated(NetFeatures.HostEcn))
        {
            return false;
        }

        bool gsoOk = (gso & ~VirtioNetHeader.GsoEcn) switch
        {
            VirtioNetHeader.GsoNone => (gso & VirtioNetHeader.GsoEcn) == 0,
            VirtioNetHeader.GsoTcpV4 => _device.IsNegotiated(NetFeatures.HostTso4),
            VirtioNetHeader.GsoTcpV6 => _device.IsNegotiated(NetFeatures.HostTso6),
            VirtioNetHeader.GsoUdp => _device.IsNegotiated(NetFeatures.HostUfo),
            _ => false,
        };
        if (!gsoOk)
        {
            return false;
        }

        bool needsCsum = (header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0;
        if (needsCsum)
        {
            if (!_device.IsNegotiated(NetFeatures.Csum) || header.ChecksumStart + header.ChecksumOffset + 2 > frameLength)
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
}
