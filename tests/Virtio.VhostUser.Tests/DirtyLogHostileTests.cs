using System;
using System.Buffers.Binary;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Win32.SafeHandles;
using Virtio.Blk.Backends;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// SET_LOG_BASE from a hostile front end: each bad log closes the connection with its one logged
/// reason, maps nothing, and the server serves the next front end; a log replaced while a request is
/// in flight gets that request's pages in the log it was running under, later ones in the new log.
/// </summary>
public sealed class DirtyLogHostileTests
{
    private const uint SetLogBase = 6;
    private const uint SetLogFd = 7;
    private const ulong LogShmfd = 1ul << 1;

    [Theory]
    [InlineData(0ul, 0ul, 4096ul, "SET_LOG_BASE: log size 0 bytes, expected 1 to")]
    [InlineData(4096ul, 8192ul, 4096ul, "SET_LOG_BASE: the file is 4096 bytes, shorter than offset 8192 + size 4096")]
    [InlineData(8192ul, 0ul, 4096ul, "SET_LOG_BASE: the file is 4096 bytes, shorter than offset 0 + size 8192")]
    [InlineData(4096ul, 100ul, 8192ul, "SET_LOG_BASE: log offset 100 is not page-aligned")]
    [InlineData(1ul << 31, 0ul, 4096ul, "SET_LOG_BASE: log size 2147483648 bytes, expected 1 to 1073741824")]
    [InlineData(4096ul, 0xFFFF_FFFF_FFFF_F000ul, 4096ul, "SET_LOG_BASE: log offset 18446744073709547520 is not page-aligned or too large")]
    public void BadLogDescription_ClosesTheConnection(ulong size, ulong offset, ulong fileSize, string reason)
    {
        using SafeFileHandle log = TestMemfd.Create(fileSize, TestMemfd.QemuSeals);
        BadMessageTests.AssertRejected(frontEnd => SendLogBase(frontEnd, size, offset, log), reason);
    }

    [Fact]
    public void LogBase_WithoutAnFd_ClosesTheConnection()
    {
        BadMessageTests.AssertRejected(frontEnd => SendLogBase(frontEnd, 4096, 0, log: null), "SetLogBase: 0 file descriptor(s), expected 1");
    }

    [Fact]
    public void LogBase_WithAnUnsealedMemfd_ClosesTheConnection()
    {
        using SafeFileHandle log = TestMemfd.Create(4096, seals: 0);
        BadMessageTests.AssertRejected(frontEnd => SendLogBase(frontEnd, 4096, 0, log), "SET_LOG_BASE: the fd is not sealed against shrinking");
    }

    [Fact]
    public void LogBase_WithoutLogShmfdNegotiated_ClosesTheConnection()
    {
        using SafeFileHandle log = TestMemfd.Create(4096, TestMemfd.QemuSeals);
        BadMessageTests.AssertRejected(frontEnd => SendLogBase(frontEnd, 4096, 0, log, protocol: 0), "SET_LOG_BASE without VHOST_USER_PROTOCOL_F_LOG_SHMFD negotiated");
    }

    [Fact]
    public void LogFd_ThatIsNotAnEventFd_ClosesTheConnection()
    {
        using SafeFileHandle notEventFd = TestMemfd.Create(4096, TestMemfd.QemuSeals);
        BadMessageTests.AssertRejected(frontEnd => frontEnd.Send(SetLogFd, [], [(int)notEventFd.DangerousGetHandle()]), "SET_LOG_FD: the fd is not an eventfd");
    }

    [Fact]
    public void WritesPastTheLogsEnd_AreSkipped_NotWritten()
    {
        using var rig = new DirtyLogRig();

        // The used ring logged at 64 MiB: past the log's 32 MiB. The request's own pages are marked,
        // the used ring's are skipped (and logged once), and nothing lands outside the 1 KiB bitmap.
        rig.StartLogging(new Virtio.Core.Memory.GuestAddress(64ul << 20));
        rig.ClearLog();
        var (head, buffers) = rig.Post(1, 8, writeData: BlkServerRig.Pattern(512, 9));
        Assert.Equal(0, rig.WaitUsed(head, buffers));
        Assert.Equal(DirtyLogRig.Pages(buffers[2].Address, 1), rig.MarkedPages());
        Assert.True(rig.Server.WaitForLog(4042, "past the dirty log's 1024 bytes"));
    }

    [Fact]
    public async Task LogReplaced_WhileARequestIsInFlight_TheRequestMarksTheOldLog_LaterOnesTheNew()
    {
        using var inner = new MemoryBlockBackend(8 << 20);
        var holding = new HoldingBackend(inner);
        // A failure below leaves a read held: the close must not outwait the rig's 30 s.
        using var rig = new DirtyLogRig(holding, drainTimeout: TimeSpan.FromSeconds(5));
        rig.StartLogging();
        rig.ClearLog();

        var (held, heldBuffers) = rig.Post(0, 0, readLength: 4096);
        Assert.True(SpinWait.SpinUntil(() => holding.HeldCount == 1, TimeSpan.FromSeconds(10)), "the read did not reach the backend");

        // SET_LOG_BASE drains the running ring before it answers: it waits for the held read.
        using SafeFileHandle second = TestMemfd.Create(DirtyLogRig.LogSize, TestMemfd.QemuSeals, "dirty-log-second");
        Task replaced = Task.Run(() => rig.FrontEnd.SetLogBase(second, DirtyLogRig.LogSize, 0), TestContext.Current.CancellationToken);
        Assert.True(rig.Server.WaitForLog(4021, "waiting for 1 request(s) to return"));
        Assert.False(replaced.IsCompleted, "SET_LOG_BASE was answered with a request still writing under the old log");
        holding.Release();
        await replaced.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(0, rig.WaitUsed(held, heldBuffers));
        Assert.Contains(heldBuffers[1].Address.Value >> 12, rig.MarkedPages());

        // The new log has the ring restart's writes (used flags) only: not the held request's pages.
        Assert.Equal([rig.UsedRingPage], rig.MarkedPages(second));

        // A read again: a write would be followed by its flush (writethrough), held in turn.
        var (next, nextBuffers) = rig.Post(0, 8, readLength: 512);
        Assert.True(SpinWait.SpinUntil(() => holding.HeldCount == 1, TimeSpan.FromSeconds(10)));
        rig.ClearLog();
        holding.Release();
        Assert.Equal(0, rig.WaitUsed(next, nextBuffers));
        Assert.Contains(nextBuffers[1].Address.Value >> 12, rig.MarkedPages(second));
        Assert.Empty(rig.MarkedPages());
    }

    private static void SendLogBase(TestFrontEnd frontEnd, ulong size, ulong offset, SafeFileHandle? log, ulong protocol = LogShmfd)
    {
        frontEnd.Call64(1);
        frontEnd.Call64(15);
        frontEnd.Send64(16, protocol);
        frontEnd.Send(3, []);
        byte[] payload = new byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, size);
        BinaryPrimitives.WriteUInt64LittleEndian(payload.AsSpan(8), offset);
        frontEnd.Send(SetLogBase, payload, log is null ? default : [(int)log.DangerousGetHandle()]);
    }
}
