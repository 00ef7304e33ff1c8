using System;
using System.Threading;
using Virtio.Core.Memory;

namespace Virtio.VhostUser.Memory;

/// <summary>
/// The guest memory a served device sees: the committed generation of the current connection's
/// <see cref="VhostUserMemoryTable"/>, swapped as a whole (only while the rings are stopped and
/// nothing is in flight). It maps nothing itself. With no table every access fails, which a device
/// treats as a bad address.
/// </summary>
internal sealed class VhostUserMemory : IGuestMemory
{
    private GuestMemory? _current;

    public bool TryGetSpan(GuestAddress address, int length, out Span<byte> span)
    {
        GuestMemory? memory = Volatile.Read(ref _current);
        if (memory is null)
        {
            span = default;
            return false;
        }

        return memory.TryGetSpan(address, length, out span);
    }

    /// <summary>Makes <paramref name="generation"/>'s regions what the device sees. Called by the table on commit.</summary>
    public void Publish(MemoryTableGeneration generation)
    {
        GuestMemoryRegion[] mappings = new GuestMemoryRegion[generation.Regions.Count];
        for (int i = 0; i < mappings.Length; i++)
        {
            mappings[i] = generation.Regions[i].Mapping;
        }

        // GuestMemory only indexes the regions: it is never disposed, the regions are, one by one.
        Volatile.Write(ref _current, mappings.Length == 0 ? null : new GuestMemory(mappings));
    }
}
