using System.Buffers.Binary;
using System.Collections.Generic;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// <see cref="SplitVirtqueue.DirtyLog"/> hears of every guest-memory write the queue makes, in the
/// order a migration needs: the chain's writable buffers at the walk, the chain returned after its
/// used element is stored and before the index that publishes it, the index after its store; on a
/// packed ring the used descriptor and then its flags.
/// </summary>
public sealed class DirtyLogSeamTests
{
    [Fact]
    public void SplitRing_ReportsBuffersThenChainThenElementThenIndex()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var log = new RecordingDirtyLog(() => BinaryPrimitives.ReadUInt16LittleEndian(driver.Span(new GuestAddress(driver.UsedRing.Value + 2), 2)));
        queue.DirtyLog = log;
        ushort head = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Write(512), BufferSpec.Write(1));
        driver.Kick();
        var buffers = driver.ChainBuffers(head);

        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        while (chain.TryMoveNext(out _, out _))
        {
        }

        // Walked again from the head (a device that validates first): the walk starts over.
        chain.Reset();
        while (chain.TryMoveNext(out _, out _))
        {
        }

        Assert.True(queue.AddUsed(head, 513));
        queue.PublishUsed();
        Assert.Equal(
            [
                $"writable {head} first {buffers[1].Address.Value:x} 512",
                $"writable {head} more {buffers[2].Address.Value:x} 1",
                $"writable {head} first {buffers[1].Address.Value:x} 512",
                $"writable {head} more {buffers[2].Address.Value:x} 1",
                $"used {head} idx 0",
                "used-area 4 8 idx 0",
                "used-area 2 2 idx 1",
            ],
            log.Events);
    }

    [Fact]
    public void SplitRing_ReportsTheUsedFlagsAndAvailEventItWrites()
    {
        using var flagsDriver = new GuestDriver(16);
        SplitVirtqueue flags = flagsDriver.CreateDeviceQueue();
        var flagsLog = new RecordingDirtyLog(() => 0);
        flags.DirtyLog = flagsLog;
        flags.DisableNotification();
        flags.EnableNotification();
        Assert.Equal(["used-area 0 2 idx 0", "used-area 0 2 idx 0"], flagsLog.Events);

        using var eventDriver = new GuestDriver(16, eventIdx: true);
        SplitVirtqueue events = eventDriver.CreateDeviceQueue();
        var eventLog = new RecordingDirtyLog(() => 0);
        events.DirtyLog = eventLog;
        events.DisableNotification();
        events.EnableNotification();
        Assert.Equal([$"used-area {new SplitRingLayout(16).AvailEventOffset} 2 idx 0"], eventLog.Events);
    }

    [Fact]
    public void PackedRing_ReportsBuffersThenChainAndDescriptorThenItsFlags()
    {
        using var driver = new PackedGuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var log = new RecordingDirtyLog(() => 0);
        queue.DirtyLog = log;
        ushort id = driver.AddChain(BufferSpec.Readable(16), BufferSpec.Write(512));

        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        var writable = new List<string>();
        while (chain.TryMoveNext(out DescriptorBuffer buffer, out _))
        {
            if (buffer.IsWriteOnly)
            {
                writable.Add($"writable {id} first {buffer.Address.Value:x} 512");
            }
        }

        Assert.True(queue.AddUsed(id, 512));
        Assert.True(queue.PublishUsed());
        ulong ring = driver.DescriptorRing.Value;
        Assert.Equal(
            [
                .. writable,
                $"used {id} idx 0",
                $"ring {ring:x} 16",
                $"ring {ring + 14:x} 2",
            ],
            log.Events);
    }

    [Fact]
    public void NoSink_NothingIsReported_AndTheRingWorksAsBefore()
    {
        using var driver = new GuestDriver(16);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        var log = new RecordingDirtyLog(() => 0);
        queue.DirtyLog = log;
        queue.DirtyLog = null;
        ushort head = driver.AddChain(BufferSpec.Write(8));
        driver.Kick();
        Assert.True(queue.TryPopChain(out DescriptorChain chain));
        while (chain.TryMoveNext(out _, out _))
        {
        }

        Assert.True(queue.AddUsed(head, 8));
        queue.PublishUsed();
        Assert.True(driver.TryGetUsed(out ushort used, out _));
        Assert.Equal(head, used);
        Assert.Empty(log.Events);
    }

    private sealed class RecordingDirtyLog(System.Func<ushort> usedIdx) : IDirtyLog
    {
        public List<string> Events { get; } = [];

        public void BufferWritable(ushort head, bool first, GuestAddress address, uint length) =>
            Events.Add($"writable {head} {(first ? "first" : "more")} {address.Value:x} {length}");

        public void ChainUsed(ushort head) => Events.Add($"used {head} idx {usedIdx()}");

        public void RingWritten(GuestAddress address, int length) => Events.Add($"ring {address.Value:x} {length}");

        public void UsedAreaWritten(int offset, int length) => Events.Add($"used-area {offset} {length} idx {usedIdx()}");
    }
}
