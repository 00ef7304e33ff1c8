using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Net.NetworkInformation;
using System.Runtime.ExceptionServices;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Net;
using Virtio.Net.Backends;
using Virtio.Testing;

namespace Virtio.Fuzz.Targets;

/// <summary>
/// <c>net-tx</c> and <c>net-ctrl</c>: a <see cref="NetDevice"/> of two queue pairs over
/// <see cref="LoopbackPair"/>s behind virtio-mmio; the input becomes transmit chains
/// (virtio_net_hdr with GSO and checksum offsets, then the frame) or control-queue commands
/// (class, command, data, ack), posted and kicked once.
/// </summary>
/// <remarks>
/// <para>Input: a u16 that clears features (bit 0 CSUM, 1 HOST_TSO4, 2 HOST_TSO6, 3 MTU, 4 CTRL_RX,
/// 5 CTRL_MAC_ADDR, 6 MQ, 7 EVENT_IDX, 8 INDIRECT_DESC), a byte (bit 0: the second transmit queue,
/// bit 1: link down, bit 2: indirect tables), then chains as <see cref="FuzzedChains"/> reads them.</para>
/// <para>Invariants: nothing throws in device code; in-order chains never break the queue and all come
/// back after the one kick; transmit chains come back with length 0 and control chains with 1 (an ack
/// of OK or ERR) or 0 (no writable byte); each frame the peer receives is the next transmitted chain's
/// bytes after its header, with that header, and only with a header the negotiated features allow
/// (GSO only as negotiated and with NEEDS_CSUM, a checksum field inside the frame, 14 bytes or more);
/// the device counts every frame; an OK ack left the state it set (MAC, promiscuous, all-multicast,
/// queue pairs); no guest memory outside the writable buffers and the used rings changes.</para>
/// <para>The device's reset waits on its I/O thread: the whole fuzzing loop runs on that thread
/// (<see cref="Host"/>), so the wait is a direct call, not a cross-thread round trip per input.</para>
/// </remarks>
internal sealed class NetTarget : IFuzzTarget
{
    private const ushort QueueSize = 16;
    private const int BlockSize = 2048;
    private const int Queues = 5; // rx0, tx0, rx1, tx1, control
    private const ulong HeapStart = 0x10000, HeapPerQueue = 0x8000;
    private const ushort Mtu = 1500;
    private const int MaxFrames = 8;
    private static readonly byte[] s_mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    private readonly NetFuzzMode _mode;
    private readonly bool _control;
    private readonly GuestMemory _memory = GuestMemory.CreateAnonymous(HeapStart + (Queues * HeapPerQueue));
    private readonly IoThread _ioThread = new("fuzz-net");
    private readonly LoopbackPair[] _pairs = [new LoopbackPair(), new LoopbackPair()];
    private readonly FaultLogger _logger = new();
    private readonly NetDevice _device;
    private readonly MmioDriver _mmio;
    private readonly MemoryGuard _guard;
    private readonly List<PostedChain> _posted = new(QueueSize);
    private readonly Dictionary<ushort, PostedChain> _byHead = new(QueueSize);
    private readonly byte[] _frame = new byte[NetDevice.MaxFrameLength];
    private readonly byte[] _ack = new byte[8 * BlockSize];
    private readonly List<(byte[] Frame, VirtioNetHeader Header)> _sent = new(MaxFrames);
    private readonly List<(PostedChain Chain, uint Length)> _received = new(QueueSize);
    private readonly byte[] _merged = new byte[QueueSize * 8 * BlockSize];

    public NetTarget(NetFuzzMode mode)
    {
        _mode = mode;
        _control = mode == NetFuzzMode.Control;
        _ioThread.Start();
        _device = new NetDevice(_memory, [_pairs[0].First, _pairs[1].First], new NetDeviceOptions
        {
            MacAddress = new PhysicalAddress(s_mac),
            Mtu = Mtu,
            QueueSize = QueueSize,
            IoThreads = [_ioThread],
        }, _logger);
        _mmio = new MmioDriver(new VirtioMmioTransport(_device, new InterruptRecorder { KeepLog = false }, _logger));
        _guard = new MemoryGuard(_memory);
    }

