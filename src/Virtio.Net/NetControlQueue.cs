using System;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Virtio.Core.Queues;
using Virtio.Core.Threading;

namespace Virtio.Net;

/// <summary>
/// The control virtqueue (virtio 1.2 §5.1.6.5): pops each command chain (struct virtio_net_ctrl:
/// class, command, data, then the device-writable ack byte), decodes it into a
/// <see cref="NetControlCommand"/>, applies it to the device's receive filter, MAC address or active
/// queue pairs, and writes VIRTIO_NET_OK or VIRTIO_NET_ERR.
/// </summary>
/// <remarks>
/// <see cref="Process"/> runs on whichever thread notifies the queue (Core serializes it); a pass
/// answers at most <c>Budget</c> commands and requeues the rest on the device's first I/O thread, so a
/// guest refilling the ring cannot keep a thread (and the other queues it serves) here. Commands
/// are copied into one buffer kept for the device's life before they are read: the guest may rewrite
/// its buffers at any time.
/// </remarks>
internal sealed class NetControlQueue
{
    private const int BufferSize = 8192;

    /// <summary>Commands one pass answers at most (a guest refills the ring as fast as we answer).</summary>
    internal const int Budget = 64;

    private const byte AckOk = 0; // VIRTIO_NET_OK
    private const byte AckErr = 1; // VIRTIO_NET_ERR

    private static readonly Action<object?> s_kick = static state => ((NetControlQueue)state!).Kick();

    private readonly NetDevice _device;
    private readonly IoThread _ioThread;
    private readonly ILogger _logger;
    private readonly byte[] _buffer = new byte[BufferSize];
    private IoSegment[] _segments;
    private ushort _queueIndex;

    public NetControlQueue(NetDevice device, IoThread ioThread, int maxSegments, ILogger logger)
    {
        _device = device;
        _ioThread = ioThread;
        _logger = logger;
        _segments = new IoSegment[maxSegments];
    }

    public void Process(SplitVirtqueue queue)
    {
        int budget = Budget;
        do
        {
            queue.DisableNotification();
            while (budget > 0 && queue.TryPopChain(out DescriptorChain chain))
            {
                budget--;
                if (!chain.TryGather(_segments, out int readable, out int count))
                {
                    return;
                }

                if (count > _segments.Length)
                {
                    // Rare: a chain with more buffers than the ring (an indirect table); grows once, then stays.
                    Array.Resize(ref _segments, count);
                    chain.Reset();
                    chain.TryGather(_segments, out readable, out count);
                }

                // struct virtio_net_ctrl: class, command and data readable, then the writable ack.
                var reader = new ChainReader(_segments.AsSpan(0, readable));
                var writer = new ChainWriter(_segments.AsSpan(readable, count - readable));
                if (writer.Remaining == 0)
                {
                    Log.ControlWithoutAck(_logger, queue.Index);
                    queue.AddUsed(chain.HeadIndex, 0);
                    continue;
                }

                bool tooLong = reader.Remaining > _buffer.Length;
                int length = reader.Read(_buffer);
                ReadOnlySpan<byte> command = _buffer.AsSpan(0, length);
                byte status = tooLong || length < 2 ? AckErr : Execute((NetControlCommand)((command[0] << 8) | command[1]), command[2..]);
                writer.Write(new ReadOnlySpan<byte>(in status));
                Log.ControlCommand(_logger, length > 0 ? command[0] : (byte)0, length > 1 ? command[1] : (byte)0, status);
                queue.AddUsed(chain.HeadIndex, 1);
            }

            _device.PublishUsed(queue);
            if (budget == 0)
            {
                // Kicks back on; commands already there may get no kick of their own: requeue the pass.
                if (queue.EnableNotification())
                {
                    Requeue(queue.Index);
                }

                return;
            }
        }
        while (queue.EnableNotification());
    }

    private void Requeue(ushort queueIndex)
    {
        _queueIndex = queueIndex;
        try
        {
            _ioThread.Schedule(s_kick, this);
        }
        catch (InvalidOperationException)
        {
            // The I/O thread has stopped: the device is being torn down, nothing serves the queue any more.
        }
    }

    private void Kick() => _device.NotifyQueue(_queueIndex);

    private byte Execute(NetControlCommand command, ReadOnlySpan<byte> data)
    {
        switch (command)
        {
            case NetControlCommand.RxPromisc or NetControlCommand.RxAllMulti when _device.IsNegotiated(NetFeatures.CtrlRx):
                if (data.Length != 1)
                {
                    return AckErr;
                }

                RxFilter filter = _device.Filter;
                _device.Filter = command == NetControlCommand.RxPromisc ? filter.WithPromiscuous(data[0] != 0) : filter.WithAllMulticast(data[0] != 0);
                return AckOk;

            case NetControlCommand.MacTableSet when _device.IsNegotiated(NetFeatures.CtrlRx):
                return SetMacTables(data) ? AckOk : AckErr;

            case NetControlCommand.MacAddrSet when _device.IsNegotiated(NetFeatures.CtrlMacAddr):
                if (data.Length != 6)
                {
                    return AckErr;
                }

                _device.SetMac(data);
                return AckOk;

            case NetControlCommand.MqVqPairsSet when _device.IsNegotiated(NetFeatures.Mq):
                if (data.Length != 2)
                {
                    return AckErr;
                }

                ushort pairs = BinaryPrimitives.ReadUInt16LittleEndian(data);
                if (pairs < 1 || pairs > _device.QueuePairs)
                {
                    return AckErr;
                }

                _device.SetActivePairs(pairs);
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

        _device.Filter = _device.Filter.WithTables(unicast, multicast, unicastOverflow, multicastOverflow);
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
}
