using System;
using System.Diagnostics;
using System.Threading;

namespace Virtio.Bench;

/// <summary>
/// The request loop of one run: keeps every slot of a <see cref="BlkRing"/> in flight until the
/// deadline, then drains (bounded). Allocation-free from the first post to the last completion
/// (<see cref="AllocatedInLoop"/> measures it); one thread.
/// </summary>
internal sealed class Runner
{
    private const int WaitSliceMs = 100;
    private const double DrainSeconds = 5;

    private readonly BlkRing _ring;
    private readonly BlkOptions _options;
    private readonly long _blocks;
    private readonly bool _write;
    private readonly bool _random;
    private readonly long[] _postedAt;
    private readonly long[] _blockOf;
    private readonly uint _sectorsPerBlock;
    private readonly double _nanosecondsPerTick = 1e9 / Stopwatch.Frequency;
    private ulong _rng = 0x2545F4914F6CDD1Dul;
    private long _sequential;
    private long _posted;

    public Runner(BlkRing ring, BlkOptions options, long blocks, bool write)
    {
        _ring = ring;
        _options = options;
        _blocks = blocks;
        _write = write;
        _random = options.Pattern is IoPattern.RandRead or IoPattern.RandWrite;
        _postedAt = new long[ring.Slots];
        _blockOf = new long[ring.Slots];
        _sectorsPerBlock = (uint)(options.BlockSize / 512);
    }

    /// <summary>Stop posting after this many requests (0: only the deadline stops it).</summary>
    public long StopAfter { get; init; }

    public LatencyHistogram Latency { get; } = new();

    public long Completed { get; private set; }

    public long Kicks { get; private set; }

    public long Calls { get; private set; }

    public long Errors { get; private set; }

    public long AllocatedInLoop { get; private set; }

    public double ElapsedSeconds { get; private set; }

    /// <summary>Passes over the used ring that found nothing new: time the loop spent waiting for the back end, not working.</summary>
    public long EmptyPolls { get; private set; }

    public void Execute()
    {
        bool poll = _options.Mode == NotifyMode.Poll;
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(_options.Seconds * Stopwatch.Frequency);
        long giveUp = end + (long)(DrainSeconds * Stopwatch.Frequency);
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        _ring.SuppressCalls();
        int inFlight = 0;
        for (int slot = 0; slot < _ring.Slots && !Done(start, end); slot++)
        {
            Post(slot, start);
            inFlight++;
        }

        Kicks += _ring.Publish() ? 1 : 0;
        long now = start;
        while (inFlight > 0)
        {
            now = Stopwatch.GetTimestamp();
            bool stopping = Done(now, end);
            int got = 0;
            // One clock read per pass (a vDSO clock_gettime costs ~45 ns here, three per request showed
            // in the profile): `now` stamps every completion found in the pass (read just before they
            // were seen) and every re-post (published only after the pass). A pass takes at most
            // QueueDepth completions, since nothing re-posted in it is visible to the device yet.
            while (_ring.TryTakeUsed(out int slot, out byte status))
            {
                got++;
                Complete(slot, status, now);
                inFlight--;
                if (!stopping)
                {
                    Post(slot, now);
                    inFlight++;
                }
            }

            if (got > 0)
            {
                Kicks += _ring.Publish() ? 1 : 0;
                continue;
            }

            EmptyPolls++;
            if (now > giveUp)
            {
                Errors += inFlight; // never completed: counted as failures, the run stays bounded
                break;
            }

            if (!poll && !_ring.EnableCallsAndCheck())
            {
                Calls += _ring.WaitCall(WaitSliceMs);
                _ring.SuppressCalls();
            }
            else if (!poll)
            {
                _ring.SuppressCalls();
            }
            else
            {
                Thread.SpinWait(1);
            }
        }

        Calls += _ring.DrainCalls();
        AllocatedInLoop = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        ElapsedSeconds = (now - start) / (double)Stopwatch.Frequency;
    }

    private bool Done(long now, long end) => now >= end || (StopAfter > 0 && _posted >= StopAfter);

    private void Post(int slot, long now)
    {
        long block;
        if (_random)
        {
            // xorshift64: no allocation, good enough to spread offsets.
            _rng ^= _rng << 13;
            _rng ^= _rng >> 7;
            _rng ^= _rng << 17;
            // Multiply-high instead of a 64-bit division: the top bits of rng * blocks are in [0, blocks).
            block = (long)Math.BigMul(_rng, (ulong)_blocks, out _);
        }
        else
        {
            block = _sequential;
            _sequential = (_sequential + 1) % _blocks;
        }

        _blockOf[slot] = block;
        if (_write && _options.Verify)
        {
            BlkLoad.FillPattern(_ring.Data(slot), block);
        }

        _postedAt[slot] = now;
        _ring.Post(slot, (ulong)block * _sectorsPerBlock);
        _posted++;
    }

    private void Complete(int slot, byte status, long completedAt)
    {
        Completed++;
        Latency.Record((long)((completedAt - _postedAt[slot]) * _nanosecondsPerTick));
        if (status != 0 || (!_write && _options.Verify && !BlkLoad.CheckPattern(_ring.Data(slot), _blockOf[slot])))
        {
            Errors++;
        }
    }
}
