using System;
using System.Buffers.Binary;
using System.Linq;
using System.Runtime.InteropServices;
using Virtio.Core.Queues;
using Xunit;

namespace Virtio.Core.Tests.Queues;

/// <summary>The chain reader on the layouts a hostile driver may choose.</summary>
public sealed class ChainReaderTests
{
    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    private struct Header
    {
        public uint Type;
        public uint Reserved;
        public ulong Sector;
    }

    [Fact]
    public void TryRead_HeaderSplitOverSixteenOneByteBuffers_ReadsIt()
    {
        using var rig = new ChainRig();
        byte[] header = Enumerable.Range(1, 16).Select(i => (byte)i).ToArray();
        foreach (byte b in header)
        {
            rig.Add([b]);
        }

        rig.Add([0xEE, 0xEF]);
        Assert.True(rig.Gather());
        var reader = new ChainReader(rig.Readable);
        Span<byte> read = stackalloc byte[16];
        Assert.True(reader.TryRead(read));
        Assert.Equal(header, read.ToArray());
        Assert.Equal(2, reader.Remaining);
    }

    [Fact]
    public void TryReadStruct_AcrossBufferEdges_ReadsLittleEndianFields()
    {
        using var rig = new ChainRig();
        byte[] raw = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(raw, 1);
        BinaryPrimitives.WriteUInt64LittleEndian(raw.AsSpan(8), 0x1122334455667788);
        rig.Add(raw.AsSpan(0, 3));
        rig.Add(raw.AsSpan(3, 9));
        rig.Add(raw.AsSpan(12));
        Assert.True(rig.Gather());
        var reader = new ChainReader(rig.Readable);
        Assert.True(reader.TryRead(out Header header));
        Assert.Equal(1u, header.Type);
        Assert.Equal(0x1122334455667788ul, header.Sector);
        Assert.Equal(0, reader.Remaining);
    }

    [Fact]
    public void TryRead_TooFewBytes_ReadsNothingAndKeepsPosition()
    {
        using var rig = new ChainRig();
        rig.Add([1, 2, 3]);
        rig.Add([4, 5]);
        Assert.True(rig.Gather());
        var reader = new ChainReader(rig.Readable);
        Span<byte> six = stackalloc byte[6];
        Assert.False(reader.TryRead(six));
        Assert.Equal(5, reader.Remaining);
        Assert.False(reader.TryRead(out Header _));
        Span<byte> two = stackalloc byte[2];
        Assert.True(reader.TryRead(two));
        Assert.Equal(new byte[] { 1, 2 }, two.ToArray());
    }

    [Fact]
    public void Gather_ZeroLengthBuffers_AreLeftOut()
    {
        using var rig = new ChainRig();
        rig.Add([]);
        rig.Add([1]);
        rig.Add([]);
        rig.Add([2, 3]);
        rig.Add([], writable: true);
        rig.AddWritable(4);
        Assert.True(rig.Gather());
        Assert.Equal(2, rig.ReadableCount);
        Assert.Equal(3, rig.Count);
        var reader = new ChainReader(rig.Readable);
        Span<byte> all = stackalloc byte[3];
        Assert.Equal(3, reader.Read(all));
        Assert.Equal(new byte[] { 1, 2, 3 }, all.ToArray());
    }

    [Fact]
    public void Gather_BufferOutsideGuestMemory_FailsWithTheWalksError()
    {
        using var rig = new ChainRig();
        rig.Add([1, 2]);
        rig.Add(new byte[4], address: 1ul << 40);
        Assert.False(rig.Gather());
        Assert.Equal(QueueError.AddressOutOfRange, rig.Error);
    }

    [Fact]
    public void Gather_MoreBuffersThanRoom_CountsThemAll()
    {
        using var rig = new ChainRig();
        for (int i = 0; i < 3; i++)
        {
            rig.Add([(byte)i]);
        }

        Assert.True(rig.Gather(room: 2));
        Assert.Equal(3, rig.Count);
        Assert.Equal(3, rig.ReadableCount);
        Assert.Equal(default, rig.Segments[2]); // counted, not stored
    }

    [Fact]
    public void SkipAndPeekSegments_CutTheFirstAndLastSegment()
    {
        using var rig = new ChainRig();
        var first = rig.Add([0, 1, 2, 3, 4, 5, 6, 7]);
        rig.Add([8, 9, 10, 11]);
        var third = rig.Add([12, 13, 14, 15]);
        Assert.True(rig.Gather());
        var reader = new ChainReader(rig.Readable);
        Assert.Equal(5, reader.Skip(5));
        Span<IoSegment> segments = stackalloc IoSegment[4];
        int count = reader.PeekSegments(segments, maxBytes: 9);
        Assert.Equal(3, count);
        Assert.Equal(new byte[] { 5, 6, 7 }, segments[0].AsSpan().ToArray());
        Assert.Equal(new byte[] { 8, 9, 10, 11 }, segments[1].AsSpan().ToArray());
        Assert.Equal(new byte[] { 12, 13 }, segments[2].AsSpan().ToArray());
        Assert.Equal(IoSegment.FromSpan(rig.Guest(first, 8)[5..]), segments[0]);
        Assert.Equal(IoSegment.FromSpan(rig.Guest(third, 2)), segments[2]);
        Assert.Equal(11, reader.Remaining); // peeking does not move
    }

    [Fact]
    public void PeekSegments_DestinationFull_StopsThere()
    {
        using var rig = new ChainRig();
        rig.Add([1]);
        rig.Add([2]);
        rig.Add([3]);
        Assert.True(rig.Gather());
        var reader = new ChainReader(rig.Readable);
        Span<IoSegment> two = stackalloc IoSegment[2];
        Assert.Equal(2, reader.PeekSegments(two));
    }

    [Fact]
    public void Skip_HostileCounts_AreCutToWhatRemains()
    {
        using var rig = new ChainRig();
        rig.Add([1, 2, 3]);
        Assert.True(rig.Gather());
        var reader = new ChainReader(rig.Readable);
        Assert.Equal(0, reader.Skip(-1));
        Assert.Equal(0, reader.Skip(long.MinValue));
        Assert.Equal(3, reader.Skip(long.MaxValue));
        Assert.Equal(0, reader.Remaining);
        Assert.Equal(0, reader.Skip(1));
        Span<IoSegment> segments = stackalloc IoSegment[1];
        Assert.Equal(0, reader.PeekSegments(segments, long.MaxValue));
    }

    [Fact]
    public void EmptyReader_HasNothing()
    {
        var reader = new ChainReader(ReadOnlySpan<IoSegment>.Empty);
        Assert.Equal(0, reader.Remaining);
        Assert.True(reader.TryRead(Span<byte>.Empty));
        Assert.False(reader.TryRead(out int _));
    }
}
