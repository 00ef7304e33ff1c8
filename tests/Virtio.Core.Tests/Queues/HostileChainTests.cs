using System;
using System.Linq;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// One test per class of malformed ring a hostile driver can write. Each checks the queue-level
/// error and, through a device behind virtio-mmio, that the queue stops, the device enters
/// DEVICE_NEEDS_RESET with a configuration-change interrupt, and exactly one reason is logged.
/// </summary>
public sealed class HostileChainTests
{
    private const ushort Size = 16;
    private const ushort Next = 1, Write = 2, Indirect = 4;
    private const ulong Heap = 1 << 20;

    [Fact]
    public void Pop_HeadIndexAtLeastQueueSize_BreaksQueue() =>
        AssertBreaks(QueueError.InvalidHeadIndex, g => g.PutOnAvailRing(Size));

    [Fact]
    public void Chain_NextIndexAtLeastQueueSize_BreaksQueue() =>
        AssertBreaks(QueueError.InvalidNextIndex, g =>
        {
            g.WriteDescriptor(0, Heap, 64, Next, Size);
            g.PutOnAvailRing(0);
        });

    [Fact]
    public void Chain_LoopingNextLinks_StopsAsChainTooLong() =>
        AssertBreaks(QueueError.ChainTooLong, g =>
        {
            g.WriteDescriptor(0, Heap, 64, Next, 1);
            g.WriteDescriptor(1, Heap + 64, 64, Next, 0);
            g.PutOnAvailRing(0);
        });

    [Fact]
    public void Chain_SelfLoop_StopsAsChainTooLong() =>
        AssertBreaks(QueueError.ChainTooLong, g =>
        {
            g.WriteDescriptor(3, Heap, 64, Next, 3);
            g.PutOnAvailRing(3);
        });

