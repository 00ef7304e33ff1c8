using System.Collections.Generic;
using System.Threading;
using System;
using Virtio.Blk.Backends;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD on a packed ring: a back end that dies with chains in flight
/// (one of them completed out of order, its used descriptor written over another chain's head, and one
/// crossing the ring's end) leaves their copies in the region, and the next back end, given the same
/// region and the stale base QEMU sends after a crash, starts where the ring really is and runs exactly
/// those chains again, from the copies: none lost, none done twice.
/// </summary>
public sealed class PackedInFlightTests
{
    private const ushort RingSize = 16;
    private const uint InitialBase = 0x8000_8000;

    [Fact]
    public void BackEndDiesWithChainsInFlight_TheNextOneResubmitsExactlyThemFromTheirCopies()
    {
        var disk = new MemoryBlockBackend(8 << 20);
        var holding = new HoldingBackend(disk);
        using var first = new BlkServerRig(backend: holding, packedRing: true);
        using PackedGuestDriver driver = PackedBlkRequests.CreateDriver(first.Memory, RingSize);
        var data = new byte[7][];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = BlkServerRig.Pattern(4096, (byte)(i + 1));
        }

        ulong size = 0;
        int inflightFd = -1;
        var dying = first.Connect();
        try
        {
            dying.Negotiate();
            (size, inflightFd) = dying.GetInFlightFd(1, RingSize);
            dying.SetInFlightFd(size, inflightFd, 1, RingSize);
            dying.StartPackedRing(driver, 0, InitialBase);

            // Four writes done: both positions at 12.
            for (int i = 0; i < 4; i++)
            {
                PackedBlkRequests.Posted posted = PackedBlkRequests.Post(dying, driver, 1, (ulong)(i * 8), data[i], 0);
                Assert.True(SpinWait.SpinUntil(() => holding.HeldCount == 1, TimeSpan.FromSeconds(10)));
                holding.Release();
                Assert.Equal(posted.Id, PackedBlkRequests.WaitUsed(dying, driver));
            }

            // Three held: ring slots 12-14, 15-0 (across the end) and 1-3. The middle one completes
            // first, its used descriptor written at 12, over the first one's head. Then the back end
            // "dies": it never touches the ring again.
            var held = new List<ushort>();
            for (int i = 4; i < 7; i++)
            {
                held.Add(PackedBlkRequests.Post(dying, driver, 1, (ulong)(i * 8), data[i], 0).Id);
            }

            Assert.True(SpinWait.SpinUntil(() => holding.HeldCount == 3, TimeSpan.FromSeconds(10)));
            holding.Release(5 * 8 * 512);
            Assert.Equal(held[1], PackedBlkRequests.WaitUsed(dying, driver));

            var counting = new CountingBackend(disk);
            using var second = new BlkServerRig(backend: counting, memory: first.Memory, packedRing: true);
            using TestFrontEnd restarted = second.Connect();
            restarted.Negotiate();
            restarted.SetInFlightFd(size, inflightFd, 1, RingSize);
            restarted.StartPackedRing(driver, 0, InitialBase);

            var done = new HashSet<ushort> { held[1], PackedBlkRequests.WaitUsed(restarted, driver), PackedBlkRequests.WaitUsed(restarted, driver) };
            Assert.Equal(new HashSet<ushort>(held), done);
            Assert.Equal(2, counting.Writes);
            Assert.True(second.WaitForLog(4012, "resubmitting 2 request(s)"), "the resubmission was not logged");

            // New work continues after them, and every write is on the disk.
            for (int i = 0; i < data.Length; i++)
            {
                (byte status, byte[] read) = PackedBlkRequests.Request(restarted, driver, 0, (ulong)(i * 8), null, 4096);
                Assert.Equal(0, status);
                Assert.Equal(data[i], read);
            }
        }
        finally
        {
            holding.Release();
            dying.Dispose();
            if (inflightFd >= 0)
            {
                _ = Tmds.Linux.LibC.close(inflightFd);
            }
        }
    }
}
