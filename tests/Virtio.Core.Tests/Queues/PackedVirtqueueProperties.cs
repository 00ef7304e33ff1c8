using Virtio.Core.Memory;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// The ring properties (<see cref="VirtqueueProperties"/>) on the packed ring (virtio 1.2 §2.8),
/// driven by <see cref="PackedGuestDriver"/>: a queue of 8, and for the wrap-around cases any size
/// from 1 to 8 (a packed ring's size need not be a power of two), so both wrap counters flip often.
/// </summary>
public sealed class PackedVirtqueueProperties : VirtqueueProperties
{
    private const ushort Size = 8;

    private protected override IRingUnderTest CreateRing(int blockSize, bool eventIdx, bool indirect, byte? wrap)
    {
        ushort size = wrap is byte back ? (ushort)(1 + (back % 8)) : Size;
        return new PackedRingUnderTest(new PackedGuestDriver(size, blockSize: blockSize, eventIdx: eventIdx, indirect: indirect));
    }

    private protected override IRingUnderTest CreateNoiseRing(GuestMemory memory, GuestAddress ringBase, GuestAddress heapBase, byte sizeShift, bool eventIdx, bool indirect)
    {
        ushort size = (ushort)(1 + (sizeShift % 64)); // 1..64, any size
        return new PackedRingUnderTest(new PackedGuestDriver(memory, ringBase, size, heapBase.Value, 4096, eventIdx, indirect));
    }
}
