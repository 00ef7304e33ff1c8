using System;
using System.IO;
using Microsoft.Extensions.Logging.Abstractions;
using Tmds.Linux;
using Virtio.Blk.Backends;
using Virtio.Blk.Interop;
using Xunit;

namespace Virtio.Blk.Tests.Backends;

/// <summary>The image layer alone: opening, and the block rules both file engines take from it.</summary>
public sealed class DiskImageTests : IDisposable
{
    private const int EOPNOTSUPP = 95;

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("virtio-blk-image-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void Open_CapacityIsTheSizeRoundedDownTo512_FlagsAreKept()
    {
        string path = TestFiles.NewImage(_directory, 4096 + 100);
        using DiskImage image = DiskImage.Open(path, readOnly: true, direct: false, lockImage: true, NullLogger.Instance);
        Assert.Equal(4096UL, image.Capacity);
        Assert.True(image.IsReadOnly);
        Assert.False(image.IsDirect);
    }

    [Fact]
    public void Open_MissingFile_ThrowsIOException()
    {
        Assert.Throws<IOException>(() => DiskImage.Open(Path.Combine(_directory.FullName, "none.img"), false, false, lockImage: true, NullLogger.Instance));
    }

    [Theory]
    [InlineData(BlockOperation.Write, true, BlockStatus.IoError)]
    [InlineData(BlockOperation.Discard, true, BlockStatus.IoError)]
    [InlineData(BlockOperation.WriteZeroes, true, BlockStatus.IoError)]
    [InlineData(BlockOperation.Read, true, BlockStatus.Ok)]          // no data: nothing to do
    [InlineData(BlockOperation.Write, false, BlockStatus.Ok)]        // no data: nothing to do
    [InlineData(BlockOperation.Discard, false, BlockStatus.Ok)]      // no ranges: nothing to do
    [InlineData((BlockOperation)77, false, BlockStatus.Unsupported)]
    public void Admit_RefusesOrFinishesWhatNeedsNoIo(BlockOperation operation, bool readOnly, BlockStatus expected)
    {
        string path = TestFiles.NewImage(_directory, 4096);
        using DiskImage image = DiskImage.Open(path, readOnly, false, lockImage: true, NullLogger.Instance);
        BlockIo io = NewIo(operation);
        Assert.Equal(expected, image.Admit(io));
    }

    [Fact]
    public void Admit_Flush_GoesToTheEngine()
    {
        string path = TestFiles.NewImage(_directory, 4096);
        using DiskImage image = DiskImage.Open(path, readOnly: true, false, lockImage: true, NullLogger.Instance);
        Assert.Null(image.Admit(NewIo(BlockOperation.Flush)));
    }

    [Theory]
    [InlineData(BlockOperation.Discard, false, FileInterop.FALLOC_FL_PUNCH_HOLE)]
    [InlineData(BlockOperation.Discard, true, FileInterop.FALLOC_FL_PUNCH_HOLE)]
    [InlineData(BlockOperation.WriteZeroes, true, FileInterop.FALLOC_FL_PUNCH_HOLE)]
    [InlineData(BlockOperation.WriteZeroes, false, FileInterop.FALLOC_FL_ZERO_RANGE)]
    public void FallocateMode_PunchesOnlyWhereUnmappingIsAllowed_AlwaysKeepsTheSize(BlockOperation operation, bool mayUnmap, int mode)
    {
        Assert.Equal(mode | FileInterop.FALLOC_FL_KEEP_SIZE, DiskImage.FallocateMode(operation, new BlockRange(0, 512, mayUnmap)));
    }

    [Theory]
    [InlineData(BlockOperation.Discard, 0, (byte)RangeOutcome.Done)]
    [InlineData(BlockOperation.Discard, EOPNOTSUPP, (byte)RangeOutcome.Done)] // a hint
    [InlineData(BlockOperation.WriteZeroes, EOPNOTSUPP, (byte)RangeOutcome.WriteZeroes)]
    [InlineData(BlockOperation.WriteZeroes, 5 /* EIO */, (byte)RangeOutcome.Failed)]
    [InlineData(BlockOperation.Discard, 28 /* ENOSPC */, (byte)RangeOutcome.Failed)]
    public void OnRangeResult_EachErrnoMeansWhatBothEnginesDo(BlockOperation operation, int errno, byte expected)
    {
        Assert.Equal(EOPNOTSUPP, (int)LibC.EOPNOTSUPP);
        string path = TestFiles.NewImage(_directory, 4096);
        using DiskImage image = DiskImage.Open(path, false, false, lockImage: true, NullLogger.Instance);
        Assert.Equal((RangeOutcome)expected, image.OnRangeResult(NewIo(operation), new BlockRange(0, 512, false), errno));
    }

    [Fact]
    public void ZeroChunk_IsAtMostTheBuffer_AndZeroes()
    {
        (nint address, int length) = DiskImage.ZeroChunk(0, 1UL << 20);
        Assert.Equal(DiskImage.ZeroBufferSize, length);
        Assert.Equal(100, DiskImage.ZeroChunk(1000, 1100).Length);
        Assert.True(new BlockSegment(address, length).AsSpan().IndexOfAnyExcept((byte)0) < 0);
    }

    private static BlockIo NewIo(BlockOperation operation) => new(new IdleBlockIoOwner()) { Operation = operation };
}