    [Fact]
    public void Indirect_LoopInsideTable_StopsAsChainTooLong() =>
        AssertBreaks(QueueError.ChainTooLong, g =>
        {
            GuestAddress table = g.BlockAddress(10);
            g.WriteDescriptorAt(table, 0, Heap, 64, Next, 1);
            g.WriteDescriptorAt(table, 1, Heap, 64, Next, 0);
            g.WriteDescriptor(0, table.Value, 32, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_TableLengthZero_BreaksQueue() =>
        AssertBreaks(QueueError.IndirectTableEmpty, g =>
        {
            g.WriteDescriptor(0, g.BlockAddress(10).Value, 0, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_TableLengthNotMultipleOf16_BreaksQueue() =>
        AssertBreaks(QueueError.IndirectTableMisaligned, g =>
        {
            g.WriteDescriptor(0, g.BlockAddress(10).Value, 24, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_TableLargerThanQueueSize_BreaksQueue() =>
        AssertBreaks(QueueError.IndirectTableTooLarge, g =>
        {
            g.WriteDescriptor(0, g.BlockAddress(10).Value, 16u * (Size + 1), Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_HugeTableLength_BreaksQueueWithoutReadingIt() =>
        AssertBreaks(QueueError.IndirectTableTooLarge, g =>
        {
            g.WriteDescriptor(0, g.BlockAddress(10).Value, 0xFFFF_FFF0, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_DescriptorInsideIndirectTable_BreaksQueue() =>
        AssertBreaks(QueueError.NestedIndirect, g =>
        {
            GuestAddress outer = g.BlockAddress(10), inner = g.BlockAddress(11);
            g.WriteDescriptorAt(inner, 0, Heap, 64, 0, 0);
            g.WriteDescriptorAt(outer, 0, inner.Value, 16, Indirect, 0);
            g.WriteDescriptor(0, outer.Value, 16, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_TogetherWithNext_BreaksQueue() =>
        AssertBreaks(QueueError.IndirectWithNext, g =>
        {
            GuestAddress table = g.BlockAddress(10);
            g.WriteDescriptorAt(table, 0, Heap, 64, 0, 0);
            g.WriteDescriptor(0, table.Value, 16, Indirect | Next, 1);
            g.WriteDescriptor(1, Heap, 64, 0, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_NotNegotiated_BreaksQueue() =>
        AssertBreaks(QueueError.IndirectNotNegotiated, g =>
        {
            GuestAddress table = g.BlockAddress(10);
            g.WriteDescriptorAt(table, 0, Heap, 64, 0, 0);
            g.WriteDescriptor(0, table.Value, 16, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: false);

    [Fact]
    public void Indirect_TableOutsideGuestMemory_BreaksQueue() =>
        AssertBreaks(QueueError.AddressOutOfRange, g =>
        {
            g.WriteDescriptor(0, 1UL << 40, 64, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Indirect_TableAddressPlusLengthOverflows_BreaksQueue() =>
        AssertBreaks(QueueError.AddressOverflow, g =>
        {
            g.WriteDescriptor(0, ulong.MaxValue - 15, 32, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Descriptor_AddressPlusLengthOverflows_BreaksQueue() =>
        AssertBreaks(QueueError.AddressOverflow, g =>
        {
            g.WriteDescriptor(0, ulong.MaxValue - 10, 64, 0, 0);
            g.PutOnAvailRing(0);
        });

    [Fact]
    public void Descriptor_OutsideGuestMemory_BreaksQueue() =>
        AssertBreaks(QueueError.AddressOutOfRange, g =>
        {
            g.WriteDescriptor(0, 64UL << 20, 64, Write, 0);
            g.PutOnAvailRing(0);
        });

    [Fact]
    public void Descriptor_RunningPastTheEndOfGuestMemory_BreaksQueue() =>
        AssertBreaks(QueueError.AddressOutOfRange, g =>
        {
            g.WriteDescriptor(0, (16UL << 20) - 32, 64, Write, 0);
            g.PutOnAvailRing(0);
        });

    [Fact]
    public void Descriptor_CrossingFromOneRegionIntoAnother_IsRejected()
    {
        // Two adjacent regions: [0, 8 MiB) and [8 MiB, 16 MiB). A buffer straddling the edge is
        // rejected rather than read across two unrelated host mappings.
        using var memory = new GuestMemory([
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), 8 << 20),
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(8 << 20), 8 << 20)]);
        var driver = new GuestDriver(memory, new GuestAddress(0x1000), Size, Heap, 4096, eventIdx: false, indirect: false);
        var logger = new CapturingLogger();
        SplitVirtqueue queue = driver.CreateDeviceQueue(logger);
        driver.WriteDescriptor(0, (8UL << 20) - 32, 64, 0, 0);
        driver.PutOnAvailRing(0);
        driver.Kick();

        Assert.Equal(QueueError.AddressOutOfRange, PopAndWalk(queue));
        Assert.True(memory.TryGetSpan(new GuestAddress((8UL << 20) - 32), 32, out _));
        Assert.True(memory.TryGetSpan(new GuestAddress(8UL << 20), 32, out _));
    }

    [Fact]
    public void Chain_ReadableAfterWritable_BreaksQueue() =>
        AssertBreaks(QueueError.ReadableAfterWritable, g =>
        {
            g.WriteDescriptor(0, Heap, 64, Write | Next, 1);
            g.WriteDescriptor(1, Heap + 64, 64, 0, 0);
            g.PutOnAvailRing(0);
        });

    [Fact]
    public void Indirect_ReadableAfterWritableInsideTable_BreaksQueue() =>
        AssertBreaks(QueueError.ReadableAfterWritable, g =>
        {
            GuestAddress table = g.BlockAddress(10);
            g.WriteDescriptorAt(table, 0, Heap, 64, Write | Next, 1);
            g.WriteDescriptorAt(table, 1, Heap + 64, 64, 0, 0);
            g.WriteDescriptor(0, table.Value, 32, Indirect, 0);
            g.PutOnAvailRing(0);
        }, indirect: true);

    [Fact]
    public void Avail_IndexMoreThanQueueSizeAhead_BreaksQueue() =>
        AssertBreaks(QueueError.AvailIndexTooFar, g => g.SetAvailIndex(Size + 1), kick: false);

    [Fact]
    public void Avail_IndexExactlyQueueSizeAhead_IsAccepted()
    {
        using var driver = new GuestDriver(Size);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        for (int i = 0; i < Size; i++)
        {
            driver.AddChain(BufferSpec.Readable(8));
        }

        driver.Kick();
        int popped = 0;
        while (queue.TryPopChain(out DescriptorChain chain))
        {
            popped++;
            Assert.True(chain.TryMoveNext(out _, out _));
        }

        Assert.Equal(Size, popped);
        Assert.Equal(QueueError.None, queue.Error);
    }

    [Fact]
    public void Avail_HeadAlreadyInFlight_BreaksQueue()
    {
        using var driver = new GuestDriver(Size);
        var logger = new CapturingLogger();
        SplitVirtqueue queue = driver.CreateDeviceQueue(logger);
        driver.WriteDescriptor(0, Heap, 64, 0, 0);
        driver.PutOnAvailRing(0);
        driver.PutOnAvailRing(0);
        driver.Kick();

        Assert.True(queue.TryPopChain(out _));
        Assert.False(queue.TryPopChain(out _));
        Assert.Equal(QueueError.HeadAlreadyInFlight, queue.Error);
    }

    [Fact]
    public void Chain_LongerThan4GiBInTotal_BreaksQueue()
    {
        // 8 GiB of reserved-but-untouched address space: three 2 GiB buffers add up past 2^32.
        using var memory = GuestMemory.CreateAnonymous(8UL << 30);
        var driver = new GuestDriver(memory, new GuestAddress(0x1000), Size, Heap, 4096, eventIdx: false, indirect: false);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        driver.WriteDescriptor(0, 1UL << 30, int.MaxValue, Next, 1);
        driver.WriteDescriptor(1, 3UL << 30, int.MaxValue, Next, 2);
        driver.WriteDescriptor(2, 5UL << 30, int.MaxValue, 0, 0);
        driver.PutOnAvailRing(0);
        driver.Kick();

        Assert.Equal(QueueError.ChainTooLarge, PopAndWalk(queue));
    }

    [Fact]
    public void BrokenQueue_PopsNothingMore_UntilReset()
    {
        using var driver = new GuestDriver(Size);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        int raised = 0;
        queue.Broken += (_, _) => raised++;
        driver.PutOnAvailRing(Size + 3);
        driver.AddChain(BufferSpec.Readable(8));
        driver.Kick();

        Assert.False(queue.TryPopChain(out _));
        Assert.False(queue.TryPopChain(out _));
        Assert.False(queue.HasAvailable());
        Assert.False(queue.PublishUsed());
        Assert.Equal(1, raised);

        queue.Reset();
        Assert.Equal(QueueError.None, queue.Error);
        Assert.False(queue.IsReady);
    }

    private static QueueError PopAndWalk(SplitVirtqueue queue)
    {
        if (!queue.TryPopChain(out DescriptorChain chain))
        {
            return queue.Error;
        }

        int steps = 0;
        while (chain.TryMoveNext(out _, out _))
        {
            Assert.True(++steps <= 2 * Size, "the walk must be bounded");
        }

        Assert.Equal(chain.Error, queue.Error);
        return chain.Error;
    }

    /// <summary>Runs the hostile set-up at queue level, then through a device behind virtio-mmio.</summary>
    private static void AssertBreaks(QueueError expected, Action<GuestDriver> setUp, bool indirect = false, bool kick = true)
    {
        // Queue level: the error, raised once.
        using (var driver = new GuestDriver(Size, indirect: indirect))
        {
            SplitVirtqueue queue = driver.CreateDeviceQueue();
            var raised = new System.Collections.Generic.List<QueueError>();
            queue.Broken += (_, e) => raised.Add(e);
            setUp(driver);
            if (kick)
            {
                driver.Kick();
            }

            Assert.Equal(expected, PopAndWalk(queue));
            Assert.False(queue.TryPopChain(out _));
            Assert.Equal([expected], raised);
        }

        // Device level: DEVICE_NEEDS_RESET, a configuration-change interrupt, one logged reason.
        using (var driver = new GuestDriver(Size, indirect: indirect))
        {
            var logger = new CapturingLogger();
            var device = new RecordingDevice(driver.Memory, logger: logger);
            var line = new InterruptRecorder();
            var mmio = new MmioDriver(new VirtioMmioTransport(device, line, logger));
            ulong wanted = VirtioFeatures.Version1 | (indirect ? VirtioFeatures.IndirectDescriptors : 0);
            mmio.Initialize(wanted, driver);
            setUp(driver);
            if (kick)
            {
                driver.Kick();
            }

            mmio.Notify(0);
            mmio.Notify(0); // a second kick must not log or interrupt again

            Assert.True((mmio.Status & DeviceStatus.DeviceNeedsReset) != 0, "DEVICE_NEEDS_RESET must be set");
            Assert.Equal(expected, device.Queues[0].Error);
            Assert.Equal(1, line.ConfigurationChange);
            Assert.Equal(0, line.UsedBuffer);
            Assert.Equal(2u, mmio.AcknowledgeInterrupts() & 2u);
            Assert.Single(logger.Entries, e => e.EventId.Id == 1101);
            Assert.Single(logger.Entries, e => e.EventId.Id == 1001 && e.Message.Contains(expected.ToString(), StringComparison.Ordinal));
            Assert.Empty(device.Completed);

            // The driver resets the device; it comes back healthy.
            mmio.Status = DeviceStatus.None;
            Assert.Equal(DeviceStatus.None, mmio.Status);
            Assert.Equal(QueueError.None, device.Queues[0].Error);
        }
    }
}
