using System;
using System.Buffers.Binary;
using System.Linq;
using System.Net.Sockets;
using Tmds.Linux;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// The review's seventh finding: a device that entered DEVICE_NEEDS_RESET was silent over
/// vhost-user. With VHOST_USER_PROTOCOL_F_BACKEND_REQ the front end hands over a socket
/// (SET_BACKEND_REQ_FD) and the server sends VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on it, without
/// ever waiting for the front end.
/// </summary>
public sealed unsafe class BackendChannelTests
{
    private const ulong BackendReq = 1ul << 5;

    [Fact]
    public void NeedsReset_SendsConfigChangeOnTheBackendChannel()
    {
        using var rig = new BlkServerRig();
        (int ours, int theirs) = SocketPair();
        using var channel = new Socket(new SafeSocketHandle(ours, ownsHandle: true)) { ReceiveTimeout = 10_000 };
        using TestFrontEnd frontEnd = rig.Connect();
        try
        {
            frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1), moreProtocolFeatures: BackendReq, beforeRings: () => frontEnd.Send(21, [], [theirs]));
        }
        finally
        {
            _ = LibC.close(theirs);
        }

        Assert.True(rig.WaitForLog(4031, "back-end request channel set"));
        BreakRing(frontEnd);

        byte[] header = new byte[12];
        int read = 0;
        while (read < header.Length)
        {
            int n = channel.Receive(header, read, header.Length - read, SocketFlags.None);
            Assert.NotEqual(0, n);
            read += n;
        }

        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(header)); // CONFIG_CHANGE_MSG
        Assert.Equal(9u, BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(4))); // version 1, need_reply (REPLY_ACK is negotiated)
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8)));
        Assert.True(rig.WaitForLog(4032, "configuration change (CONFIG_CHANGE_MSG) sent"));
    }

    [Fact]
    public void FrontEndThatNeverReadsItsChannel_DoesNotBlockTheServer()
    {
        using var rig = new BlkServerRig();
        (int ours, int theirs) = SocketPair();
        using var channel = new Socket(new SafeSocketHandle(ours, ownsHandle: true));
        // Fill the channel from the server's end before handing it over: the front end's receive
        // buffer is full and it never reads, so a blocking send would wait for ever.
        byte[] filler = new byte[4096];
        fixed (byte* p = filler)
        {
            while (LibC.send(theirs, p, (size_t)filler.Length, LibC.MSG_DONTWAIT | LibC.MSG_NOSIGNAL) > 0)
            {
            }
        }

        using (TestFrontEnd frontEnd = rig.Connect())
        {
            try
            {
                frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1), moreProtocolFeatures: BackendReq, beforeRings: () => frontEnd.Send(21, [], [theirs]));
            }
            finally
            {
                _ = LibC.close(theirs);
            }

            BreakRing(frontEnd);
            Assert.True(rig.WaitForLog(4033, $"errno {LibC.EAGAIN}"), "the dropped notification was not logged");

            // The connection's thread still answers, and the ring's I/O thread is free to stop.
            Assert.NotEqual(0ul, frontEnd.Call64(1));
        }

        Assert.True(rig.WaitForLog(4003, "disconnected"));
        Assert.DoesNotContain(rig.Logger.Entries, e => e.EventId.Id == 4017);
        BadMessageTests.AssertServes(rig);
    }

    [Fact]
    public void SetBackendReqFd_WithoutTheFeature_ClosesTheConnection()
    {
        (int ours, int theirs) = SocketPair();
        try
        {
            BadMessageTests.AssertRejected(frontEnd => frontEnd.Send(21, [], [theirs]), "SET_BACKEND_REQ_FD without VHOST_USER_PROTOCOL_F_BACKEND_REQ negotiated");
        }
        finally
        {
            _ = LibC.close(ours);
            _ = LibC.close(theirs);
        }
    }

    /// <summary>A head past the ring's size: the queue breaks and the device enters DEVICE_NEEDS_RESET on the kick.</summary>
    private static void BreakRing(TestFrontEnd frontEnd)
    {
        frontEnd.Drivers[0].PutOnAvailRing(999);
        frontEnd.Drivers[0].SetAvailIndex((ushort)(frontEnd.Drivers[0].AvailIndex + 1));
        frontEnd.Kicks[0].Signal();
    }

    private static (int Ours, int Theirs) SocketPair()
    {
        int* fds = stackalloc int[2];
        Assert.Equal(0, LibC.socketpair(LibC.AF_UNIX, LibC.SOCK_STREAM | LibC.SOCK_CLOEXEC, 0, fds));
        return (fds[0], fds[1]);
    }
}