    public string Name => _mode switch
    {
        NetFuzzMode.Control => "net-ctrl",
        NetFuzzMode.Receive => "net-rx",
        _ => "net-tx",
    };

    public void Host(Action loop)
    {
        ExceptionDispatchInfo? failure = null;
        _ioThread.RunAndWait(
            _ =>
            {
                try
                {
                    loop();
                }
                catch (Exception exception)
                {
                    failure = ExceptionDispatchInfo.Capture(exception);
                }
            },
            null,
            Timeout.InfiniteTimeSpan);
        failure?.Throw();
    }

    public void Run(ReadOnlySpan<byte> input)
    {
        var reader = new FuzzInput(input);
        ushort clear = reader.UInt16();
        byte mode = reader.Byte();
        ulong wanted = ulong.MaxValue;
        ulong[] clearable = [NetFeatures.Csum, NetFeatures.HostTso4, NetFeatures.HostTso6, NetFeatures.Mtu, NetFeatures.CtrlRx, NetFeatures.CtrlMacAddr, NetFeatures.Mq, VirtioFeatures.EventIdx, VirtioFeatures.IndirectDescriptors,
            NetFeatures.MrgRxBuf, NetFeatures.GuestCsum, NetFeatures.GuestTso4, NetFeatures.GuestTso6];
        for (int bit = 0; bit < clearable.Length; bit++)
        {
            wanted &= (clear & (1 << bit)) != 0 ? ~clearable[bit] : ulong.MaxValue;
        }

        bool eventIdx = (wanted & VirtioFeatures.EventIdx) != 0, indirect = (wanted & VirtioFeatures.IndirectDescriptors) != 0;
        var guests = new GuestDriver[Queues];
        for (int q = 0; q < Queues; q++)
        {
            guests[q] = new GuestDriver(_memory, new GuestAddress(0x1000 + ((ulong)q * 0x2000)), QueueSize, HeapStart + ((ulong)q * HeapPerQueue), BlockSize, eventIdx, indirect, 0, HeapPerQueue);
        }

        _device.SetLinkUp(true);
        ulong negotiated;
        try
        {
            negotiated = _mmio.Initialize(wanted, guests);
        }
        catch (InvalidOperationException) when ((_mmio.Status & DeviceStatus.FeaturesOk) == 0)
        {
            return; // a combination the spec forbids (HOST_TSO4 without CSUM, ...): refusing it is right
        }

        _device.SetLinkUp((mode & 2) == 0);
        Drain(); // frames of an earlier input the peers still hold

        if (!_control && (mode & 1) != 0 && (negotiated & NetFeatures.Mq) != 0)
        {
            UseBothPairs(guests[Queues - 1]);
        }

        // virtio 1.2 §5.1.2: the control queue follows the last pair, the first one without MQ.
        int controlIndex = (negotiated & NetFeatures.Mq) != 0 ? Queues - 1 : 2;
        if (_mode == NetFuzzMode.Receive)
        {
            SendFrames(ref reader);
        }

        int queueIndex = _mode switch
        {
            NetFuzzMode.Control => controlIndex,
            NetFuzzMode.Receive => 0,
            _ => 1 + (2 * (mode & 1)),
        };
        GuestDriver guest = guests[queueIndex];
        SplitVirtqueue queue = _device.Queues[queueIndex];
        bool inOrder = true;
        _posted.Clear();
        _byHead.Clear();
        _received.Clear();
        while (!reader.IsEmpty && _posted.Count < QueueSize && FuzzedChains.Post(ref reader, guest, (mode & 4) != 0, ref inOrder) is { } chain)
        {
            _posted.Add(chain);
            _byHead[chain.Head] = chain;
        }

        _guard.Snapshot();
        foreach (GuestDriver g in guests)
        {
            _guard.AllowWrite(g.UsedRing.Value, (ulong)g.Layout.UsedRingSize);
        }

        _guard.AllowWrite(guest.AvailRing.Value + SplitRingLayout.AvailIdxOffset, 2); // the guest's own kick
        foreach (PostedChain posted in _posted)
        {
            FuzzedChains.AllowWrites(_guard, posted);
        }

        long framesBefore = _device.Counters.TxFrames, receivedBefore = _device.Counters.RxFrames;
        guest.Kick();
        _mmio.Notify((ushort)queueIndex);
        _logger.ThrowIfFaulted();
        Invariant.Check(queue.Error != QueueError.DeviceFailed, "device code threw: the queue failed");
        Invariant.Check(!inOrder || queue.Error == QueueError.None, $"chains that follow the ring rules broke the queue ({queue.Error})");
        _guard.Verify(Name);

        int completed = 0;
        while (guest.TryGetUsed(out ushort head, out uint length))
        {
            Invariant.Check(++completed <= _posted.Count, $"{completed} completions for {_posted.Count} chains posted");
            if (!_byHead.Remove(head, out PostedChain? chain))
            {
                Invariant.Fail($"head {head} came back but was not posted, or came back twice");
            }

            if (_control)
            {
                CheckAck(guest, chain, length);
            }
            else if (_mode == NetFuzzMode.Receive)
            {
                Invariant.Check(length <= chain.WritableLength, $"a receive chain of {chain.WritableLength} writable bytes came back with length {length}");
                _received.Add((chain, length));
            }
            else
            {
                Invariant.Check(length == 0, $"a transmit chain came back with length {length}");
            }
        }

        // A transmit queue of a pair the driver has not enabled (VQ_PAIRS_SET) is not served; a
        // receive queue keeps the chains it has no frame for.
        bool served = _mode == NetFuzzMode.Control || (_mode == NetFuzzMode.Transmit && (mode & 1) < _device.ActiveQueuePairs);
        Invariant.Check(!inOrder || !served || _byHead.Count == 0, $"{_byHead.Count} in-order chains did not come back after the kick");
        if (_mode == NetFuzzMode.Transmit)
        {
            CheckFrames(_pairs[mode & 1].Second, negotiated, framesBefore);
        }
        else if (_mode == NetFuzzMode.Receive)
        {
            CheckReceived(guest, negotiated, receivedBefore);
        }
    }

