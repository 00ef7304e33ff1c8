using System;
using Microsoft.Extensions.Logging.Abstractions;
using Virtio.Core.Memory;
using Virtio.VhostUser.Memory;
using Xunit;

namespace Virtio.VhostUser.Tests.Memory;

/// <summary>The per-request pin is on the hot path: it allocates nothing and counts what it holds.</summary>
public sealed class GenerationPinsTests
{
    [Fact]
    public void PinningAndUnpinning_AllocatesNothing_AndHeldCountsTheChains()
    {
        using GuestMemoryRegion region = GuestMemoryRegion.CreateMemfd(new GuestAddress(0), 1 << 20, "pins-test");
        var view = new VhostUserMemory();
        var generation = new MemoryTableGeneration(1, [new VhostUserMemoryRegion(0, 1 << 20, 0x7000_0000, 0, region)]);
        view.Publish(generation);
        var pins = new GenerationPins(view, queueIndex: 0, maxSize: 256, NullLogger.Instance);
        pins.ChainTaken(0); // warm up
        pins.ChainReleased(0);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < 1000; round++)
        {
            for (ushort head = 0; head < 256; head++)
            {
                pins.ChainTaken(head);
            }

            for (ushort head = 0; head < 256; head++)
            {
                pins.ChainReleased(head);
            }
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        pins.ChainTaken(7);
        pins.ChainTaken(9);
        Assert.Equal(2, pins.Held);
        Assert.Equal(2, generation.InFlight);
        pins.ChainReleased(7);
        pins.ChainReleased(7); // released once: a second report is ignored
        Assert.Equal(1, pins.Held);
        Assert.Equal(1, generation.InFlight);
    }
}
