using Virtio.Core.Memory;
using Virtio.Testing;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// The ring properties (<see cref="VirtqueueProperties"/>) on the split ring (virtio 1.2 §2.7), a
/// queue of 8 driven by <see cref="GuestDriver"/>; the wrap-around cases start both 16-bit indices
/// just below 65535.
/// </summary>
public sealed class SplitVirtqueueProperties : VirtqueueProperties
{
    private const ushort Size = 8;

    private protected override IRingUnderTest CreateRing(int blockSize, bool eventIdx, bool indirect, byte? wrap)
    {
        ushort startIndex = wrap is byte back ? (ushort)(65535 - (back % 24)) : (ushort)0;
        return new SplitRingUnderTest(new GuestDriver(Size, blockSize: blockSize, eventIdx: eventIdx, indirect: indirect, startIndex: startIndex), startIndex);
    }

    private protected override IRingUnderTest CreateNoiseRing(GuestMemory memory, GuestAddress ringBase, GuestAddress heapBase, byte sizeShift, bool eventIdx, bool indirect)
    {
        ushort size = (ushort)(1 << (sizeShift % 7)); // 1..64, a split ring's size is a power of two
        return new SplitRingUnderTest(new GuestDriver(memory, ringBase, size, heapBase.Value, 4096, eventIdx, indirect), startIndex: 0);
    }
}