    /// <summary>Matches each frame the peer received with the next transmitted chain that carries it.</summary>
    private void CheckFrames(INetBackend peer, ulong negotiated, long framesBefore)
    {
        int next = 0, frames = 0;
        while (peer.TryReceive(_frame, out int length, out VirtioNetHeader header))
        {
            frames++;
            ReadOnlySpan<byte> frame = _frame.AsSpan(0, length);
            CheckHeader(header, length, negotiated);
            while (next < _posted.Count && !Carries(_posted[next], header, frame))
            {
                next++;
            }

            Invariant.Check(next < _posted.Count, $"the peer received a {length}-byte frame no chain sent, or out of order");
            next++;
        }

        Invariant.Check(_device.Counters.TxFrames - framesBefore == frames, $"the device counted {_device.Counters.TxFrames - framesBefore} frames, the peer received {frames}");
    }

    private static bool Carries(PostedChain chain, in VirtioNetHeader header, ReadOnlySpan<byte> frame)
    {
        if (chain.Readable.Length < VirtioNetHeader.Size || !chain.Readable.AsSpan(VirtioNetHeader.Size).SequenceEqual(frame))
        {
            return false;
        }

        VirtioNetHeader sent = VirtioNetHeader.Read(chain.Readable);
        return header == sent with { NumBuffers = 0 };
    }

