using System;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Testing;
using Xunit;

namespace Virtio.Core.Tests.Notifications;

/// <summary>
/// Seed 001's point, end to end: a device that publishes each of 32 completions separately raises
/// 32 irqfd writes when served synchronously, and one when served by the I/O thread, whose
/// wake-up runs inside a deferred-call section.
/// </summary>
public sealed class BatchedInterruptTests
{
    private const int Burst = 32;

    [Fact]
    public void BurstOf32Completions_OneIrqfdWrite_OnTheIoThread()
    {
        Assert.Equal(1UL, RunBurst(useIoThread: true));
    }

    [Fact]
    public void BurstOf32Completions_32IrqfdWrites_WithoutADeferredSection()
    {
        Assert.Equal((ulong)Burst, RunBurst(useIoThread: false));
    }

    private static ulong RunBurst(bool useIoThread)
    {
        using var memory = GuestMemory.CreateAnonymous(16 << 20);
        using var irqfd = EventFd.Create();
        var device = new RecordingDevice(memory, features: VirtioFeatures.Version1) { PublishEachCompletion = true };
        var transport = new VirtioMmioTransport(device, new EventFdGuestNotifier(irqfd));
        var binding = new InProcessNotifierBinding(transport, capacity: useIoThread ? 1 : 0);
        using var io = new IoThread("burst-io");
        io.Start();
        using var controller = new HostNotifierController(device, binding, [io]);
        var guest = new GuestDriver(memory, new GuestAddress(0x1000), 64, 1 << 20, 4096, eventIdx: false, indirect: false);
        var mmio = new MmioDriver(transport);
        mmio.Initialize(VirtioFeatures.Version1, guest);
        Assert.Equal(useIoThread ? HostNotifierState.Assigned : HostNotifierState.Deassigned, controller.GetState(0));

        for (int i = 0; i < Burst; i++)
        {
            guest.AddChain(BufferSpec.Write(8));
        }

        guest.Kick();
        mmio.Notify(0);

        // Wait (bounded) until the I/O thread has completed the whole burst.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        int used = 0;
        var spin = new SpinWait();
        while (used < Burst && DateTime.UtcNow < deadline)
        {
            if (guest.TryGetUsed(out _, out _))
            {
                used++;
            }
            else
            {
                spin.SpinOnce();
            }
        }

        Assert.Equal(Burst, used);
        io.Stop(); // no handler runs after this: the count is final
        Assert.True(irqfd.TryConsume(out ulong writes));
        return writes;
    }
}
