using System.Threading;
using Microsoft.Extensions.Logging;
using Virtio.Core.Queues;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// Pins, for one queue of the served device, the memory-table generation each in-flight chain was
/// popped under: <see cref="ChainTaken"/> pins <see cref="VhostUserMemory.Current"/> and remembers
/// it by head, <see cref="ChainReleased"/> unpins that one. Set as the queue's
/// <see cref="SplitVirtqueue.Pinning"/> once, by the server, for the device's lifetime: a request
/// may outlive the connection (and the ring start) it was popped under.
/// </summary>
/// <remarks>
/// Called by the queue on the thread that processes it or returns the chain; the device serializes
/// them per queue, so the per-head slots need no lock. No allocation: one slot per head, allocated
/// here. A head is unique while its chain is in flight, across restarts too (the queue keeps a
/// stale chain's head reserved); only a device reset forgets in-flight chains, and a pin left in
/// the slot then is kept (leaked, logged once) rather than dropped under a request that may run.
/// </remarks>
internal sealed class GenerationPins : IChainPinning
{
    private readonly VhostUserMemory _memory;
    private readonly ILogger _logger;
    private readonly ushort _queueIndex;
    private readonly MemoryTableGeneration?[] _pinned;
    private int _held;
    private bool _leakLogged;

    public GenerationPins(VhostUserMemory memory, ushort queueIndex, ushort maxSize, ILogger logger)
    {
        _memory = memory;
        _queueIndex = queueIndex;
        _logger = logger;
        _pinned = new MemoryTableGeneration?[maxSize];
    }

    /// <summary>
    /// Chains taken and not released: the queue's requests still holding guest memory, a broken
    /// queue's and stale ones included (a slot a reset forgot counts until its head is taken again).
    /// Any thread.
    /// </summary>
    public int Held => Volatile.Read(ref _held);

    public void ChainTaken(ushort head)
    {
        MemoryTableGeneration? generation = _memory.Current;
        if (head >= _pinned.Length || generation is null)
        {
            return;
        }

        if (_pinned[head] is MemoryTableGeneration forgotten)
        {
            // The queue was reset with this chain in flight: its pin stays (a leak, not a free), and
            // the slot, counted in Held already, now holds the new chain.
            if (!_leakLogged)
            {
                _leakLogged = true;
                Log.PinForgotten(_logger, _queueIndex, head, forgotten.Number);
            }
        }
        else
        {
            Interlocked.Increment(ref _held);
        }

        generation.Pin();
        _pinned[head] = generation;
    }

    public void ChainReleased(ushort head)
    {
        if (head < _pinned.Length && _pinned[head] is MemoryTableGeneration generation)
        {
            _pinned[head] = null;
            generation.Unpin();
            Interlocked.Decrement(ref _held);
        }
    }
}
