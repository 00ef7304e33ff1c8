using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using Virtio.Core.Memory;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;

namespace Virtio.Bench.Soak;

/// <summary>
/// The soak's net side: connection after connection to the daemon's net socket on one
/// <see cref="NetRing"/>, every rx buffer offered, ARP and ICMP echo requests to the tap's address
/// at a bounded rate (the kernel in the namespace answers them through the daemon), memory-table
/// changes while running, and clean or abrupt disconnects as on the blk side. One thread.
/// </summary>
internal sealed class NetSoak(SoakOptions options, SoakCounters counters, TextWriter log) : IDisposable
{
    private const ulong VersionOne = 1ul << 32;
    private const double DrainSeconds = 5;
    private const int Rx = 0;
    private const int Tx = 1;

    private readonly SessionPlan _plan = new(options, options.Seed + 1);
    private readonly RateGate _rate = new(options.NetPps, 32);
    private readonly Stack<int> _freeTx = new();
    private readonly byte[] _peerMac = new byte[6];
    private readonly ushort[] _base = new ushort[2];
    private NetRing? _ring;
    private ReconnectState? _kept;
    private bool _abruptPending;
    private bool _peerKnown;
    private long _nextMemTable;
    private long _nextArp;
    private ushort _sequence;
    private int _txInFlight;

    /// <summary>The daemon's pid (SO_PEERCRED of the first connection); -1 until then.</summary>
    public int PeerProcessId { get; private set; } = -1;

    public long TxFrames { get; private set; }

    public long RxFrames { get; private set; }

    public long EchoReplies { get; private set; }

    public long ArpReplies { get; private set; }

    /// <summary>Tx frames still not used after the last connection (the device should return every one).</summary>
    public long TxLost { get; private set; }

    public void Run(long deadline, ManualResetEventSlim connected, CancellationToken stop)
    {
        _nextMemTable = _plan.NextMemTableChange(Stopwatch.GetTimestamp());
        ConnectionLoop.Run(Connect, frontEnd => RunSession(frontEnd, deadline, stop), deadline, connected, stop);

        TxLost = _txInFlight;
    }

    public void Dispose()
    {
        _kept?.Dispose();
        _ring?.Dispose();
    }

    private VhostUserFrontEnd Connect()
    {
        VhostUserFrontEnd frontEnd = VhostUserFrontEnd.Connect(options.NetSocket!);
        try
        {
            VhostUserNegotiation negotiation = frontEnd.Negotiate(VersionOne, VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.MultiQueue | VhostUserProtocolFeatures.InFlightSharedMemory);
            if (_ring is null)
            {
                PeerProcessId = frontEnd.PeerProcessId;
                _ring = new NetRing();
                _kept = new ReconnectState(_ring.Memory, 2, NetRing.QueueSize, counters);
                for (int slot = NetRing.QueueSize - 1; slot >= 0; slot--)
                {
                    _freeTx.Push(slot);
                    _ring.PostRx(slot);
                }

                log.WriteLine($"# soak net: {options.NetSocket}, pid {PeerProcessId}, rings of {NetRing.QueueSize}, {options.NetPps} frames/s at most, protocol {negotiation.ProtocolFeatures}");
            }

            NetRing ring = _ring!;
            _kept!.HandOver(frontEnd, negotiation);
            Harvest();
            if (_abruptPending)
            {
                // As on blk: the daemon drained the closed connection's rings, so used->idx is where it stopped.
                _base[Rx] = ring.LastUsed(Rx);
                _base[Tx] = ring.LastUsed(Tx);
                _abruptPending = false;
            }

            frontEnd.StartVring(Rx, ring.Setup(Rx, _base[Rx]));
            frontEnd.StartVring(Tx, ring.Setup(Tx, _base[Tx]));
            ring.Publish(Rx);
            return frontEnd;
        }
        catch
        {
            frontEnd.Dispose();
            throw;
        }
    }

    private void RunSession(VhostUserFrontEnd frontEnd, long deadline, CancellationToken stop)
    {
        NetRing ring = _ring!;
        long sessionEnd = _plan.SessionEnd(Stopwatch.GetTimestamp());
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (stop.IsCancellationRequested || now >= deadline || now >= sessionEnd)
            {
                break;
            }

            if (now >= _nextMemTable)
            {
                _kept!.ChangeMemoryTable(frontEnd);
                _nextMemTable = _plan.NextMemTableChange(now);
            }

            bool sent = false;
            while (_freeTx.Count > 0 && _rate.TryTake(now))
            {
                Send(_freeTx.Pop(), now);
                sent = true;
            }

            if (sent)
            {
                ring.Publish(Tx);
            }

            if (Harvest() == 0)
            {
                ring.WaitCalls(5);
            }
        }

        bool abrupt = Stopwatch.GetTimestamp() < deadline && !stop.IsCancellationRequested && _plan.NextIsAbrupt();
        if (abrupt)
        {
            // Mid-I/O, as on blk: a burst of up to 16 frames past the rate limit, then the socket closed at once.
            for (int i = 0; i < 16 && _freeTx.Count > 0; i++)
            {
                Send(_freeTx.Pop(), Stopwatch.GetTimestamp());
            }

            ring.Publish(Tx);
        }

        int inFlight = _txInFlight;
        if (abrupt)
        {
            frontEnd.Dispose();
            _abruptPending = true;
        }
        else
        {
            long giveUp = Stopwatch.GetTimestamp() + SessionPlan.Ticks(DrainSeconds);
            while (_txInFlight > 0 && Stopwatch.GetTimestamp() < giveUp)
            {
                if (Harvest() == 0)
                {
                    ring.WaitCalls(5);
                }
            }

            _base[Rx] = frontEnd.GetVringBase(Rx);
            _base[Tx] = frontEnd.GetVringBase(Tx);
            frontEnd.Dispose();
            Harvest(); // rx buffers the stop gave back
        }

        counters.Reconnected(abrupt, inFlight);
    }

    private void Send(int slot, long now)
    {
        NetRing ring = _ring!;
        int length;
        if (!_peerKnown || now >= _nextArp)
        {
            length = NetFrames.WriteArpRequest(ring.TxFrame(slot));
            _nextArp = now + SessionPlan.Ticks(_peerKnown ? 1 : 0.1);
        }
        else
        {
            _sequence++;
            length = NetFrames.WriteEchoRequest(ring.TxFrame(slot), _peerMac, _sequence, 32 + (_sequence % 1400));
        }

        ring.PostTx(slot, length);
        _txInFlight++;
    }

    private int Harvest()
    {
        NetRing ring = _ring!;
        int got = 0;
        while (ring.TryTakeUsed(Tx, out int slot, out _))
        {
            got++;
            TxFrames++;
            _txInFlight--;
            _freeTx.Push(slot);
        }

        long frames = got;
        int rx = 0;
        while (ring.TryTakeUsed(Rx, out int slot, out int length))
        {
            rx++;
            ReadOnlySpan<byte> frame = ring.RxFrame(slot, length);
            if (frame.Length > 0)
            {
                RxFrames++;
                frames++;
                if (NetFrames.IsEchoReply(frame))
                {
                    EchoReplies++;
                }
                else if (NetFrames.IsPeerArpReply(frame, _peerMac))
                {
                    ArpReplies++;
                    _peerKnown = true;
                }
            }

            ring.PostRx(slot);
        }

        if (rx > 0)
        {
            ring.Publish(Rx);
        }

        counters.AddNetFrames(frames);
        return got + rx;
    }
}
