using System;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>Malformed packed rings: each breaks the queue with its own error and nothing is popped.</summary>
public sealed class PackedHostileRingTests
{
    private const ushort Size = 4;
    private const ushort Next = 1, Write = 2, Indirect = 4;
    private const ulong Heap = 1 << 20;

    [Fact]
    public void BufferIdAtLeastQueueSize_BreaksQueue() =>
        AssertBreaks(QueueError.InvalidHeadIndex, g => g.WriteDescriptor(0, Heap, 8, Size, PackedGuestDriver.LapFlags(true)));

    [Fact]
    public void BufferIdReusedWhileInFlight_BreaksQueue() =>
        AssertBreaks(QueueError.HeadAlreadyInFlight, g =>
        {
            g.WriteDescriptor(0, Heap, 8, 1, PackedGuestDriver.LapFlags(true));
            g.WriteDescriptor(1, Heap, 8, 1, PackedGuestDriver.LapFlags(true));
        }, pops: 2);

    [Fact]
    public void ChainedDescriptorWithTheWrongLapsFlags_BreaksQueue() =>
        AssertBreaks(QueueError.DescriptorNotAvailable, g =>
        {
            g.WriteDescriptor(1, Heap, 8, 0, PackedGuestDriver.LapFlags(false));
            g.WriteDescriptor(0, Heap, 8, 0, (ushort)(Next | PackedGuestDriver.LapFlags(true)));
        });

    [Fact]
    public void ChainLongerThanTheRing_BreaksQueue() =>
        AssertBreaks(QueueError.ChainTooLong, g =>
        {
            for (ushort i = 0; i < Size; i++)
            {
                g.WriteDescriptor(i, Heap, 8, 0, (ushort)(Next | PackedGuestDriver.LapFlags(true)));
            }
        });

    [Fact]
    public void IndirectWithNext_BreaksQueue() =>
        AssertBreaks(QueueError.IndirectWithNext, g =>
        {
            g.WriteDescriptor(1, Heap, 8, 0, PackedGuestDriver.LapFlags(true));
            g.WriteDescriptor(0, Heap + 4096, 16, 0, (ushort)(Indirect | Next | PackedGuestDriver.LapFlags(true)));
        });

    [Fact]
    public void ReadableAfterWritable_BreaksQueue() =>
        AssertBreaks(QueueError.ReadableAfterWritable, g =>
        {
            g.WriteDescriptor(1, Heap, 8, 0, PackedGuestDriver.LapFlags(true));
            g.WriteDescriptor(0, Heap, 8, 0, (ushort)(Write | Next | PackedGuestDriver.LapFlags(true)));
        });

    [Fact]
    public void UsedDescriptorAtTheHead_IsNotAvailable_AndBreaksNothing()
    {
        using var driver = new PackedGuestDriver(Size, indirect: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.WriteDescriptor(0, Heap, 8, 0, 0x8080); // AVAIL = USED = 1: a used descriptor
        Assert.False(queue.TryPopChain(out _));
        Assert.Equal(QueueError.None, queue.Error);
    }

    private static void AssertBreaks(QueueError expected, Action<PackedGuestDriver> write, int pops = 1)
    {
        using var driver = new PackedGuestDriver(Size, indirect: true);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        write(driver);
        for (int i = 0; i < pops; i++)
        {
            if (queue.TryPopChain(out DescriptorChain chain))
            {
                chain.TryGather(new IoSegment[8], out _, out _);
            }
        }

        Assert.Equal(expected, queue.Error);
        Assert.Equal(0, queue.InFlightCount - (pops - 1));
        Assert.False(queue.TryPopChain(out _));
    }
}
