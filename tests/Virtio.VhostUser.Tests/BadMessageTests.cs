using System;
using System.Buffers.Binary;
using System.Net.Sockets;
using Virtio.Core.Notifications;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// One test per class of bad message: the server closes that connection, logs why (event 4004),
/// and serves the next front end.
/// </summary>
public sealed class BadMessageTests
{
    private const int ProtocolErrorEvent = 4004;

    [Fact]
    public void ShortHeader_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.SendRaw(new byte[] { 1, 0, 0, 0, 1, 0 }, default, shutdownAfter: true), "short header");
    }

    [Fact]
    public void WrongVersion_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.Send(1, [], flags: 2), "header version");
    }

    [Fact]
    public void WrongPayloadSize_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.Send(2, new byte[4]), "payload of 4 bytes, expected 8");
    }

    [Fact]
    public void TooManyFds_ClosesTheConnection()
    {
        using var fd = EventFd.Create();
        AssertRejected(frontEnd => frontEnd.Send64(2, 1ul << 32, [fd.Fd]), "1 file descriptor(s), expected 0");
    }

    [Fact]
    public void TooFewFds_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.Send64(12, 0), "0 file descriptor(s), expected 1");
    }

    [Fact]
    public void KickFdThatIsNotAnEventFd_ClosesTheConnection()
    {
        using var file = System.IO.File.OpenHandle("/proc/self/stat");
        AssertRejected(frontEnd => frontEnd.Send64(12, 0, [(int)file.DangerousGetHandle()]), "the fd is not an eventfd");
    }

    [Fact]
    public void OverlappingRegions_CloseTheConnection()
    {
        AssertRejected(
            frontEnd =>
            {
                byte[] table = new byte[8 + 64];
                BinaryPrimitives.WriteUInt32LittleEndian(table, 2);
                TestFrontEnd.WriteRegion(table.AsSpan(8), 0, 1 << 20, TestFrontEnd.UserBase, 0);
                TestFrontEnd.WriteRegion(table.AsSpan(40), 0x80000, 1 << 20, TestFrontEnd.UserBase + (2 << 20), 0);
                int fd = (int)frontEnd.Region.FileDescriptor!.DangerousGetHandle();
                frontEnd.Send(5, table, [fd, fd]);
            },
            "overlaps the region");
    }

    [Fact]
    public void RegionPastTheEndOfItsFile_ClosesTheConnection()
    {
        AssertRejected(
            frontEnd =>
            {
                byte[] table = new byte[8 + 32];
                BinaryPrimitives.WriteUInt32LittleEndian(table, 1);
                TestFrontEnd.WriteRegion(table.AsSpan(8), 0, TestFrontEnd.MemorySize * 2, TestFrontEnd.UserBase, 0);
                frontEnd.Send(5, table, [(int)frontEnd.Region.FileDescriptor!.DangerousGetHandle()]);
            },
            "shorter than offset + size");
    }

    [Fact]
    public void EmptyMemoryTable_ClosesTheConnectionWithAHint()
    {
        AssertRejected(frontEnd => frontEnd.Send(5, new byte[8]), "share=on");
    }

    [Fact]
    public void VringAddressOutsideMemory_ClosesTheConnection()
    {
        AssertRejected(
            frontEnd =>
            {
                frontEnd.SetMemTable();
                frontEnd.SendState(8, 0, 64);
                byte[] addr = new byte[40];
                BinaryPrimitives.WriteUInt64LittleEndian(addr.AsSpan(8), TestFrontEnd.UserBase + TestFrontEnd.MemorySize);
                BinaryPrimitives.WriteUInt64LittleEndian(addr.AsSpan(16), TestFrontEnd.UserBase + 0x2000);
                BinaryPrimitives.WriteUInt64LittleEndian(addr.AsSpan(24), TestFrontEnd.UserBase + 0x3000);
                frontEnd.Send(9, addr);
            },
            "descriptor table at user address");
    }

    [Fact]
    public void QueueIndexOutOfRange_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.SendState(8, 99, 64), "ring index 99 out of range");
    }

    [Fact]
    public void VringNumNotAPowerOfTwo_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.SendState(8, 0, 100), "size 100 is not a power of two");
    }

    [Fact]
    public void VringNumOverTheMaximum_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.SendState(8, 0, 128), "size 128 is not a power of two in 1..64");
    }

    [Fact]
    public void InFlightFdOfTheWrongSize_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.SetInFlightFd(4096, (int)frontEnd.Region.FileDescriptor!.DangerousGetHandle(), 1, 64), "SET_INFLIGHT_FD: mmap size 4096");
    }

    [Fact]
    public void InFlightForMoreQueuesThanTheDevice_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.Send(31, new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 64, 0, 0, 0, 0, 0 }), "9 queues, the device has 1");
    }

    [Fact]
    public void VringEnableOtherThanZeroOrOne_ClosesTheConnection()
    {
        // SET_VRING_ENABLE (18): ring 0, value 2.
        AssertRejected(frontEnd => frontEnd.Send64(18, 2ul << 32), "value 2, expected 0 or 1");
    }

    [Fact]
    public void VringKickWithoutAnFd_ClosesTheConnection()
    {
        // SET_VRING_KICK (12) for ring 0 with VHOST_USER_VRING_NOFD_MASK: polling mode, which is not served.
        AssertRejected(frontEnd => frontEnd.Send64(12, 0x100), "without a kick fd (polling mode) is not supported");
    }

    [Fact]
    public void UnknownRequest_ClosesTheConnection()
    {
        AssertRejected(frontEnd => frontEnd.Send(99, []), "unsupported request 99");
    }

    /// <summary>
    /// A server (set up by <paramref name="configure"/>) gets the bad message: it closes that
    /// connection with <paramref name="reason"/> logged (4004) and serves the next front end.
    /// </summary>
    internal static void AssertRejected(Action<TestFrontEnd> sendBadMessage, string reason, Action<VhostUserServer>? configure = null)
    {
        using var rig = new BlkServerRig();
        configure?.Invoke(rig.Server);
        using (TestFrontEnd bad = rig.Connect())
        {
            sendBadMessage(bad);
            Assert.True(bad.IsClosedByPeer(), "the server kept the connection open");
        }

        Assert.True(rig.WaitForLog(ProtocolErrorEvent, reason), $"no log entry with '{reason}'");

        AssertServes(rig);
    }

    /// <summary>The process keeps serving: the next front end negotiates and does I/O.</summary>
    internal static void AssertServes(BlkServerRig rig)
    {
        using TestFrontEnd good = rig.Connect();
        good.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));
        ushort head = BlkServerRig.Post(good, 0, 1, 0, writeData: new byte[512]);
        Assert.Equal(0, BlkServerRig.Complete(good, 0, head).Status);
    }
}
