using System;
using Virtio.Core.Memory;
using Xunit;

namespace Virtio.Core.Tests.Memory;

public sealed class GuestMemoryTests
{
    [Fact]
    public void TryGetSpan_InsideARegion_MapsTheSameBytes()
    {
        using var memory = GuestMemory.CreateAnonymous(1 << 20);
        Assert.True(memory.TryWriteUInt32(new GuestAddress(0x1234), 0xDEADBEEF));
        Assert.True(memory.TryGetSpan(new GuestAddress(0x1234), 4, out Span<byte> span));
        Assert.Equal([0xEF, 0xBE, 0xAD, 0xDE], span.ToArray());
        Assert.True(memory.TryReadUInt32(new GuestAddress(0x1234), out uint value));
        Assert.Equal(0xDEADBEEF, value);
    }

    [Theory]
    [InlineData(0x100000UL, 1)]          // first byte past the end
    [InlineData(0xFFFFFUL, 2)]           // last byte plus one past the end
    [InlineData(ulong.MaxValue, 1)]      // top of the address space
    [InlineData(ulong.MaxValue - 1, 4)]  // would overflow
    public void TryGetSpan_OutsideOrOverflowing_IsRefused(ulong address, int length)
    {
        using var memory = GuestMemory.CreateAnonymous(1 << 20);
        Assert.False(memory.TryGetSpan(new GuestAddress(address), length, out Span<byte> span));
        Assert.True(span.IsEmpty);
        Assert.False(memory.TryWrite(new GuestAddress(address), new byte[length]));
    }

    [Fact]
    public void TryGetSpan_NegativeLength_IsRefused_AndZeroLengthIsEmpty()
    {
        using var memory = GuestMemory.CreateAnonymous(1 << 20);
        Assert.False(memory.TryGetSpan(new GuestAddress(0), -1, out _));
        Assert.True(memory.TryGetSpan(new GuestAddress(ulong.MaxValue), 0, out Span<byte> empty));
        Assert.True(empty.IsEmpty);
    }

    [Fact]
    public void Regions_WithAHole_RefuseTheHoleAndRangesAcrossIt()
    {
        using var memory = new GuestMemory([
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(0x100000), 0x100000),
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), 0x10000)]);
        Assert.Equal(0UL, memory.Regions[0].Start.Value); // sorted
        Assert.True(memory.TryGetSpan(new GuestAddress(0xFFFF), 1, out _));
        Assert.False(memory.TryGetSpan(new GuestAddress(0x10000), 1, out _));
        Assert.False(memory.TryGetSpan(new GuestAddress(0xFFFF), 2, out _));
        Assert.True(memory.TryGetSpan(new GuestAddress(0x1FFFFF), 1, out _));
        Assert.False(memory.TryGetSpan(new GuestAddress(0x1FFFFF), 2, out _));
        Assert.Null(memory.FindRegion(new GuestAddress(0x50000)));
    }

    [Fact]
    public void OverlappingRegions_AreRejected()
    {
        GuestMemoryRegion a = GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), 0x20000);
        GuestMemoryRegion b = GuestMemoryRegion.CreateAnonymous(new GuestAddress(0x10000), 0x10000);
        Assert.Throws<ArgumentException>(() => new GuestMemory([a, b]));
        a.Dispose();
        b.Dispose();
    }

    [Fact]
    public void RegionGeometry_IsChecked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), 0));
        Assert.Throws<ArgumentException>(() => GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), 100));
        Assert.Throws<ArgumentException>(() => GuestMemoryRegion.CreateAnonymous(new GuestAddress(0x800), 0x1000));
        Assert.Throws<ArgumentOutOfRangeException>(() => GuestMemoryRegion.CreateAnonymous(new GuestAddress(ulong.MaxValue - 0xFFF), 0x2000));
    }

    [Fact]
    public unsafe void MemfdRegion_IsSharedThroughItsFileDescriptor()
    {
        using var memory = new GuestMemory([GuestMemoryRegion.CreateMemfd(new GuestAddress(0x10000), 0x10000, "test")]);
        GuestMemoryRegion region = memory.Regions[0];
        Assert.NotNull(region.FileDescriptor);
        Assert.True(memory.TryWriteUInt64(new GuestAddress(0x10008), 0x0123456789ABCDEF));

        // Map the same memfd a second time, as a vhost-user back end would, and see the bytes.
        int dup = Tmds.Linux.LibC.dup((int)region.FileDescriptor!.DangerousGetHandle());
        Assert.True(dup >= 0);
        using var second = new GuestMemory([GuestMemoryRegion.MapFileDescriptor(new GuestAddress(0), 0x10000, dup, 0)]);
        Assert.True(second.TryReadUInt64(new GuestAddress(8), out ulong value));
        Assert.Equal(0x0123456789ABCDEFUL, value);
    }
}
