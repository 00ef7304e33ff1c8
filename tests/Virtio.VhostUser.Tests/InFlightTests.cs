using System;
using System.Threading;
using Microsoft.Win32.SafeHandles;
using Virtio.Blk.Backends;
using Virtio.Core.Notifications;
using Virtio.Testing;
using Virtio.VhostUser.Memory;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD: a back end that dies with requests in flight (completed
/// out of order) leaves them in the shared inflight region, and the next back end, given the same
/// region, runs exactly those again before new work: none lost, none done twice.
/// </summary>
public sealed class InFlightTests
{
    private const ushort QueueSize = 64;

    [Fact]
    public void BackEndDiesWithRequestsInFlight_TheNextOneResubmitsExactlyThem()
    {
        var disk = new MemoryBlockBackend(8 << 20);
        var holding = new HoldingBackend(disk);
        using var first = new BlkServerRig(backend: holding);
        var drivers = TestFrontEnd.CreateDrivers(first.Memory, 1, QueueSize);
        byte[][] data = [BlkServerRig.Pattern(4096, 1), BlkServerRig.Pattern(4096, 2), BlkServerRig.Pattern(4096, 3)];
        ulong size = 0;
        int inflightFd = -1;
        var dying = first.Connect();
        try
        {
            dying.Start(drivers, beforeRings: () =>
            {
                (size, inflightFd) = dying.GetInFlightFd(1, QueueSize);
                dying.SetInFlightFd(size, inflightFd, 1, QueueSize);
            });
            for (int i = 0; i < 3; i++)
            {
                BlkServerRig.Post(dying, 0, 1, (ulong)(i * 8), writeData: data[i]);
            }

            Assert.True(SpinWait.SpinUntil(() => holding.HeldCount == 3, TimeSpan.FromSeconds(10)));

            // The middle one completes first; then the back end "dies": it never touches the
            // ring again (its held requests stay held until the end of the test).
            holding.Release(8 * 512);
            (ushort completed, _) = dying.WaitUsed(0);
            Assert.Equal(1, drivers[0].LastUsedIndex);

            var counting = new CountingBackend(disk);
            using var second = new BlkServerRig(backend: counting, memory: first.Memory);
            using TestFrontEnd restarted = second.Connect();
            restarted.Start(drivers, bases: [drivers[0].LastUsedIndex], beforeRings: () => restarted.SetInFlightFd(size, inflightFd, 1, QueueSize));

            var done = new System.Collections.Generic.HashSet<ushort> { completed };
            for (int i = 0; i < 2; i++)
            {
                done.Add(restarted.WaitUsed(0).Head);
            }

            Assert.Equal(3, done.Count);
            Assert.Equal(2, counting.Writes);
            Assert.True(second.WaitForLog(4012, "resubmitting 2 request(s)"));

            // New work continues after them, and every write is on the disk.
            for (int i = 0; i < 3; i++)
            {
                ushort read = BlkServerRig.Post(restarted, 0, 0, (ulong)(i * 8), readLength: 4096);
                Assert.Equal(data[i], BlkServerRig.Complete(restarted, 0, read, 4096).Data);
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

    [Fact]
    public void RegionNamingAHeadOutsideTheRing_BreaksThatRing_TheConnectionLives()
    {
        // The region is the front end's memory: a head it marks in flight is untrusted. Rings of 32
        // in a region of 64 entries per queue (the device's largest ring), head 40 marked.
        using var rig = new BlkServerRig();
        var drivers = TestFrontEnd.CreateDrivers(rig.Memory, 1, 32);
        int inflightFd = -1;
        using TestFrontEnd frontEnd = rig.Connect();
        try
        {
            frontEnd.Start(drivers, beforeRings: () =>
            {
                (ulong size, inflightFd) = frontEnd.GetInFlightFd(1, 32);
                using (InFlightRegion region = InFlightRegion.Map(new SafeFileHandle(Tmds.Linux.LibC.dup(inflightFd), ownsHandle: true), 0, size, 1, QueueSize))
                {
                    Span<byte> entry = region.QueueSpan(0).Slice(InFlightRegion.HeaderSize + (InFlightRegion.EntrySize * 40), InFlightRegion.EntrySize);
                    entry[0] = 1;
                    entry[8] = 1;
                }

                frontEnd.SetInFlightFd(size, inflightFd, 1, 32);
            });

            Assert.True(rig.WaitForLog(4015, "InvalidHeadIndex"));
            Assert.Equal(Virtio.Core.Queues.QueueError.InvalidHeadIndex, rig.Server.Device.Queues[0].Error);
            Assert.True((rig.Server.Device.Status & Virtio.Core.Devices.DeviceStatus.DeviceNeedsReset) != 0, "DEVICE_NEEDS_RESET must be set");
        }
        finally
        {
            if (inflightFd >= 0)
            {
                _ = Tmds.Linux.LibC.close(inflightFd);
            }
        }
    }
}
