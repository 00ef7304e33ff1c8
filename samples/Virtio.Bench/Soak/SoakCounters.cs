using System.Threading;

namespace Virtio.Bench.Soak;

/// <summary>Counters the blk and net load threads add to and the sampler reads; any thread.</summary>
internal sealed class SoakCounters
{
    private long _reconnects;
    private long _abruptDisconnects;
    private long _inFlightAtAbrupt;
    private long _memTableChanges;
    private long _blkOps;
    private long _netFrames;

    /// <summary>Connections closed and made again (blk and net), clean or abrupt.</summary>
    public long Reconnects => Volatile.Read(ref _reconnects);

    /// <summary>Of <see cref="Reconnects"/>, those where the socket was closed with requests in flight.</summary>
    public long AbruptDisconnects => Volatile.Read(ref _abruptDisconnects);

    /// <summary>Requests (blk) and tx frames (net) in flight when an abrupt disconnect closed the socket, summed.</summary>
    public long InFlightAtAbrupt => Volatile.Read(ref _inFlightAtAbrupt);

    /// <summary>SET_MEM_TABLE messages sent on a running connection (fresh fds, new host addresses).</summary>
    public long MemTableChanges => Volatile.Read(ref _memTableChanges);

    /// <summary>Blk requests completed (reads and writes, the verify pass included).</summary>
    public long BlkOps => Volatile.Read(ref _blkOps);

    /// <summary>Net frames sent (tx used) plus frames received (rx used with a frame in it).</summary>
    public long NetFrames => Volatile.Read(ref _netFrames);

    public void Reconnected(bool abrupt, int inFlight)
    {
        Interlocked.Increment(ref _reconnects);
        if (abrupt)
        {
            Interlocked.Increment(ref _abruptDisconnects);
            Interlocked.Add(ref _inFlightAtAbrupt, inFlight);
        }
    }

    public void MemTableChanged() => Interlocked.Increment(ref _memTableChanges);

    public void AddBlkOps(long count) => Interlocked.Add(ref _blkOps, count);

    public void AddNetFrames(long count) => Interlocked.Add(ref _netFrames, count);
}
