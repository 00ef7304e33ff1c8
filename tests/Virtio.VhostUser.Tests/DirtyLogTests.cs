using System.Collections.Generic;
using System.Linq;
using Virtio.Core.Memory;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// Dirty logging through the library's front end and real memfds: each guest-memory write the blk
/// device makes (data a read wrote through the file backend, the status byte, the used element and
/// index) marks exactly its pages, the used ring's at SET_VRING_ADDR's log address; nothing is marked
/// while logging is off.
/// </summary>
public sealed class DirtyLogTests
{
    private const uint In = 0;
    private const uint Out = 1;

    [Fact]
    public void BlkRead_MarksItsDataStatusAndUsedRingPages_AndNothingElse()
    {
        using var rig = new DirtyLogRig();
        rig.StartLogging();
        rig.ClearLog();

        var (head, buffers) = rig.Post(In, 0, readLength: 4096);
        Assert.Equal(0, rig.WaitUsed(head, buffers));
        Assert.Equal(BlkServerRig.Pattern(4096, 3), rig.Driver.Span(buffers[1].Address, 4096).ToArray());

        var expected = new SortedSet<ulong>(DirtyLogRig.Pages(buffers[1].Address, 4096).Concat(DirtyLogRig.Pages(buffers[2].Address, 1))) { rig.UsedRingPage };
        Assert.Equal(expected, rig.MarkedPages());
    }

    [Fact]
    public void BlkWrite_MarksItsStatusByteAndUsedRing_NotTheDataItRead()
    {
        using var rig = new DirtyLogRig();
        rig.StartLogging();
        rig.ClearLog();

        var (head, buffers) = rig.Post(Out, 8, writeData: BlkServerRig.Pattern(4096, 9));
        Assert.Equal(0, rig.WaitUsed(head, buffers));

        var expected = new SortedSet<ulong>(DirtyLogRig.Pages(buffers[2].Address, 1)) { rig.UsedRingPage };
        Assert.Equal(expected, rig.MarkedPages());
    }

    [Fact]
    public void UsedRingWrites_AreLoggedAtTheRingsLogAddress()
    {
        using var rig = new DirtyLogRig();

        // vhost-user.rst: used-ring writes are logged at log_guest_addr, which need not be the ring's
        // guest address (nor inside the memory table): 24 MiB, past the 16 MiB of memory.
        var logAddress = new GuestAddress(24ul << 20);
        rig.StartLogging(logAddress);
        rig.ClearLog();

        var (head, buffers) = rig.Post(Out, 8, writeData: BlkServerRig.Pattern(512, 9));
        Assert.Equal(0, rig.WaitUsed(head, buffers));

        var expected = new SortedSet<ulong>(DirtyLogRig.Pages(buffers[2].Address, 1)) { (logAddress.Value + (rig.Driver.UsedRing.Value & 0xFFF)) >> 12 };
        Assert.Equal(expected, rig.MarkedPages());
    }

    [Fact]
    public void LoggingOff_MarksNothing_BeforeLogAllAndAfterItIsCleared()
    {
        using var rig = new DirtyLogRig();

        // A log but no LOG_ALL yet (QEMU sends SET_LOG_BASE first).
        rig.FrontEnd.SetLogBase(rig.Log, DirtyLogRig.LogSize, 0);
        var (head, buffers) = rig.Post(In, 0, readLength: 4096);
        Assert.Equal(0, rig.WaitUsed(head, buffers));
        Assert.Empty(rig.MarkedPages());

        // On, then off again: the requests after that mark nothing.
        rig.StartLogging();
        (head, buffers) = rig.Post(In, 0, readLength: 4096);
        Assert.Equal(0, rig.WaitUsed(head, buffers));
        Assert.NotEmpty(rig.MarkedPages());
        rig.StopLogging();
        rig.ClearLog();
        (head, buffers) = rig.Post(In, 0, readLength: 4096);
        Assert.Equal(0, rig.WaitUsed(head, buffers));
        Assert.Empty(rig.MarkedPages());
    }
}
