using System;
using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;
using Tmds.Linux;
using Virtio.Core.Memory;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// The review's fourth finding: a front end that truncates the memory it shared (ftruncate(fd, 0)
/// after SET_MEM_TABLE or GET_INFLIGHT_FD) made the next access a SIGBUS. Shared memory must now be
/// sealed against shrinking, and the in-flight memfd we create is sealed before the front end gets it.
/// </summary>
public sealed class SharedMemorySealTests
{
    [Fact]
    public void SetMemTable_WithAnUnsealedMemfd_ClosesTheConnection_AndServesTheNext()
    {
        using SafeFileHandle unsealed = TestMemfd.Create(TestFrontEnd.MemorySize, seals: 0);
        BadMessageTests.AssertRejected(frontEnd => frontEnd.SendRegion(5, unsealed, 0, TestFrontEnd.MemorySize), "SetMemTable: region 0 (guest 0x0, size 0x1000000, user 0x7f0000000000, offset 0x0): the fd is not sealed against shrinking (seals 0x0)");
    }

    [Fact]
    public void AddMemReg_WithAFileThatCannotBeSealed_ClosesTheConnection()
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"vhost-test-{Guid.NewGuid():N}.img");
        try
        {
            using var file = System.IO.File.OpenHandle(path, System.IO.FileMode.CreateNew, System.IO.FileAccess.ReadWrite);
            System.IO.RandomAccess.SetLength(file, (long)TestFrontEnd.MemorySize);
            BadMessageTests.AssertRejected(frontEnd => frontEnd.SendRegion(37, file, 0, TestFrontEnd.MemorySize), "AddMemReg: region 0 (guest 0x0, size 0x1000000, user 0x7f0000000000, offset 0x0): the fd is not sealed against shrinking");
        }
        finally
        {
            System.IO.File.Delete(path);
        }
    }

    [Fact]
    public void SealedMemfd_CannotBeTruncated_SoAKickAfterTheAttemptIsServed()
    {
        using var rig = new BlkServerRig();
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));
        int fd = (int)rig.Memory.Regions[0].FileDescriptor!.DangerousGetHandle();

        Assert.NotEqual(0, TestMemfd.Seals(fd) & LibC.F_SEAL_SHRINK);
        Assert.Equal(LibC.EPERM, TestMemfd.TryTruncate(fd));

        ushort head = BlkServerRig.Post(frontEnd, 0, 1, 0, writeData: BlkServerRig.Pattern(512, 3));
        Assert.Equal(0, BlkServerRig.Complete(frontEnd, 0, head).Status);
    }

    [Fact]
    public void AllowUnsealedMemory_MapsAnUnsealedMemfd()
    {
        using GuestMemory memory = TestMemfd.CreateUnsealedMemory();
        using var rig = new BlkServerRig(memory: memory);
        rig.Server.AllowUnsealedMemory = true;
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));

        ushort head = BlkServerRig.Post(frontEnd, 0, 1, 0, writeData: BlkServerRig.Pattern(512, 5));
        Assert.Equal(0, BlkServerRig.Complete(frontEnd, 0, head).Status);
    }

    [Fact]
    public void GetInFlightFd_ReturnsAMemfdSealedAgainstResizing()
    {
        using var rig = new BlkServerRig();
        using TestFrontEnd frontEnd = rig.Connect();
        (ulong size, int fd) = frontEnd.GetInFlightFd(1, 64);
        using var handle = new SafeFileHandle(fd, ownsHandle: true);

        Assert.NotEqual(0ul, size);
        Assert.Equal(TestMemfd.QemuSeals, TestMemfd.Seals(fd));
        Assert.Equal(LibC.EPERM, TestMemfd.TryTruncate(fd));
    }

    [Fact]
    public void SetInFlightFd_WithAnUnsealedMemfd_ClosesTheConnection_AndServesTheNext()
    {
        const ulong Size = 2112; // one queue of 64 entries, room for the packed layout: 32 + 32 * 64, rounded up to 64
        using SafeFileHandle unsealed = TestMemfd.Create(4096, seals: 0);
        BadMessageTests.AssertRejected(frontEnd => frontEnd.SetInFlightFd(Size, (int)unsealed.DangerousGetHandle(), 1, 64), "SET_INFLIGHT_FD: the fd is not sealed against shrinking (seals 0x0)");
    }
}
