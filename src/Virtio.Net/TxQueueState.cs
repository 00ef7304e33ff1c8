namespace Virtio.Net;

/// <summary>
/// The transmit side of one queue pair: the readable buffers of the chain being sent, kept
/// between chains so nothing is allocated per frame. Touched only while its queue is processed.
/// </summary>
internal sealed class TxQueueState(NetDevice device, int pair, int maxSegments)
{
    public NetDevice Device { get; } = device;

    public int Pair { get; } = pair;

    public ushort QueueIndex { get; } = (ushort)((2 * pair) + 1);

    public NetSegment[] Segments { get; } = new NetSegment[maxSegments];
}
