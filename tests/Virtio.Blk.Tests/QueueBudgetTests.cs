using System.Threading;
using Virtio.Blk.Backends;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Testing;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>A pass over one queue is bounded, so a guest cannot keep a shared I/O thread to itself.</summary>
public sealed class QueueBudgetTests
{
    private const int RefillLimit = 20_000;

    [Fact]
    public void AQueueRefilledWithFailingRequests_DoesNotStarveASecondQueueOnTheSameIoThread_AndNothingIsLost()
    {
        using var io = new IoThread("blk-budget");
        io.Start();
        var backend = new RefillingBackend(new MemoryBlockBackend(1 << 20)) { FailingOffset = 0, RefillLimit = RefillLimit };
        using var rig = new BlkRig(backend, new BlockDeviceOptions { QueueSize = 64, QueueCount = 2, IoThreads = [io] }, eventIdx: false);
        var binding = new InProcessNotifierBinding(rig.Transport);
        using var controller = new HostNotifierController(rig.Device, binding, [io]);
        GuestDriver hostile = rig.Guests[0];
        int servedAfter = -1;
        backend.Refill = head =>
        {
            // Each failed request goes straight back on the ring: the pass always finds one more.
            hostile.PutOnAvailRing(head);
            hostile.Kick();
        };

        // Queue 0 starts failing and refilling on the I/O thread; queue 1's read is kicked meanwhile.
        rig.Post(0, (uint)BlockRequestType.In, 0, inLength: 512);
        Pending read = rig.Post(1, (uint)BlockRequestType.In, 8, inLength: 512);
        Completion done = rig.Wait(read);
        servedAfter = backend.Refills;

        Assert.Equal(BlockStatus.Ok, done.BlockStatus);
        Assert.True(servedAfter < RefillLimit, $"queue 1 was served only after queue 0's guest stopped refilling ({servedAfter} refills)");

        // Every request queue 0 was given is returned and published: none lost.
        Assert.True(
            SpinWait.SpinUntil(
                () => backend.Refills == RefillLimit && rig.Device.Queues[0].InFlightCount == 0 && rig.Device.Queues[0].NextUsed == hostile.AvailIndex && rig.Device.Queues[0].PublishedUsed == hostile.AvailIndex,
                BlkRig.Bound),
            $"queue 0: {backend.Refills} refills, used {rig.Device.Queues[0].NextUsed} (published {rig.Device.Queues[0].PublishedUsed}) of {hostile.AvailIndex}");
        Assert.True(rig.Device.IsLive);
    }
}
