using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using Virtio.Core.Memory;
using Virtio.VhostUser.FrontEnd;
using Virtio.VhostUser.Protocol;

namespace Virtio.Bench.Soak;

/// <summary>
/// The soak's blk side: connection after connection to the daemon's blk socket on one
/// <see cref="BlkRing"/> (the bench's driver, kept across connections like a VMM keeps its guest),
/// random reads and writes (every write stamped and recorded in a <see cref="BlkLedger"/>, every read
/// checked), memory-table changes while requests are in flight, and a disconnect at the end of each
/// connection: clean (drained, GET_VRING_BASE) or abrupt (the socket closed with requests in flight,
/// which the next connection collects from the used ring once the daemon drained them). After the
/// deadline a verify pass reads every block back. One thread.
/// </summary>
internal sealed class BlkSoak(SoakOptions options, SoakCounters counters, TextWriter log) : IDisposable
{
    private const ulong VersionOne = 1ul << 32;
    private const ulong EventIdx = 1ul << 29;
    private const int BlockSize = 4096;
    private const int Sector = 512;
    private const double DrainSeconds = 10;

    private readonly SessionPlan _plan = new(options, options.Seed);
    private readonly RateGate _rate = new(options.BlkIops, Math.Max(1, options.QueueDepth));
    private readonly Stack<int> _free = new();
    private BlkRing? _ring;
    private BlkLedger? _ledger;
    private ReconnectState? _kept;
    private long[] _slotBlock = [];
    private ulong[] _slotGeneration = [];
    private bool[] _slotWrite = [];
    private int _inFlightCount;
    private ushort _base;
    private bool _abruptPending;
    private long _nextMemTable;
    private bool _verifying;
    private int _inFlightAtClose;

    /// <summary>The daemon's pid (SO_PEERCRED of the first connection); -1 until then.</summary>
    public int PeerProcessId { get; private set; } = -1;

    /// <summary>Reads during the load that found an acknowledged write missing.</summary>
    public long OnlineLost { get; private set; }

    /// <summary>Blocks of the verify pass whose acknowledged write was missing.</summary>
    public long VerifyLost { get; private set; }

    /// <summary>Reads (load or verify) that were neither zeros nor an intact pattern of their block.</summary>
    public long Corrupt { get; private set; }

    /// <summary>Requests completed with a non-OK status, or never completed.</summary>
    public long Errors { get; private set; }

    /// <summary>Blocks read back by the verify pass, and of those, blocks with an acknowledged write.</summary>
    public long VerifiedBlocks { get; private set; }

    public long AckedBlocks { get; private set; }

    public void Run(long deadline, ManualResetEventSlim connected, CancellationToken stop)
    {
        _nextMemTable = _plan.NextMemTableChange(Stopwatch.GetTimestamp());
        ConnectionLoop.Run(Connect, frontEnd => RunSession(frontEnd, deadline, stop), deadline, connected, stop);

        using (VhostUserFrontEnd verify = Connect())
        {
            connected.Set();
            Verify();
            Disconnect(verify, abrupt: false);
        }
    }

    public void Dispose()
    {
        _kept?.Dispose();
        _ring?.Dispose();
    }

    private VhostUserFrontEnd Connect()
    {
        VhostUserFrontEnd frontEnd = VhostUserFrontEnd.Connect(options.BlkSocket);
        try
        {
            // Negotiate's reply comes once the daemon finished the previous connection (it serves one
            // at a time, and drains that one's rings before it accepts the next).
            VhostUserNegotiation negotiation = frontEnd.Negotiate(
                VersionOne | EventIdx,
                VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.MultiQueue | VhostUserProtocolFeatures.InFlightSharedMemory);
            if (_ring is null)
            {
                PeerProcessId = frontEnd.PeerProcessId;
                Span<byte> capacityBytes = stackalloc byte[8];
                frontEnd.GetConfig(0, capacityBytes);
                ulong capacity = BinaryPrimitives.ReadUInt64LittleEndian(capacityBytes) * Sector;
                long blocks = (long)(Math.Min(capacity, (ulong)options.SizeMiB << 20) / BlockSize);
                if (blocks < options.QueueDepth * 4L)
                {
                    throw new ArgumentException($"the blk device ({capacity} bytes) is too small for {options.QueueDepth} requests in flight");
                }

                _ring = new BlkRing(options.QueueDepth, BlockSize, write: false, (negotiation.Features & EventIdx) != 0);
                _ledger = new BlkLedger(blocks);
                _kept = new ReconnectState(_ring.Memory, 1, _ring.QueueSize, counters);
                _slotBlock = new long[_ring.Slots];
                _slotGeneration = new ulong[_ring.Slots];
                _slotWrite = new bool[_ring.Slots];
                for (int slot = _ring.Slots - 1; slot >= 0; slot--)
                {
                    _free.Push(slot);
                }

                log.WriteLine($"# soak blk: {options.BlkSocket}, pid {PeerProcessId}, {blocks} blocks of {BlockSize} B, qd {options.QueueDepth}, ring of {_ring.QueueSize}, protocol {negotiation.ProtocolFeatures}");
            }

            _kept!.HandOver(frontEnd, negotiation);
            Harvest();
            if (_abruptPending)
            {
                // The daemon drained the rings of the closed connection: everything it popped is on the
                // used ring, so used->idx is also where it stopped reading the available ring.
                _base = _ring.LastUsed;
                _abruptPending = false;
            }

            frontEnd.StartVring(0, _ring.Setup() with { NextAvail = _base });
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
        BlkRing ring = _ring!;
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

            while (_free.Count > 0 && _rate.TryTake(now) && TryPostRandom())
            {
            }

            ring.Publish();
            if (Harvest() == 0)
            {
                Wait(ring);
            }
        }

        bool abrupt = Stopwatch.GetTimestamp() < deadline && !stop.IsCancellationRequested && _plan.NextIsAbrupt();
        Disconnect(frontEnd, abrupt);
        counters.Reconnected(abrupt, _inFlightAtClose);
    }

