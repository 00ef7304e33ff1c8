using System;
using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Virtio.Core.Memory;
using Virtio.Core.Queues;

namespace Virtio.Net;

/// <summary>
/// The control virtqueue (virtio 1.2 §5.1.6.5): pops each command chain (struct virtio_net_ctrl:
/// class, command, data, then the device-writable ack byte), decodes it into a
/// <see cref="NetControlCommand"/>, applies it to the device's receive filter, MAC address or active
/// queue pairs, and writes VIRTIO_NET_OK or VIRTIO_NET_ERR.
/// </summary>
/// <remarks>
/// <see cref="Process"/> runs on whichever thread notifies the queue (Core serializes it). Commands
/// are copied into one buffer kept for the device's life before they are read: the guest may rewrite
/// its buffers at any time.
/// </remarks>
internal sealed class NetControlQueue
{
    private const int BufferSize = 8192;

    private const byte AckOk = 0; // VIRTIO_NET_OK
    private const byte AckErr = 1; // VIRTIO_NET_ERR

    private readonly NetDevice _device;
    private readonly ILogger _logger;
    private readonly byte[] _buffer = new byte[BufferSize];

    public NetControlQueue(NetDevice device, ILogger logger)
    {
        _device = device;
        _logger = logger;
    }

    public void Process(SplitVirtqueue queue)
    {
        IGuestMemory memory = _device.Memory;
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
                    else if (length + buffer.Length <= _buffer.Length)
                    {
                        buffer.Span.CopyTo(_buffer.AsSpan(length));
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
                    Log.ControlWithoutAck(_logger, queue.Index);
                    queue.AddUsed(chain.HeadIndex, 0);
                    continue;
                }

                ReadOnlySpan<byte> command = _buffer.AsSpan(0, length);
                byte status = tooLong || length < 2 ? AckErr : Execute((NetControlCommand)((command[0] << 8) | command[1]), command[2..]);
                if (memory.TryGetSpan(ack, 1, out Span<byte> ackByte))
                {
                    ackByte[0] = status;
                }

                Log.ControlCommand(_logger, length > 0 ? command[0] : (byte)0, length > 1 ? command[1] : (byte)0, status);
                queue.AddUsed(chain.HeadIndex, 1);
            }

            _device.PublishUsed(queue);
        }
        while (queue.EnableNotification());
    }

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
