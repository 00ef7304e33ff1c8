using System.Collections.Generic;
using System.IO;
using Virtio.Blk.Backends;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

public sealed class MultiQueueTests
{
    [Fact]
    public void FourQueues_OnTwoIoThreadsWithHostNotifiers_AllRequestsComplete()
    {
        using var io0 = new IoThread("blk-mq-0");
        using var io1 = new IoThread("blk-mq-1");
        io0.Start();
        io1.Start();
        IoThread[] threads = [io0, io1];
        var disk = new MemoryBlockBackend(4 << 20);
        var faulty = new FaultInjectingBlockBackend(disk) { Rule = _ => Fault.Async };
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 64, QueueCount = 4, IoThreads = threads });
        var binding = new InProcessNotifierBinding(rig.Transport);
        using var controller = new HostNotifierController(rig.Device, binding, threads);
        for (ushort q = 0; q < 4; q++)
        {
            Assert.Equal(HostNotifierState.Assigned, controller.GetState(q));
        }

        Assert.NotEqual(0UL, rig.Negotiated & BlockFeatures.MultiQueue);
        for (int round = 0; round < 10; round++)
        {
            var pending = new List<(Pending Request, int Queue, ulong Sector)>();
            for (int q = 0; q < 4; q++)
            {
                for (int i = 0; i < 8; i++)
                {
                    ulong sector = (ulong)((q * 2048) + (round * 64) + (i * 8));
                    pending.Add((rig.Post(q, (uint)BlockRequestType.Out, sector, BlkRig.Pattern(4096, (int)sector)), q, sector));
                }
            }

            foreach (var (request, _, _) in pending)
            {
                Assert.Equal(BlockStatus.Ok, rig.Wait(request).BlockStatus);
            }

            var reads = new List<(Pending Request, ulong Sector)>();
            foreach (var (_, q, sector) in pending)
            {
                reads.Add((rig.Post((q + 1) % 4, (uint)BlockRequestType.In, sector, inLength: 4096), sector));
            }

            foreach (var (request, sector) in reads)
            {
                Completion read = rig.Wait(request);
                Assert.Equal(BlockStatus.Ok, read.BlockStatus);
                Assert.Equal(BlkRig.Pattern(4096, (int)sector), read.Data);
            }
        }

        Assert.Equal(0, rig.Device.InFlight);
    }
}
