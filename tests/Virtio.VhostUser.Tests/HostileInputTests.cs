using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.IO;
using Virtio.Core.Notifications;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// The review's tenth finding, vhost-user part: input that was handled but untested. Each case is
/// refused with one logged reason and the server then serves a well-behaved front end
/// (<see cref="BadMessageTests.AssertRejected"/>).
/// </summary>
public sealed class HostileInputTests
{
    [Fact]
    public void PayloadOver4096Bytes_ClosesTheConnection()
    {
        BadMessageTests.AssertRejected(frontEnd => frontEnd.Send(2, new byte[4097]), "payload of 4097 bytes is over the 4096-byte limit");
    }

    [Fact]
    public void PayloadSizeFieldOfFourGiB_ClosesTheConnection_WithoutWaitingForTheBytes()
    {
        byte[] header = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 2);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), uint.MaxValue);
        BadMessageTests.AssertRejected(frontEnd => frontEnd.SendRaw(header), "payload of 4294967295 bytes is over the 4096-byte limit");
    }

    [Fact]
    public void NineFds_ClosesTheConnection_AndClosesEveryReceivedFd()
    {
        // Each eventfd holds a count no other test uses: /proc/self/fdinfo finds every copy of it
        // in this process (the server runs here), whatever other tests open meanwhile.
        const uint Marker = 0x5eed_0100;
        var fds = new List<EventFd>();
        try
        {
            for (int i = 0; i < 9; i++)
            {
                fds.Add(EventFd.Create(Marker + (uint)i));
            }

            int[] raw = fds.ConvertAll(fd => fd.Fd).ToArray();
            BadMessageTests.AssertRejected(frontEnd => frontEnd.Send64(12, 0, raw), "more than 8 file descriptors in one message");

            // Only our own nine are left: the server closed the eight it kept and the extra one.
            Assert.Equal(9, CountEventFdsWithCountsFrom(Marker, 9));
        }
        finally
        {
            foreach (EventFd fd in fds)
            {
                fd.Dispose();
            }
        }
    }

    [Fact]
    public void VringNumZero_ClosesTheConnection()
    {
        BadMessageTests.AssertRejected(frontEnd => frontEnd.SendState(8, 0, 0), "size 0 is not a power of two in 1..64");
    }

    [Fact]
    public void VringNumOver32768_ClosesTheConnection()
    {
        BadMessageTests.AssertRejected(frontEnd => frontEnd.SendState(8, 0, 65536), "size 65536 is not a power of two in 1..64");
    }

    [Fact]
    public void VringBaseOver65535_ClosesTheConnection()
    {
        BadMessageTests.AssertRejected(frontEnd => frontEnd.SendState(10, 0, 65536), "base 65536 is over 65535 (split rings)");
    }

    [Fact]
    public void RegionWhoseGuestAddressWraps_ClosesTheConnection()
    {
        BadMessageTests.AssertRejected(frontEnd => SendRegion(frontEnd, guest: 0xffff_ffff_fff0_0000, user: TestFrontEnd.UserBase), "wraps around the 64-bit address space");
    }

    [Fact]
    public void RegionWhoseUserAddressWraps_ClosesTheConnection()
    {
        BadMessageTests.AssertRejected(frontEnd => SendRegion(frontEnd, guest: 0, user: 0xffff_ffff_fff0_0000), "wraps around the 64-bit address space");
    }

    /// <summary>SET_MEM_TABLE of the test memory's fd: 16 MiB at <paramref name="guest"/> / <paramref name="user"/>.</summary>
    private static void SendRegion(TestFrontEnd frontEnd, ulong guest, ulong user)
    {
        byte[] table = new byte[8 + 32];
        BinaryPrimitives.WriteUInt32LittleEndian(table, 1);
        TestFrontEnd.WriteRegion(table.AsSpan(8), guest, TestFrontEnd.MemorySize, user, 0);
        frontEnd.Send(5, table, [(int)frontEnd.Region.FileDescriptor!.DangerousGetHandle()]);
    }

    /// <summary>How many eventfds of this process hold a count in [<paramref name="first"/>, first + <paramref name="count"/>).</summary>
    private static int CountEventFdsWithCountsFrom(ulong first, int count)
    {
        int found = 0;
        foreach (string path in Directory.EnumerateFiles("/proc/self/fdinfo"))
        {
            try
            {
                foreach (string line in File.ReadLines(path))
                {
                    if (line.StartsWith("eventfd-count:", StringComparison.Ordinal)
                        && ulong.TryParse(line.AsSpan("eventfd-count:".Length).Trim(), System.Globalization.NumberStyles.HexNumber, null, out ulong value)
                        && value >= first && value < first + (ulong)count)
                    {
                        found++;
                    }
                }
            }
            catch (IOException)
            {
                // closed while we looked: not ours
            }
        }

        return found;
    }
}
