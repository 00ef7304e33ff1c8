using System;
using Virtio.Blk.Backends;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Xunit;

namespace Virtio.Blk.Tests;

/// <summary>Completions taken on the I/O thread in one deferred-call section (what the io_uring backend's eventfd handler does) reach the guest with one used->idx publish and one interrupt.</summary>
public sealed class CompletionBatchingTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(16)]
    [InlineData(32)]
    public void NCompletionsInOnePass_OnePublish_OneInterrupt(int count)
    {
        using var ioThread = new IoThread("blk-batch");
        ioThread.Start();
        var faulty = new FaultInjectingBlockBackend(new MemoryBlockBackend(1 << 20)) { Rule = _ => Fault.Hold };

        // Without EVENT_IDX every publish that moves used->idx raises an interrupt: interrupts count publishes.
        using var rig = new BlkRig(faulty, new BlockDeviceOptions { QueueSize = 128, IoThreads = [ioThread] }, eventIdx: false, queueSize: 128);
        using var controller = new HostNotifierController(rig.Device, new InProcessNotifierBinding(rig.Transport), [ioThread]);
        var reads = new Pending[count];
        for (int i = 0; i < count; i++)
        {
            reads[i] = rig.Post(0, (uint)BlockRequestType.In, (ulong)i * 8, inLength: 4096, kick: false);
        }

        rig.Kick(0);
        faulty.WaitHeld(count);
        int before = rig.Line.UsedBuffer;
        Assert.False(rig.TryCollect(0)); // nothing completed yet

        IoThreadRunResult ran = ioThread.RunAndWait(
            static state =>
            {
                using DeferredCallSection section = DeferredCalls.Section();
                ((FaultInjectingBlockBackend)state!).ReleaseHeld(); // completes each inline, on the I/O thread
            },
            faulty,
            TimeSpan.FromSeconds(10));

        Assert.Equal(IoThreadRunResult.Ran, ran);
        Assert.Equal(1, rig.Line.UsedBuffer - before);
        foreach (Pending read in reads)
        {
            Assert.Equal(BlockStatus.Ok, rig.Wait(read).BlockStatus);
        }

        Assert.Equal(1, rig.Line.UsedBuffer - before);
    }
}
