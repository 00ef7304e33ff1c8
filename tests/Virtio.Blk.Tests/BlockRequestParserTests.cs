using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Virtio.Blk.Backends;
using Virtio.Core.Queues;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>
/// <see cref="BlockRequestParser"/> alone: chains laid out by hand in pinned memory, no queue and no
/// backend. Hostile layouts (a header in 1-byte buffers, empty buffers, no or a short status, data
/// past the capacity, malformed ranges, a short GET_ID buffer) get the typed error they earn.
/// </summary>
public sealed class BlockRequestParserTests
{
    private const ulong CapacitySectors = 2048;
    private const ulong AllFeatures = BlockFeatures.Discard | BlockFeatures.WriteZeroes;

    private static readonly BlockDeviceOptions s_options = new()
    {
        MaxDiscardSegments = 4,
        MaxDiscardSectors = 256,
        MaxWriteZeroesSegments = 4,
        MaxWriteZeroesSectors = 256,
    };

    [Fact]
    public void Read_OneHeaderBufferDataAndStatus_IsParsed()
    {
        var chain = new Chain();
        chain.Readable(Header(BlockRequestType.In, 8));
        chain.Writable(1024);
        chain.Writable(1);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));

        Assert.Equal(BlockRequestType.In, request.Type);
        Assert.Equal(8UL, request.Sector);
        Assert.Equal(1024, request.DataLength);
        Assert.Equal(chain.AddressOf(2, 0), request.StatusAddress);
        Assert.Equal(new[] { new BlockSegment(chain.AddressOf(1, 0), 1024) }, io.Segments.ToArray());
        Assert.Equal(1024, io.Length);
    }

    [Fact]
    public void Write_HeaderSplitOverSixteenOneByteBuffers_IsParsed_DataStartsAfterIt()
    {
        var chain = new Chain();
        byte[] header = Header(BlockRequestType.Out, 3);
        foreach (byte b in header)
        {
            chain.Readable([b]);
        }

        chain.Readable(new byte[512]);
        chain.Writable(1);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));

        Assert.Equal(BlockRequestType.Out, request.Type);
        Assert.Equal(3UL, request.Sector);
        Assert.Equal(512, request.DataLength);
        Assert.Equal(new[] { new BlockSegment(chain.AddressOf(16, 0), 512) }, io.Segments.ToArray());
    }

    [Fact]
    public void Write_HeaderAndDataShareABuffer_DataIsTheRestOfIt()
    {
        var chain = new Chain();
        byte[] buffer = new byte[16 + 1024];
        Header(BlockRequestType.Out, 0).CopyTo(buffer, 0);
        chain.Readable(buffer);
        chain.Writable(1);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));

        Assert.Equal(1024, request.DataLength);
        Assert.Equal(new[] { new BlockSegment(chain.AddressOf(0, 16), 1024) }, io.Segments.ToArray());
    }

    [Fact]
    public void ZeroLengthBuffers_AnywhereInTheChain_AreSteppedOver()
    {
        var chain = new Chain();
        byte[] header = Header(BlockRequestType.In, 1);
        chain.Readable([]);
        chain.Readable(header[..5]);
        chain.Readable([]);
        chain.Readable(header[5..]);
        chain.Writable(0);
        chain.Writable(512);
        chain.Writable(0);
        chain.Writable(1);
        chain.Writable(0);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));

        Assert.Equal(1UL, request.Sector);
        Assert.Equal(512, request.DataLength);
        Assert.Equal(chain.AddressOf(7, 0), request.StatusAddress);
        Assert.Equal(new[] { new BlockSegment(chain.AddressOf(5, 0), 512) }, io.Segments.ToArray());
    }

    [Fact]
    public void StatusMergedIntoTheLastDataBuffer_IsItsLastByte()
    {
        var chain = new Chain();
        chain.Readable(Header(BlockRequestType.In, 0));
        chain.Writable(513);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));

        Assert.Equal(chain.AddressOf(1, 512), request.StatusAddress);
        Assert.Equal(new[] { new BlockSegment(chain.AddressOf(1, 0), 512) }, io.Segments.ToArray());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NoWritableByte_IsNoStatusByte_WithNoStatusAddress(bool emptyWritable)
    {
        var chain = new Chain();
        chain.Readable(Header(BlockRequestType.In, 0));
        if (emptyWritable)
        {
            chain.Writable(0);
        }

        Assert.Equal(BlockRequestError.NoStatusByte, chain.Parse(out BlockRequest request, out _));
        Assert.Equal(0, request.StatusAddress);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    public void HeaderShorterThanSixteen_IsHeaderTooShort_StatusStillFound(int headerBytes)
    {
        var chain = new Chain();
        for (int i = 0; i < headerBytes; i++)
        {
            chain.Readable([0]);
        }

        chain.Writable(1);

        Assert.Equal(BlockRequestError.HeaderTooShort, chain.Parse(out BlockRequest request, out _));
        Assert.Equal(chain.AddressOf(headerBytes, 0), request.StatusAddress);
        Assert.Equal(BlockStatus.IoError, BlockRequestError.HeaderTooShort.ToStatus());
    }

    [Fact]
    public void StatusOnly_ReadOfNothing_IsParsed_WithNoData()
    {
        var chain = new Chain();
        chain.Readable(Header(BlockRequestType.In, 0));
        chain.Writable(1);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));
        Assert.Equal(0, request.DataLength);
        Assert.True(io.Segments.IsEmpty);
    }

    [Theory]
    [InlineData(BlockRequestType.In, CapacitySectors - 1, 1024)]
    [InlineData(BlockRequestType.In, CapacitySectors, 512)]
    [InlineData(BlockRequestType.Out, CapacitySectors + 1, 512)]
    [InlineData(BlockRequestType.Out, ulong.MaxValue, 512)]
    [InlineData(BlockRequestType.In, ulong.MaxValue / 512 + 1, 512)]
    public void DataPastCapacity_IsDataBeyondCapacity(BlockRequestType type, ulong sector, int bytes)
    {
        Assert.Equal(BlockRequestError.DataBeyondCapacity, Data(type, sector, bytes).Parse(out _, out _));
    }

    [Theory]
    [InlineData(BlockRequestType.In, CapacitySectors - 1)]
    [InlineData(BlockRequestType.Out, CapacitySectors - 1)]
    public void DataEndingAtCapacity_IsParsed(BlockRequestType type, ulong sector)
    {
        Assert.Equal(BlockRequestError.None, Data(type, sector, 512).Parse(out _, out _));
    }

    [Theory]
    [InlineData(BlockRequestType.In, 511)]
    [InlineData(BlockRequestType.Out, 513)]
    public void DataNotWholeSectors_IsDataNotSectorMultiple(BlockRequestType type, int bytes)
    {
        Assert.Equal(BlockRequestError.DataNotSectorMultiple, Data(type, 0, bytes).Parse(out _, out _));
    }

    [Theory]
    [InlineData(BlockRequestType.Out)]
    [InlineData(BlockRequestType.Discard)]
    [InlineData(BlockRequestType.WriteZeroes)]
    public void ChangeOnAReadOnlyDisk_IsReadOnlyDisk(BlockRequestType type)
    {
        Chain chain = type == BlockRequestType.Out ? Data(type, 0, 512) : Ranges(type, (0, 8, 0));
        chain.ReadOnly = true;
        Assert.Equal(BlockRequestError.ReadOnlyDisk, chain.Parse(out _, out _));
        Assert.Equal(BlockStatus.IoError, BlockRequestError.ReadOnlyDisk.ToStatus());
    }

    [Fact]
    public void UnknownType_IsUnknownType_Unsupported()
    {
        var chain = new Chain();
        chain.Readable(Header((BlockRequestType)99, 0));
        chain.Writable(1);
        Assert.Equal(BlockRequestError.UnknownType, chain.Parse(out BlockRequest request, out _));
        Assert.Equal((BlockRequestType)99, request.Type);
        Assert.Equal(BlockStatus.Unsupported, BlockRequestError.UnknownType.ToStatus());
    }

    [Theory]
    [InlineData(BlockRequestType.Discard, BlockFeatures.WriteZeroes)]
    [InlineData(BlockRequestType.WriteZeroes, BlockFeatures.Discard)]
    public void RangesWithoutTheirFeature_AreFeatureNotNegotiated_Unsupported(BlockRequestType type, ulong negotiated)
    {
        Chain chain = Ranges(type, (0, 8, 0));
        chain.Features = negotiated;
        Assert.Equal(BlockRequestError.FeatureNotNegotiated, chain.Parse(out _, out _));
        Assert.Equal(BlockStatus.Unsupported, BlockRequestError.FeatureNotNegotiated.ToStatus());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(20)]
    public void RangeListNotWholeSegments_IsSegmentListMalformed(int bytes)
    {
        var chain = new Chain();
        chain.Readable(Header(BlockRequestType.Discard, 0));
        chain.Readable(new byte[bytes]);
        chain.Writable(1);
        Assert.Equal(BlockRequestError.SegmentListMalformed, chain.Parse(out _, out _));
    }

    [Fact]
    public void MoreRangesThanTheLimit_IsTooManySegments()
    {
        Chain chain = Ranges(BlockRequestType.Discard, (0, 1, 0), (1, 1, 0), (2, 1, 0), (3, 1, 0), (4, 1, 0));
        Assert.Equal(BlockRequestError.TooManySegments, chain.Parse(out _, out _));
    }

    [Theory]
    [InlineData(BlockRequestType.Discard, 1u)] // unmap is for write-zeroes only
    [InlineData(BlockRequestType.Discard, 2u)]
    [InlineData(BlockRequestType.WriteZeroes, 0x80000000u)]
    public void RangeWithFlagsItMayNotHave_IsSegmentFlagsUnsupported(BlockRequestType type, uint flags)
    {
        Assert.Equal(BlockRequestError.SegmentFlagsUnsupported, Ranges(type, (0, 8, flags)).Parse(out _, out _));
        Assert.Equal(BlockStatus.Unsupported, BlockRequestError.SegmentFlagsUnsupported.ToStatus());
    }

    [Fact]
    public void RangeLongerThanTheLimit_IsSegmentTooLong()
    {
        Assert.Equal(BlockRequestError.SegmentTooLong, Ranges(BlockRequestType.WriteZeroes, (0, 257, 0)).Parse(out _, out _));
    }

    [Theory]
    [InlineData(CapacitySectors - 7, 8u)]
    [InlineData(CapacitySectors + 1, 0u)]
    [InlineData(ulong.MaxValue, 1u)]
    public void RangePastCapacity_IsSegmentBeyondCapacity(ulong sector, uint sectors)
    {
        Assert.Equal(BlockRequestError.SegmentBeyondCapacity, Ranges(BlockRequestType.Discard, (sector, sectors, 0)).Parse(out _, out _));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void WriteZeroesRanges_SplitOverOneByteBuffers_AreParsed_UnmapOnlyWhereTheBackendMay(bool mayUnmap)
    {
        byte[] list = BlkRig.Segments((8, 8, 1), (CapacitySectors - 16, 16, 0));
        var chain = new Chain { MayUnmap = mayUnmap };
        chain.Readable(Header(BlockRequestType.WriteZeroes, 0));
        foreach (byte b in list)
        {
            chain.Readable([b]);
        }

        chain.Writable(1);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));
        Assert.Equal(BlockRequestType.WriteZeroes, request.Type);
        Assert.Equal(
            new[] { new BlockRange(8 * 512, 8 * 512, mayUnmap), new BlockRange((CapacitySectors - 16) * 512, 16 * 512, false) },
            io.Ranges.ToArray());
        Assert.True(io.Segments.IsEmpty);
    }

    [Theory]
    [InlineData(20, 20)]
    [InlineData(8, 8)]
    [InlineData(0, 0)]
    [InlineData(64, 64)]
    public void GetId_DataIsTheWritableBytesBeforeTheStatus_HoweverShort(int buffer, long expected)
    {
        var chain = new Chain();
        chain.Readable(Header(BlockRequestType.GetId, 0));
        chain.Writable(buffer + 1);

        Assert.Equal(BlockRequestError.None, chain.Parse(out BlockRequest request, out BlockIo io));
        Assert.Equal(BlockRequestType.GetId, request.Type);
        Assert.Equal(expected, request.DataLength);
        Assert.Equal(expected, io.Length);
        Assert.Equal(chain.AddressOf(1, buffer), request.StatusAddress);
    }

    [Fact]
    public void ErrorsThatEarnUnsupported_AreExactlyTheThreeTheSpecNames()
    {
        foreach (BlockRequestError error in Enum.GetValues<BlockRequestError>())
        {
            BlockStatus expected = error switch
            {
                BlockRequestError.None => BlockStatus.Ok,
                BlockRequestError.UnknownType or BlockRequestError.FeatureNotNegotiated or BlockRequestError.SegmentFlagsUnsupported => BlockStatus.Unsupported,
                _ => BlockStatus.IoError,
            };
            Assert.Equal(expected, error.ToStatus());
        }
    }

    [Fact]
    public void BlockSegmentAndIoSegment_ShareALayout_SoBlockIoCanHandTheParsersSegmentsToBackends()
    {
        var probe = new IoSegment(0x1234, 56);
        BlockSegment cast = MemoryMarshal.Cast<IoSegment, BlockSegment>(new ReadOnlySpan<IoSegment>(in probe))[0];
        Assert.Equal(Unsafe.SizeOf<IoSegment>(), Unsafe.SizeOf<BlockSegment>());
        Assert.Equal(new BlockSegment(0x1234, 56), cast);
    }

    [BlkProperty]
    public bool Write_AnySplitOfHeaderAndData_ParsesAsOneBuffer(byte[] cuts, byte sectors)
    {
        int dataLength = (sectors % 8) * 512;
        byte[] whole = new byte[16 + dataLength];
        Header(BlockRequestType.Out, 5).CopyTo(whole, 0);
        for (int i = 16; i < whole.Length; i++)
        {
            whole[i] = (byte)i;
        }

        var chain = new Chain();
        int at = 0;
        foreach (byte cut in cuts ?? [])
        {
            int length = Math.Min(cut % 40, whole.Length - at); // 0 included: empty buffers
            chain.Readable(whole.AsSpan(at, length).ToArray());
            at += length;
        }

        chain.Readable(whole.AsSpan(at).ToArray());
        chain.Writable(1);

        if (chain.Parse(out BlockRequest request, out BlockIo io) != BlockRequestError.None)
        {
            return false;
        }

        var data = new List<byte>();
        foreach (BlockSegment segment in io.Segments)
        {
            data.AddRange(segment.AsSpan().ToArray());
        }

        return request.Sector == 5 && request.DataLength == dataLength && data.ToArray().AsSpan().SequenceEqual(whole.AsSpan(16));
    }

    private static byte[] Header(BlockRequestType type, ulong sector)
    {
        byte[] header = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)type);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), sector);
        return header;
    }

    private static Chain Data(BlockRequestType type, ulong sector, int bytes)
    {
        var chain = new Chain();
        chain.Readable(Header(type, sector));
        if (type == BlockRequestType.Out)
        {
            chain.Readable(new byte[bytes]);
            chain.Writable(1);
        }
        else
        {
            chain.Writable(bytes + 1);
        }

        return chain;
    }

    private static Chain Ranges(BlockRequestType type, params (ulong Sector, uint Sectors, uint Flags)[] ranges)
    {
        var chain = new Chain();
        chain.Readable(Header(type, 0));
        chain.Readable(BlkRig.Segments(ranges));
        chain.Writable(1);
        return chain;
    }

    /// <summary>A chain as TryGather leaves it, each buffer a pinned array (readable ones first), plus the parser's settings.</summary>
    private sealed class Chain
    {
        private readonly List<byte[]> _buffers = [];
        private int _readable;

        public bool ReadOnly { get; set; }

        public bool MayUnmap { get; set; } = true;

        public ulong Features { get; set; } = AllFeatures;

        public void Readable(byte[] bytes)
        {
            Assert.Equal(_readable, _buffers.Count); // readable buffers come first
            byte[] pinned = GC.AllocateArray<byte>(bytes.Length, pinned: true);
            bytes.CopyTo(pinned, 0);
            _buffers.Add(pinned);
            _readable++;
        }

        public void Writable(int length) => _buffers.Add(GC.AllocateArray<byte>(length, pinned: true));

        public nint AddressOf(int buffer, int offset) =>
            Marshal.UnsafeAddrOfPinnedArrayElement(_buffers[buffer], 0) + offset;

        public BlockRequestError Parse(out BlockRequest request, out BlockIo io)
        {
            var segments = new IoSegment[_buffers.Count];
            for (int i = 0; i < segments.Length; i++)
            {
                segments[i] = new IoSegment(AddressOf(i, 0), _buffers[i].Length);
            }

            io = new BlockIo(new IdleBlockIoOwner());
            var parser = new BlockRequestParser(CapacitySectors, ReadOnly, s_options, MayUnmap);
            return parser.Parse(segments, _readable, Features, io, out request);
        }
    }
}
