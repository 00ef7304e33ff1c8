using System;
using Virtio.Core.Queues;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>The chain writer: caps, counts and buffer edges.</summary>
public sealed class ChainWriterTests
{
    [Fact]
    public void Write_AcrossBuffers_CountsAndStopsWhenFull()
    {
        using var rig = new ChainRig();
        rig.Add([9]);
        var a = rig.AddWritable(2);
        rig.Add([], writable: true);
        var b = rig.AddWritable(3);
        Assert.True(rig.Gather());
        var writer = new ChainWriter(rig.Writable);
        Assert.Equal(5, writer.Remaining);
        Assert.Equal(5, writer.Write([1, 2, 3, 4, 5, 6, 7]));
        Assert.Equal(5, writer.Written);
        Assert.Equal(0, writer.Write([8]));
        Assert.Equal(new byte[] { 1, 2 }, rig.Guest(a, 2).ToArray());
        Assert.Equal(new byte[] { 3, 4, 5 }, rig.Guest(b, 3).ToArray());
    }

    [Fact]
    public void Write_WithCap_WritesAtMostTheCap()
    {
        using var rig = new ChainRig();
        var a = rig.AddWritable(8);
        Assert.True(rig.Gather());
        var writer = new ChainWriter(rig.Writable);
        Assert.Equal(3, writer.Write([1, 2, 3, 4, 5], maxBytes: 3));
        Assert.Equal(0, writer.Write([1], maxBytes: -1));
        Assert.Equal(5, writer.Remaining);
        Assert.Equal(new byte[] { 1, 2, 3, 0 }, rig.Guest(a, 4).ToArray());
    }

    [Fact]
    public void TryWrite_DoesNotFit_WritesNothing()
    {
        using var rig = new ChainRig();
        var a = rig.AddWritable(1);
        rig.AddWritable(2);
        Assert.True(rig.Gather());
        var writer = new ChainWriter(rig.Writable);
        Assert.False(writer.TryWrite(0x01020304u));
        Assert.Equal(0, rig.Guest(a, 1)[0]);
        Assert.True(writer.TryWrite((ushort)0x0201));
        Assert.Equal(1, rig.Guest(a, 1)[0]);
        Assert.Equal(2, writer.Written);
    }

    [Fact]
    public void SkipAndAdvance_MoveOn_OnlyAdvanceCounts()
    {
        using var rig = new ChainRig();
        rig.AddWritable(4);
        var b = rig.AddWritable(4);
        Assert.True(rig.Gather());
        var writer = new ChainWriter(rig.Writable);
        Assert.Equal(3, writer.Skip(3));
        Assert.Equal(2, writer.Advance(2));
        Assert.Equal(2, writer.Written);
        Span<IoSegment> segments = stackalloc IoSegment[2];
        Assert.Equal(1, writer.PeekSegments(segments));
        Assert.Equal(IoSegment.FromSpan(rig.Guest(b, 4)[1..]), segments[0]);
        Assert.Equal(3, writer.Advance(long.MaxValue));
        Assert.Equal(5, writer.Written);
    }

    [Fact]
    public void IoSegment_RefusesNegativeLengthsAndOutOfRangeSlices()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new IoSegment(0x1000, -1));
        var segment = new IoSegment(0x1000, 4);
        Assert.Equal(new IoSegment(0x1002, 2), segment.Slice(2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => segment.Slice(3, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => segment.Slice(-1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => segment.Slice(5, 0));
    }
}
