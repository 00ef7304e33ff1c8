using System;
using System.Buffers.Binary;
using Virtio.Core.Queues;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>
/// <see cref="SplitVirtqueue.TryResubmitPacked"/>: chains handed back as copies of their ring descriptors
/// are popped first and walked from the copies (the ring may hold anything there by now), the used
/// position moves by each chain's count, and a list that does not hold together breaks the queue.
/// </summary>
public sealed class PackedResubmitTests
{
    private const ushort Size = 8;
    private const ushort Next = 1, Write = 2;
    private const ulong Heap = 1 << 20;

    [Fact]
    public void ResubmittedChains_ArePoppedFirst_FromTheirCopies_ThenTheRing()
    {
        using var driver = new PackedGuestDriver(Size);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        // Two chains as an earlier device took them: ID 5 (readable 16, writable 1), ID 2 (writable 512).
        byte[] copies = [.. Descriptor(Heap, 16, 5, Next), .. Descriptor(Heap + 4096, 1, 5, Write), .. Descriptor(Heap + 8192, 512, 2, Write)];
        Assert.True(queue.TryResubmitPacked(copies, [2, 1], out QueueError error), error.ToString());
        Assert.True(queue.HasAvailable());

        Assert.True(queue.TryPopChain(out DescriptorChain first));
        Assert.Equal(5, first.HeadIndex);
        var segments = new IoSegment[4];
        Assert.True(first.TryGather(segments, out _, out int count));
        Assert.Equal(2, count);
        Assert.Equal(16ul, first.ReadableLength);
        Assert.Equal(1ul, first.WritableLength);

        Assert.True(queue.TryPopChain(out DescriptorChain second));
        Assert.Equal(2, second.HeadIndex);
        Assert.True(second.TryGather(segments, out _, out count));
        Assert.Equal(512ul, second.WritableLength);

        // Nothing in the ring: the next pop finds nothing, and the used position moves by 2 then 1.
        Assert.False(queue.TryPopChain(out _));
        Assert.True(queue.AddUsed(5, 1));
        Assert.Equal(2, queue.NextUsed);
        Assert.True(queue.AddUsed(2, 512));
        Assert.Equal(3, queue.NextUsed);
        Assert.Equal(QueueError.None, queue.Error);
    }

    [Theory]
    [InlineData("lengthZero", QueueError.InvalidResubmission)]
    [InlineData("lengthsTooLong", QueueError.InvalidResubmission)]
    [InlineData("idOutside", QueueError.InvalidHeadIndex)]
    [InlineData("idTwice", QueueError.HeadAlreadyInFlight)]
    [InlineData("moreThanTheRing", QueueError.InvalidResubmission)]
    public void ListThatDoesNotHoldTogether_BreaksTheQueue_AndNothingIsPopped(string damage, QueueError expected)
    {
        using var driver = new PackedGuestDriver(Size);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        byte[] one = Descriptor(Heap, 16, 1, 0);
        (byte[] copies, ushort[] lengths) = damage switch
        {
            "lengthZero" => (one, new ushort[] { 1, 0 }),
            "lengthsTooLong" => (one, new ushort[] { 2 }),
            "idOutside" => (Descriptor(Heap, 16, Size, 0), new ushort[] { 1 }),
            "idTwice" => ([.. one, .. one], new ushort[] { 1, 1 }),
            _ => (new byte[16 * (Size + 1)], new ushort[] { Size + 1 }),
        };

        Assert.False(queue.TryResubmitPacked(copies, lengths, out QueueError error));
        Assert.Equal(expected, error);
        Assert.Equal(expected, queue.Error);
        Assert.False(queue.TryPopChain(out _));
    }

    [Fact]
    public void IdAlreadyInFlight_BreaksTheQueue()
    {
        using var driver = new PackedGuestDriver(Size);
        SplitVirtqueue queue = driver.CreateDeviceQueue();
        ushort id = driver.AddChain(BufferSpec.Readable(16));
        Assert.True(queue.TryPopChain(out _));

        Assert.False(queue.TryResubmitPacked(Descriptor(Heap, 16, id, 0), [1], out QueueError error));
        Assert.Equal(QueueError.HeadAlreadyInFlight, error);
    }

    [Fact]
    public void OnASplitRing_IsRefused()
    {
        using var driver = new GuestDriver(Size);
        var queue = new SplitVirtqueue(driver.Memory, 0, Size);
        driver.Configure(queue);
        Assert.True(queue.TryActivate(out _));

        Assert.False(queue.TryResubmitPacked(Descriptor(Heap, 16, 1, 0), [1], out QueueError error));
        Assert.Equal(QueueError.InvalidResubmission, error);
        Assert.Equal(QueueError.None, queue.Error);
    }

    private static byte[] Descriptor(ulong address, uint length, ushort id, ushort flags)
    {
        byte[] d = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(d, address);
        BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(8), length);
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(12), id);
        BinaryPrimitives.WriteUInt16LittleEndian(d.AsSpan(14), (ushort)(flags | PackedGuestDriver.LapFlags(true)));
        return d;
    }
}
