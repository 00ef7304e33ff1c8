using Microsoft.Win32.SafeHandles;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// The review's ninth finding, memory part: a sparse memfd of any size costs the front end nothing
/// and took as much of our address space. The table is bounded (<see cref="VhostUserServer.MaxGuestMemoryBytes"/>,
/// 1 TiB by default) and so is the region count (8 per SET_MEM_TABLE, 32 ADD_MEM_REG slots).
/// </summary>
public sealed class MemoryBoundTests
{
    private const ulong GiB = 1ul << 30;

    [Fact]
    public void SetMemTable_OverTheConfiguredBound_ClosesTheConnection_AndServesTheNext()
    {
        using SafeFileHandle sparse = TestMemfd.Create(2 * GiB, TestMemfd.QemuSeals);
        BadMessageTests.AssertRejected(
            frontEnd => frontEnd.SendRegion(5, sparse, 0, 2 * GiB),
            "SetMemTable: 1 region(s) of 0x80000000 bytes in all, over this server's bound of 0x40000000 bytes",
            server => server.MaxGuestMemoryBytes = GiB);
    }

    [Fact]
    public void SetMemTable_OfASparse2TiBMemfd_IsOverTheDefaultBound()
    {
        using SafeFileHandle sparse = TestMemfd.Create(2048 * GiB, TestMemfd.QemuSeals);
        BadMessageTests.AssertRejected(
            frontEnd => frontEnd.SendRegion(5, sparse, 0, 2048 * GiB),
            "over this server's bound of 0x10000000000 bytes");
    }

    [Fact]
    public void AddMemReg_ThatTakesTheTablePastTheBound_ClosesTheConnection()
    {
        using SafeFileHandle sparse = TestMemfd.Create(GiB, TestMemfd.QemuSeals);
        BadMessageTests.AssertRejected(
            frontEnd =>
            {
                frontEnd.AddMemReg(); // 16 MiB: fits
                frontEnd.SendRegion(37, sparse, GiB, GiB);
            },
            "AddMemReg: 2 region(s) of 0x41000000 bytes in all, over this server's bound of 0x40000000 bytes",
            server => server.MaxGuestMemoryBytes = GiB);
    }

    [Fact]
    public void AddMemReg_OfA33rdRegion_ClosesTheConnection()
    {
        using SafeFileHandle page = TestMemfd.Create(4096, TestMemfd.QemuSeals);
        BadMessageTests.AssertRejected(
            frontEnd =>
            {
                for (ulong i = 0; i < 33; i++)
                {
                    frontEnd.SendRegion(37, page, i * 0x10000, 4096);
                }
            },
            "ADD_MEM_REG: all 32 memory slots are in use");
    }
}
