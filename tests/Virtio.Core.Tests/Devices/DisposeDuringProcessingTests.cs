using System;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Queues;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Devices;

public sealed class DisposeDuringProcessingTests
{
    [Fact]
    public void Dispose_WaitsForAPassInProgress_AndNoOtherPassStartsMeanwhile()
    {
        using GuestMemory memory = GuestMemory.CreateAnonymous(16 << 20);
        using var first = new GuestDriver(memory, new GuestAddress(0x1000), 16, 1 << 20, 4096, eventIdx: false, indirect: false, heapSize: 4 << 20);
        using var second = new GuestDriver(memory, new GuestAddress(0x10000), 16, 5 << 20, 4096, eventIdx: false, indirect: false, heapSize: 4 << 20);
        using var device = new BlockingDevice(memory);
        var mmio = new MmioDriver(new VirtioMmioTransport(device, new InterruptRecorder()));
        mmio.Initialize(VirtioFeatures.CoreDefaults, first, second);
        first.AddChain(BufferSpec.Write(8));
        first.Kick();
        var kick = new Thread(() => mmio.Notify(0));
        kick.Start();
        Assert.True(device.Entered.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));

        using var disposed = new ManualResetEventSlim();
        var dispose = new Thread(() =>
        {
            device.Dispose();
            disposed.Set();
        });
        dispose.Start();
        Assert.True(SpinWait.SpinUntil(() => device.IsDisposed, TimeSpan.FromSeconds(10)), "Dispose did not begin");

        // Disposing: the other queue, still set up, is kicked and polled; nothing may serve it.
        second.AddChain(BufferSpec.Write(8));
        second.Kick();
        mmio.Notify(1);
        Assert.False(device.PollQueue(1));

        // The reset must not clear queue 0 under its running pass.
        Assert.False(disposed.Wait(TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken), "Dispose returned while a pass was running");
        device.Release.Set();
        Assert.True(disposed.Wait(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        kick.Join();
        dispose.Join();
        Assert.True(device.QueueWasReadyAtTheEnd);
        Assert.Equal(1, device.Passes);
        Assert.False(second.TryGetUsed(out _, out _));
    }

    /// <summary>A device whose pass over a queue blocks until the test releases it.</summary>
    private sealed class BlockingDevice(IGuestMemory memory) : VirtioDevice(0x3F, VirtioFeatures.CoreDefaults, memory, [16, 16])
    {
        public ManualResetEventSlim Entered { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        private int _passes;

        public int Passes => Volatile.Read(ref _passes);

        public bool QueueWasReadyAtTheEnd { get; private set; }

        public override void ReadConfig(int offset, Span<byte> data) => data.Clear();

        protected override void ProcessQueue(SplitVirtqueue queue)
        {
            Interlocked.Increment(ref _passes);
            if (queue.Index == 0)
            {
                Entered.Set();
                Release.Wait(TimeSpan.FromSeconds(30));
                QueueWasReadyAtTheEnd = queue.IsReady;
            }
        }
    }
}
