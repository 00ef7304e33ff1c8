using System;
using System.Threading;
using Virtio.Core.Memory;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// The guest memory a served device sees: the committed generation of the current connection's
/// <see cref="VhostUserMemoryTable"/>, swapped as a whole (while the rings are stopped). It maps
/// nothing itself. With no table every access fails, which a device treats as a bad address.
/// <see cref="Current"/> is what a request popped now is pinned to (<see cref="GenerationPins"/>).
/// </summary>
internal sealed class VhostUserMemory : IGuestMemory
{
    private MemoryTableGeneration? _current;

    /// <summary>The published generation, or null before the first table. Any thread.</summary>
    public MemoryTableGeneration? Current => Volatile.Read(ref _current);

    public bool TryGetSpan(GuestAddress address, int length, out Span<byte> span)
    {
        GuestMemory? memory = Volatile.Read(ref _current)?.View;
        if (memory is null)
        {
            span = default;
            return false;
        }

        return memory.TryGetSpan(address, length, out span);
    }

    /// <summary>Makes <paramref name="generation"/>'s regions what the device sees. Called by the table on commit.</summary>
    public void Publish(MemoryTableGeneration generation) => Volatile.Write(ref _current, generation);
}
