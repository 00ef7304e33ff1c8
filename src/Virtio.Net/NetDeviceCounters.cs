using System;
using System.Threading;

namespace Virtio.Net;

/// <summary>
/// One device's frame, byte and drop counts (the same events the "Virtio.Net" meter reports across
/// devices). Updated by the queue-processing threads; any thread may read them.
/// </summary>
public sealed class NetDeviceCounters
{
    private readonly long[] _drops = new long[Enum.GetValues<NetDropReason>().Length];
    private long _txFrames;
    private long _txBytes;
    private long _rxFrames;
    private long _rxBytes;
    private long _rxStalls;

    /// <summary>Frames handed to the backend.</summary>
    public long TxFrames => Volatile.Read(ref _txFrames);

    /// <summary>Bytes handed to the backend (frames without headers).</summary>
    public long TxBytes => Volatile.Read(ref _txBytes);

    /// <summary>Frames delivered to the guest.</summary>
    public long RxFrames => Volatile.Read(ref _rxFrames);

    /// <summary>Bytes delivered to the guest (frames without headers).</summary>
    public long RxBytes => Volatile.Read(ref _rxBytes);

    /// <summary>Times receive stopped reading the backend because the guest had no buffers (frames wait, none are lost).</summary>
    public long RxStalls => Volatile.Read(ref _rxStalls);

    /// <summary>Frames dropped for <paramref name="reason"/>.</summary>
    /// <param name="reason">The reason.</param>
    /// <returns>The count.</returns>
    public long Drops(NetDropReason reason) => Volatile.Read(ref _drops[(int)reason]);

    internal void Transmitted(int bytes)
    {
        Interlocked.Increment(ref _txFrames);
        Interlocked.Add(ref _txBytes, bytes);
    }

    internal void Received(int bytes)
    {
        Interlocked.Increment(ref _rxFrames);
        Interlocked.Add(ref _rxBytes, bytes);
    }

    internal void Stalled() => Interlocked.Increment(ref _rxStalls);

    internal void Dropped(NetDropReason reason) => Interlocked.Increment(ref _drops[(int)reason]);
}
