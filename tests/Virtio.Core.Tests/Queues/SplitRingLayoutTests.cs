using Virtio.Core.Queues;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>The split-ring layout against the sizes and offsets written out in virtio 1.2 §2.7.</summary>
public sealed class SplitRingLayoutTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(256)]
    [InlineData(32768)]
    public void Sizes_AreThoseOfTheSpec(ushort size)
    {
        var layout = new SplitRingLayout(size);
        Assert.Equal(16 * size, layout.DescriptorTableSize);
        Assert.Equal(6 + (2 * size), layout.AvailRingSize);
        Assert.Equal(6 + (8 * size), layout.UsedRingSize);
        Assert.Equal(4 + (2 * size), layout.UsedEventOffset);
        Assert.Equal(4 + (8 * size), layout.AvailEventOffset);
    }

    [Fact]
    public void EntryOffsets_WrapModuloTheSize()
    {
        var layout = new SplitRingLayout(8);
        Assert.Equal(4, layout.AvailEntryOffset(0));
        Assert.Equal(4 + (2 * 7), layout.AvailEntryOffset(7));
        Assert.Equal(4, layout.AvailEntryOffset(8));
        Assert.Equal(4 + (8 * 7), layout.UsedElementOffset(65535));
        Assert.Equal(2, SplitRingLayout.AvailIdxOffset);
        Assert.Equal(2, SplitRingLayout.UsedIdxOffset);
        Assert.Equal(48, SplitRingLayout.DescriptorOffset(3));
        Assert.Equal((16, 2, 4), (SplitRingLayout.DescriptorTableAlignment, SplitRingLayout.AvailRingAlignment, SplitRingLayout.UsedRingAlignment));
    }
}