    /// <summary>virtio 1.2 §5.1.6.2, independently of the device's own check.</summary>
    private void CheckHeader(in VirtioNetHeader header, int length, ulong negotiated)
    {
        byte gso = (byte)(header.GsoType & ~VirtioNetHeader.GsoEcn);
        bool needsCsum = (header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0;
        Invariant.Check(length >= 14 && length <= NetDevice.MaxFrameLength, $"a {length}-byte frame was transmitted");
        Invariant.Check(!needsCsum || ((negotiated & NetFeatures.Csum) != 0 && header.ChecksumStart + header.ChecksumOffset + 2 <= length), $"NEEDS_CSUM at {header.ChecksumStart}+{header.ChecksumOffset} in a {length}-byte frame went out (CSUM {(negotiated & NetFeatures.Csum) != 0})");
        Invariant.Check((header.GsoType & VirtioNetHeader.GsoEcn) == 0 || (negotiated & NetFeatures.HostEcn) != 0, "a GSO ECN frame went out without HOST_ECN");
        bool gsoAllowed = gso switch
        {
            VirtioNetHeader.GsoNone => (header.GsoType & VirtioNetHeader.GsoEcn) == 0,
            VirtioNetHeader.GsoTcpV4 => (negotiated & NetFeatures.HostTso4) != 0,
            VirtioNetHeader.GsoTcpV6 => (negotiated & NetFeatures.HostTso6) != 0,
            VirtioNetHeader.GsoUdp => (negotiated & NetFeatures.HostUfo) != 0,
            _ => false,
        };
        Invariant.Check(gsoAllowed && (gso == VirtioNetHeader.GsoNone || needsCsum), $"a frame with GSO type 0x{header.GsoType:x2} (NEEDS_CSUM {needsCsum}) went out");
        bool mtuLimited = (negotiated & NetFeatures.Mtu) != 0 && (negotiated & (NetFeatures.HostTso4 | NetFeatures.HostTso6)) == 0;
        Invariant.Check(gso != VirtioNetHeader.GsoNone || !mtuLimited || length <= Mtu + 18, $"a {length}-byte frame went out past the MTU of {Mtu}");
    }

    private void CheckAck(GuestDriver guest, PostedChain chain, uint length)
    {
        if (chain.WritableLength == 0)
        {
            Invariant.Check(length == 0, $"a control chain with no ack byte came back with length {length}");
            return;
        }

        Invariant.Check(length == 1, $"a control chain came back with length {length}");
        FuzzedChains.ReadWritable(guest, chain, _ack);
        byte ack = _ack[0];
        Invariant.Check(ack is 0 or 1, $"ack 0x{ack:x2}");
        ReadOnlySpan<byte> command = chain.Readable;
        if (ack != 0)
        {
            return;
        }

        Invariant.Check(command.Length >= 2, $"a {command.Length}-byte control command was acknowledged OK");
        ReadOnlySpan<byte> data = command[2..];
        switch ((command[0], command[1]))
        {
            case (0, 0) or (0, 1):
                Invariant.Check(data.Length == 1, $"RX command {command[1]} with {data.Length} bytes of data said OK");
                break;
            case (1, 0):
                break; // MAC_TABLE_SET: variable length, the tables' own counts
            case (1, 1):
                Invariant.Check(data.Length == 6, $"MAC_ADDR_SET with {data.Length} bytes said OK");
                break;
            case (4, 0):
                ushort pairs = data.Length == 2 ? BinaryPrimitives.ReadUInt16LittleEndian(data) : (ushort)0;
                Invariant.Check(pairs is 1 or 2, $"VQ_PAIRS_SET of {pairs} pairs ({data.Length} bytes) said OK");
                break;
            default:
                Invariant.Fail($"control class {command[0]} command {command[1]} said OK");
                break;
        }

        if (IsLastOk(chain, command[0], command[1]))
        {
            CheckState(command[0], command[1], data);
        }
    }

    /// <summary>Whether no later chain set the same state with an OK ack (the device ends in the last one's state).</summary>
    private bool IsLastOk(PostedChain chain, byte cls, byte cmd)
    {
        for (int i = _posted.IndexOf(chain) + 1; i < _posted.Count; i++)
        {
            ReadOnlySpan<byte> later = _posted[i].Readable;
            if (later.Length >= 2 && later[0] == cls && later[1] == cmd)
            {
                return false; // it may have said OK too: the state is that one's
            }
        }

        return true;
    }

    private void CheckState(byte cls, byte cmd, ReadOnlySpan<byte> data)
    {
        switch ((cls, cmd))
        {
            case (0, 0):
                Invariant.Check(_device.Promiscuous == (data[0] != 0), "RX_PROMISC said OK and did not take");
                break;
            case (0, 1):
                Invariant.Check(_device.AllMulticast == (data[0] != 0), "RX_ALLMULTI said OK and did not take");
                break;
            case (1, 1):
                Invariant.Check(_device.MacAddress.GetAddressBytes().AsSpan().SequenceEqual(data), "MAC_ADDR_SET said OK and did not take");
                break;
            case (4, 0):
                Invariant.Check(_device.ActiveQueuePairs == BinaryPrimitives.ReadUInt16LittleEndian(data), "VQ_PAIRS_SET said OK and did not take");
                break;
        }
    }

    /// <summary>Net-rx: the peer sends up to 8 frames, each a u16 length, a 12-byte header and its bytes.</summary>
    private void SendFrames(ref FuzzInput reader)
    {
        _sent.Clear();
        int count = reader.Byte() & (MaxFrames - 1);
        Span<byte> raw = stackalloc byte[VirtioNetHeader.Size];
        for (int i = 0; i < count; i++)
        {
            int length = reader.UInt16() & 0x3FFF;
            reader.Fill(raw);
            VirtioNetHeader header = VirtioNetHeader.Read(raw) with { NumBuffers = 0 };
            byte[] frame = new byte[length];
            reader.Fill(frame);
            if (_pairs[0].Second.TryTransmit(header, new NetFrameSegments(frame)))
            {
                _sent.Add((frame, header));
            }
        }
    }

    /// <summary>
    /// Net-rx: puts the used chains back together into frames (num_buffers chains each with
    /// MRG_RXBUF, one without) and matches them, in order, with the frames the peer sent.
    /// </summary>
    private void CheckReceived(GuestDriver guest, ulong negotiated, long receivedBefore)
    {
        bool mergeable = (negotiated & NetFeatures.MrgRxBuf) != 0, guestCsum = (negotiated & NetFeatures.GuestCsum) != 0;
        int next = 0, frames = 0, i = 0;
        while (i < _received.Count)
        {
            (PostedChain first, uint firstLength) = _received[i];
            if (firstLength == 0)
            {
                i++; // returned unused
                continue;
            }

            // With MRG_RXBUF a guest whose buffers are shorter than a header (a driver requirement it
            // broke, virtio 1.2 §5.1.6.3.1) gets the header across chains; without, one chain holds it all.
            int total = CopyUsed(guest, first, firstLength, 0), taken = 1;
            while (mergeable && total < VirtioNetHeader.Size && i + taken < _received.Count)
            {
                (PostedChain more, uint moreLength) = _received[i + taken++];
                total = CopyUsed(guest, more, moreLength, total);
            }

            Invariant.Check(total >= VirtioNetHeader.Size, $"a frame came back in {taken} chain(s) of {total} bytes, less than a header");
            VirtioNetHeader header = VirtioNetHeader.Read(_merged);
            int buffers = mergeable ? header.NumBuffers : 1;
            Invariant.Check(buffers >= taken && i + buffers <= _received.Count, $"a frame says num_buffers {header.NumBuffers}, its header took {taken} and {_received.Count - i} chains came back");
            for (int b = taken; b < buffers; b++)
            {
                (PostedChain more, uint moreLength) = _received[i + b];
                total = CopyUsed(guest, more, moreLength, total);
            }

            i += buffers;
            frames++;
            byte gso = (byte)(header.GsoType & ~VirtioNetHeader.GsoEcn);
            Invariant.Check((header.Flags & ~(VirtioNetHeader.FlagNeedsCsum | VirtioNetHeader.FlagDataValid)) == 0, $"a received header has flags 0x{header.Flags:x2}");
            Invariant.Check(guestCsum || header == new VirtioNetHeader() with { NumBuffers = header.NumBuffers }, "a guest without GUEST_CSUM got offload fields in a header");
            Invariant.Check(gso == VirtioNetHeader.GsoNone
                || (gso == VirtioNetHeader.GsoTcpV4 && (negotiated & NetFeatures.GuestTso4) != 0)
                || (gso == VirtioNetHeader.GsoTcpV6 && (negotiated & NetFeatures.GuestTso6) != 0), $"a received frame has GSO type 0x{header.GsoType:x2}");
            ReadOnlySpan<byte> frame = _merged.AsSpan(VirtioNetHeader.Size, total - VirtioNetHeader.Size);
            while (next < _sent.Count && !SameFrame(_sent[next], frame, guestCsum))
            {
                next++;
            }

            Invariant.Check(next < _sent.Count, $"the guest received a {frame.Length}-byte frame the peer did not send, or out of order");
            next++;
        }

        // A frame delivered before a later chain broke the ring is counted but never published (a
        // broken ring publishes nothing): then the guest may see fewer than the device counted.
        long counted = _device.Counters.RxFrames - receivedBefore;
        bool broken = _device.Queues[0].Error != QueueError.None;
        Invariant.Check(counted == frames || (broken && counted > frames), $"the device counted {counted} received frames, the guest got {frames} (queue error {_device.Queues[0].Error})");
    }

    private int CopyUsed(GuestDriver guest, PostedChain chain, uint length, int at)
    {
        int copied = FuzzedChains.ReadWritable(guest, chain, _merged.AsSpan(at));
        return at + Math.Min(copied, (int)length);
    }

    /// <summary>Whether <paramref name="frame"/> is the one sent; without GUEST_CSUM the device fills in a partial checksum, so those two bytes may differ.</summary>
    private static bool SameFrame((byte[] Frame, VirtioNetHeader Header) sent, ReadOnlySpan<byte> frame, bool guestCsum)
    {
        if (sent.Frame.Length != frame.Length)
        {
            return false;
        }

        int checksumAt = !guestCsum && (sent.Header.Flags & VirtioNetHeader.FlagNeedsCsum) != 0 ? sent.Header.ChecksumStart + sent.Header.ChecksumOffset : -1;
        for (int i = 0; i < frame.Length; i++)
        {
            if (frame[i] != sent.Frame[i] && i != checksumAt && i != checksumAt + 1)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Enables the second queue pair as a driver does: VQ_PAIRS_SET 2 on the control queue.</summary>
    private void UseBothPairs(GuestDriver control)
    {
        int head = control.TryAddChain([BufferSpec.Readable(4), BufferSpec.Write(1)], fill: 0);
        var buffers = control.ChainBuffers((ushort)head);
        ReadOnlySpan<byte> command = [4, 0, 2, 0];
        command.CopyTo(control.Span(buffers[0].Address, 4));
        control.Kick();
        _mmio.Notify(Queues - 1);
        Invariant.Check(control.TryGetUsed(out _, out _) && _device.ActiveQueuePairs == 2, "VQ_PAIRS_SET 2 did not enable the second pair");
    }

    private void Drain()
    {
        foreach (LoopbackPair pair in _pairs)
        {
            while (pair.Second.TryReceive(_frame, out _, out _) || pair.First.TryReceive(_frame, out _, out _))
            {
            }
        }
    }

    public void Dispose()
    {
        _mmio.Status = DeviceStatus.None;
        _device.Dispose();
        _ioThread.Dispose();
        foreach (LoopbackPair pair in _pairs)
        {
            pair.Dispose();
        }

        _memory.Dispose();
    }
}
