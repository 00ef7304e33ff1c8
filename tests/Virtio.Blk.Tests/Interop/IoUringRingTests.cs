using Virtio.Blk.Backends;
using Virtio.Blk.Interop;
using Xunit;

namespace Virtio.Blk.Tests.Interop;

/// <summary>The io_uring ring alone, without block rules: entries, push, submit, reap. Skipped where io_uring is not allowed.</summary>
public sealed class IoUringRingTests
{
    public IoUringRingTests()
    {
        Assert.SkipUnless(IoUringBlockBackend.IsSupported(out string? reason), reason ?? string.Empty);
    }

    [Fact]
    public void NopsPushedAndSubmitted_AreReapedWithTheirUserData()
    {
        using var ring = new IoUringRing(4);
        Assert.True(ring.Entries >= 4);
        Assert.True(ring.TryPush(IoUringInterop.OpNop, false, -1, 0, 0, 0, 0, 7));
        Assert.True(ring.TryPush(IoUringInterop.OpNop, false, -1, 0, 0, 0, 0, 8));
        Assert.Equal(2u, ring.Unsubmitted);
        Assert.Equal(2, ring.Submit(2));
        Assert.Equal(0u, ring.Unsubmitted);

        var seen = new System.Collections.Generic.List<ulong>();
        while (seen.Count < 2)
        {
            if (!ring.TryReap(out IoUringInterop.Cqe cqe))
            {
                Assert.True(ring.SubmitAndWait(0) >= 0);
                continue;
            }

            Assert.Equal(0, cqe.Result);
            seen.Add(cqe.UserData);
        }

        Assert.Equal([7UL, 8UL], seen);
        Assert.False(ring.TryReap(out _));
    }

    [Fact]
    public void TryPush_WhenTheSubmissionRingIsFull_WritesNothing()
    {
        using var ring = new IoUringRing(2);
        for (uint i = 0; i < ring.Entries; i++)
        {
            Assert.True(ring.TryPush(IoUringInterop.OpNop, false, -1, 0, 0, 0, 0, i));
        }

        Assert.False(ring.TryPush(IoUringInterop.OpNop, false, -1, 0, 0, 0, 0, 99));
        Assert.Equal(ring.Entries, ring.Unsubmitted);
    }
}
