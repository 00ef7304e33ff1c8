using System.Buffers.Binary;
using Virtio.Blk.Backends;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>Chains longer than seg_max + 2 are refused (IOERR, or length 0 without a writable status byte), and the pooled per-request arrays stay within the bound.</summary>
public sealed class SegmentLimitTests
{
    private const int MaxSegments = 8;

    [Fact]
    public void AChainOverSegMax_FailsWithIoError_AndThePooledArraysStayWithinTheBound()
    {
        BlockIo? seen = null;
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20))
        {
            Rule = io =>
            {
                seen = io;
                return Fault.None;
            },
        };
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, MaxSegments = MaxSegments });

        // The device advertises the bound it enforces.
        Assert.NotEqual(0ul, rig.Negotiated & BlockFeatures.SegMax);
        Assert.Equal((uint)MaxSegments, BinaryPrimitives.ReadUInt32LittleEndian(rig.ReadConfig(12, 4)));

        // Header + 8 data buffers + status: at the bound, served.
        Assert.Equal(BlockStatus.Ok, rig.Wait(rig.Post(0, (uint)BlockRequestType.Out, 0, BlkRig.Pattern(MaxSegments * 512, 1), segment: 512)).BlockStatus);

        // Header + 40 data buffers + status: refused with IOERR, nothing reaches the backend.
        int submitted = faulty.Submitted;
        Completion refused = rig.Wait(rig.Post(0, (uint)BlockRequestType.Out, 0, BlkRig.Pattern(40 * 512, 2), segment: 512));
        Assert.Equal(BlockStatus.IoError, refused.BlockStatus);
        Assert.Equal(1u, refused.Length);
        Assert.Equal(submitted, faulty.Submitted);
        Assert.Contains(rig.Logger.Entries, e => e.EventId.Id == 2006);

        // The slot the huge chain was walked into did not grow past the bound, and still serves.
        Completion read = rig.Wait(rig.Post(0, (uint)BlockRequestType.In, 0, inLength: MaxSegments * 512, segment: 512));
        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.Equal(BlkRig.Pattern(MaxSegments * 512, 1), read.Data);
        Assert.NotNull(seen);
        Assert.True(seen.ChainCapacity <= MaxSegments + 2, $"the pooled chain array holds {seen.ChainCapacity} segments");
        Assert.True(rig.Device.IsLive);
    }

    [Fact]
    public void AChainOverSegMax_WithoutAWritableStatusByte_ReturnsWithLengthZero_NothingWritten()
    {
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20));
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, MaxSegments = MaxSegments });

        // Header + 40 readable data buffers and no status: too long, and nowhere to put IOERR.
        Completion refused = rig.Run(0, (uint)BlockRequestType.Out, 0, BlkRig.Pattern(40 * 512, 3), segment: 512, withStatus: false);
        Assert.Equal(0u, refused.Length);
        Assert.Equal(0, faulty.Submitted);
        Assert.Contains(rig.Logger.Entries, e => e.EventId.Id == 2006);

        // The device keeps serving; sector 0 was not written.
        Completion read = rig.Read(0, 512);
        Assert.Equal(BlockStatus.Ok, read.BlockStatus);
        Assert.All(read.Data, b => Assert.Equal(0, b));
        Assert.True(rig.Device.IsLive);
    }
}
