using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Testing;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// A packed ring (VIRTIO_F_RING_PACKED) served over vhost-user: the 32-bit SET/GET_VRING_BASE
/// encoding QEMU uses (positions in bits 0-14 and 16-30, wrap counters in bits 15 and 31), a ring
/// handed from one connection to the next at that base after both counters wrapped, and the bad
/// bases a front end can send.
/// </summary>
public sealed class PackedVringTests
{
    private const uint In = 0;
    private const uint Out = 1;
    private const uint InitialBase = 0x8000_8000; // both positions 0, both counters 1

    [Fact]
    public void PackedRing_OfferedOnlyWhenAsked()
    {
        using var split = new BlkServerRig();
        using (TestFrontEnd frontEnd = split.Connect())
        {
            Assert.Equal(0ul, frontEnd.Call64(1) & VirtioFeatures.RingPacked);
        }

        using var packed = new BlkServerRig(packedRing: true);
        using TestFrontEnd packedFrontEnd = packed.Connect();
        Assert.NotEqual(0ul, packedFrontEnd.Call64(1) & VirtioFeatures.RingPacked);
    }

    [Fact]
    public void WriteThenRead_OnAPackedRing_RoundTripsAndGetVringBaseEncodesBothPositions()
    {
        using var rig = new BlkServerRig(packedRing: true);
        using var driver = CreateDriver(rig.Memory, 64);
        using TestFrontEnd frontEnd = rig.Connect();
        ulong features = frontEnd.Negotiate();
        Assert.NotEqual(0ul, features & VirtioFeatures.RingPacked);
        frontEnd.StartPackedRing(driver, 0, InitialBase);
        byte[] data = BlkServerRig.Pattern(4096, 9);

        Assert.Equal(0, Request(frontEnd, driver, Out, 8, data, 0).Status);
        (byte status, byte[] readBack) = Request(frontEnd, driver, In, 8, null, 4096);

        Assert.Equal(0, status);
        Assert.Equal(data, readBack);
        // Two chains of three descriptors: both positions at 6, both counters still 1.
        Assert.Equal(0x8006_8006u, frontEnd.GetVringBase(0));
    }

    [Fact]
    public void BothCountersWrapped_GetVringBaseThenSetVringBaseOnANewConnection_ContinuesWhereItStopped()
    {
        using var rig = new BlkServerRig(packedRing: true);
        using var driver = CreateDriver(rig.Memory, 16);
        uint stoppedAt;
        using (TestFrontEnd first = rig.Connect())
        {
            first.Negotiate();
            first.StartPackedRing(driver, 0, InitialBase);
            for (int i = 0; i < 10; i++)
            {
                Assert.Equal(0, Request(first, driver, Out, (ulong)i * 8, BlkServerRig.Pattern(4096, (byte)i), 0).Status);
            }

            stoppedAt = first.GetVringBase(0);
        }

        // 30 descriptors on a ring of 16: both positions at 14 in the second lap (counters 0).
        Assert.False(driver.AvailWrapCounter);
        Assert.Equal(0x000E_000Eu, stoppedAt);
        Assert.True(rig.WaitForLog(4003, "disconnected"));

        using TestFrontEnd second = rig.Connect();
        second.Negotiate();
        second.StartPackedRing(driver, 0, stoppedAt);
        for (int i = 0; i < 10; i++)
        {
            (byte status, byte[] read) = Request(second, driver, In, (ulong)i * 8, null, 4096);
            Assert.Equal(0, status);
            Assert.Equal(BlkServerRig.Pattern(4096, (byte)i), read);
        }

        Assert.Equal(new PackedBaseOf(driver).Value, second.GetVringBase(0));
    }

    [Theory]
    [InlineData(16u, "position at or past the ring size")] // avail position 16 on a ring of 16
    [InlineData(0x8000_0000u | (16u << 16), "position at or past the ring size")] // used position 16
    public void SetVringBase_PackedPositionPastTheRing_ClosesTheConnectionWithTheReason(uint badBase, string reason)
    {
        using var rig = new BlkServerRig(packedRing: true);
        using var driver = CreateDriver(rig.Memory, 16);
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Negotiate();
        frontEnd.SendState(8, 0, driver.QueueSize);
        frontEnd.SendState(10, 0, badBase);

        Assert.True(frontEnd.IsClosedByPeer(), "the connection stayed open");
        Assert.True(rig.WaitForLog(4004, reason), "the reason was not logged");
    }

    [Fact]
    public void SetVringBase_SplitRingAbove16Bits_StillRefused()
    {
        using var rig = new BlkServerRig(packedRing: true);
        var drivers = TestFrontEnd.CreateDrivers(rig.Memory, 1);
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Negotiate(~VirtioFeatures.RingPacked);
        frontEnd.StartRing(drivers[0], 0, 0);
        frontEnd.SendState(10, 0, 0x8000_8000);

        Assert.True(frontEnd.IsClosedByPeer(), "the connection stayed open");
        Assert.True(rig.WaitForLog(4004, "over 65535"), "the reason was not logged");
    }

    private static PackedGuestDriver CreateDriver(GuestMemory memory, ushort size) => PackedBlkRequests.CreateDriver(memory, size);

    private static (byte Status, byte[] Data) Request(TestFrontEnd frontEnd, PackedGuestDriver driver, uint type, ulong sector, byte[]? write, int readLength) =>
        PackedBlkRequests.Request(frontEnd, driver, type, sector, write, readLength);

    /// <summary>The base a front end would send to resume <paramref name="Driver"/>'s ring with nothing in flight.</summary>
    private readonly record struct PackedBaseOf(PackedGuestDriver Driver)
    {
        public uint Value =>
            Driver.NextAvail | (Driver.AvailWrapCounter ? 1u << 15 : 0) | ((uint)Driver.LastUsed << 16) | (Driver.UsedWrapCounter ? 1u << 31 : 0);
    }
}
