using System;
using Tmds.Linux;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.VhostUser.Tests;

/// <summary>
/// The review's first finding, end to end: a front end sends a blocking call fd whose counter is full
/// and makes it blocking again after we took it; the completion's interrupt must not wedge the ring's
/// I/O thread, which other rings and later front ends share.
/// </summary>
public sealed class HostileEventFdTests
{
    private const ulong Full = ulong.MaxValue - 1;

    [Fact]
    public unsafe void FullBlockingCallFd_TheCompletionsInterruptDoesNotBlockTheIoThread()
    {
        using var io = new IoThread("vhost-hostile-call");
        io.Start();
        using var rig = new BlkServerRig(ioThreads: [io]);
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));

        int call = LibC.eventfd(0, LibC.EFD_CLOEXEC); // blocking, as the hostile front end makes it
        Assert.True(call >= 0);
        try
        {
            ulong full = Full;
            Assert.Equal(8, (long)LibC.write(call, &full, 8));
            frontEnd.Send64(13, 0, [call]); // SET_VRING_CALL, ring 0
            _ = frontEnd.Call64(1);         // GET_FEATURES: every message before it has been handled

            // The back end made the fd non-blocking when it took it; the peer clears that again.
            Assert.Equal(0, LibC.fcntl(call, LibC.F_SETFL, LibC.fcntl(call, LibC.F_GETFL) & ~LibC.O_NONBLOCK));

            ushort head = BlkServerRig.Post(frontEnd, 0, 0, 0, readLength: 512);
            (byte status, _) = BlkServerRig.Complete(frontEnd, 0, head, 512);
            Assert.Equal(0, status);

            // The I/O thread went on past the interrupt it could not deliver.
            Assert.Equal(IoThreadRunResult.Ran, io.RunAndWait(static _ => { }, null, TimeSpan.FromSeconds(5)));
        }
        finally
        {
            // Unblock a write stuck in the kernel (without the guard) so the rig can stop; then close ours.
            ulong drained;
            _ = LibC.fcntl(call, LibC.F_SETFL, LibC.fcntl(call, LibC.F_GETFL) | LibC.O_NONBLOCK);
            _ = LibC.read(call, &drained, 8);
            _ = LibC.close(call);
        }
    }

    [Fact]
    public void RingThatBreaks_SignalsItsErrorFd()
    {
        using var rig = new BlkServerRig();
        using TestFrontEnd frontEnd = rig.Connect();
        frontEnd.Start(TestFrontEnd.CreateDrivers(rig.Memory, 1));
        using var error = Virtio.Core.Notifications.EventFd.Create();
        frontEnd.Send64(14, 0, [error.Fd]); // SET_VRING_ERR, ring 0
        _ = frontEnd.Call64(1);             // every message before it has been handled

        // A head past the ring's size: the queue breaks (DEVICE_NEEDS_RESET) on the kick.
        frontEnd.Drivers[0].PutOnAvailRing(999);
        frontEnd.Drivers[0].SetAvailIndex((ushort)(frontEnd.Drivers[0].AvailIndex + 1));
        frontEnd.Kicks[0].Signal();

        Assert.True(TestFrontEnd.WaitReadable(error.Fd, TimeSpan.FromSeconds(10)), "the error fd was never signalled");
        Assert.True(error.TryConsume(out _));
        Assert.Equal(Virtio.Core.Queues.QueueError.InvalidHeadIndex, rig.Server.Device.Queues[0].Error);
    }
}