    private void Disconnect(VhostUserFrontEnd frontEnd, bool abrupt)
    {
        if (abrupt)
        {
            // Mid-I/O: fill every free slot (past the rate limit, a burst of at most --qd), publish, and
            // close the socket at once, so the daemon sees the hang-up with those requests in flight.
            while (_free.Count > 0 && TryPostRandom())
            {
            }

            _ring!.Publish();
            _inFlightAtClose = _inFlightCount;
            frontEnd.Dispose();
            _abruptPending = true;
            return;
        }

        long giveUp = Stopwatch.GetTimestamp() + SessionPlan.Ticks(DrainSeconds);
        while (_inFlightCount > 0 && Stopwatch.GetTimestamp() < giveUp)
        {
            if (Harvest() == 0)
            {
                Wait(_ring!);
            }
        }

        _base = frontEnd.GetVringBase(0);
        frontEnd.Dispose();
    }

    /// <summary>Reads every block of the region back and checks it against the ledger.</summary>
    private void Verify()
    {
        BlkRing ring = _ring!;
        BlkLedger ledger = _ledger!;
        long next = 0;
        long giveUp = Stopwatch.GetTimestamp() + SessionPlan.Ticks(DrainSeconds);
        _verifying = true;
        while (next < ledger.Blocks || _inFlightCount > 0)
        {
            while (_free.Count > 0 && next < ledger.Blocks && ledger.TryReserve(next))
            {
                Post(_free.Pop(), next, write: false);
                next++;
            }

            ring.Publish();
            int got = Harvest();
            if (got > 0)
            {
                giveUp = Stopwatch.GetTimestamp() + SessionPlan.Ticks(DrainSeconds);
            }
            else if (Stopwatch.GetTimestamp() > giveUp)
            {
                Errors += _inFlightCount + (ledger.Blocks - next);
                log.WriteLine($"# soak blk: verify pass stalled with {_inFlightCount} request(s) in flight and {ledger.Blocks - next} block(s) not read");
                break;
            }
            else
            {
                Wait(ring);
            }
        }

        _verifying = false;
        VerifiedBlocks = next;
        AckedBlocks = ledger.AckedBlocks;
    }

    private bool TryPostRandom()
    {
        BlkLedger ledger = _ledger!;
        long block = _plan.Next(ledger.Blocks);
        for (int probe = 0; probe < 16; probe++, block = (block + 1) % ledger.Blocks)
        {
            if (ledger.TryReserve(block))
            {
                Post(_free.Pop(), block, _plan.Chance(options.WritePercent));
                return true;
            }
        }

        return false;
    }

    private void Post(int slot, long block, bool write)
    {
        BlkRing ring = _ring!;
        ring.SetDirection(slot, write);
        _slotBlock[slot] = block;
        _slotWrite[slot] = write;
        if (write)
        {
            ulong generation = _ledger!.PostWrite(block);
            _slotGeneration[slot] = generation;
            BlkLedger.Fill(ring.Data(slot), block, generation);
        }
        else
        {
            ring.Data(slot).Fill(0xA5); // a read that writes nothing must not pass as a zero block
        }

        ring.Post(slot, (ulong)block * (BlockSize / Sector));
        _inFlightCount++;
    }

    /// <summary>Takes every completion on the used ring; returns how many.</summary>
    private int Harvest()
    {
        BlkRing ring = _ring!;
        BlkLedger ledger = _ledger!;
        int got = 0;
        while (ring.TryTakeUsed(out int slot, out byte status))
        {
            got++;
            _inFlightCount--;
            long block = _slotBlock[slot];
            if (status != 0)
            {
                Errors++;
            }
            else if (_slotWrite[slot])
            {
                ledger.Acknowledge(block, _slotGeneration[slot]);
            }
            else
            {
                switch (ledger.Check(ring.Data(slot), block))
                {
                    case ReadVerdict.Lost when _verifying:
                        VerifyLost++;
                        log.WriteLine($"# soak blk: block {block} lost its acknowledged write (verify pass)");
                        break;
                    case ReadVerdict.Lost:
                        OnlineLost++;
                        log.WriteLine($"# soak blk: block {block} lost its acknowledged write");
                        break;
                    case ReadVerdict.Corrupt:
                        Corrupt++;
                        log.WriteLine($"# soak blk: block {block} holds no intact pattern{(_verifying ? " (verify pass)" : "")}");
                        break;
                }
            }

            ledger.Release(block);
            _free.Push(slot);
        }

        counters.AddBlkOps(got);
        return got;
    }

    private void Wait(BlkRing ring)
    {
        if (_inFlightCount == 0)
        {
            Thread.Sleep(1);
            return;
        }

        if (!ring.EnableCallsAndCheck())
        {
            ring.WaitCall(5);
        }

        ring.SuppressCalls();
    }
}
