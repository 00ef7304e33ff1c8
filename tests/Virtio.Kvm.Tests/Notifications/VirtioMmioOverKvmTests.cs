using System;
using System.Threading;
using Virtio.Core.Devices;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Core.Transport;
using Virtio.Kvm.Bus;
using Virtio.Kvm.Notifications;
using Virtio.Testing;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

/// <summary>
/// The fast path of design.md end to end on /dev/kvm: a guest writes QueueNotify of a virtio-mmio
/// device, KVM's ioeventfd signals the queue's event fd, the device's I/O thread processes the queue
/// and signals the interrupt eventfd; no MMIO exit happens. Pausing the controller deassigns the
/// ioeventfd and the same notify then exits to the transport on the vCPU thread.
/// </summary>
public sealed class VirtioMmioOverKvmTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public void QueueNotify_AssignedQueue_IsServedByTheIoThreadWithoutAnExit_AndAfterPauseByTheTransport()
    {
        // Two regions, two memory slots: [0, 768 KiB) for code, [1 MiB, 17 MiB) for the rings and buffers.
        var memory = new GuestMemory([
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(0), 0xC0000),
            GuestMemoryRegion.CreateAnonymous(new GuestAddress(0x100000), 16 << 20),
        ]);
        using RealModeGuest guest = RealModeGuest.Create(
            GuestCode.Concat(GuestCode.MovEax(0), GuestCode.StoreEaxToDoorbell, GuestCode.Hlt), memory: memory);
        using EventFd interrupt = EventFd.Create();
        var device = new RecordingDevice(guest.Memory, features: VirtioFeatures.Version1);
        var transport = new VirtioMmioTransport(device, new EventFdGuestNotifier(interrupt));
        guest.Bus.Add(KvmIoSpace.Mmio, RealModeGuest.DataSegmentBase, 0x200, new VirtioMmioIoHandler(transport));
        var binding = KvmIoEventFdBinding.ForVirtioMmio(guest.Vm, RealModeGuest.DataSegmentBase);
        using var io = new IoThread("kvm-e2e-io");
        io.Start();
        using var controller = new HostNotifierController(device, binding, [io]);
        var queue = new GuestDriver(guest.Memory, new GuestAddress(0x100000), 64, 0x200000, 4096, eventIdx: false, indirect: false);
        new MmioDriver(transport).Initialize(VirtioFeatures.Version1, queue);
        Assert.Equal(HostNotifierState.Assigned, controller.GetState(0));
        Assert.Equal(1, binding.AssignedCount);

        queue.AddChain(BufferSpec.Write(8));
        queue.Kick();
        Assert.Equal(KvmVcpuStopReason.Halted, guest.Vcpu.Run(guest.Bus));

        Assert.Equal(0, guest.Vcpu.MmioExits);
        Assert.True(WaitForUsed(queue), "the I/O thread never completed the chain");
        Assert.True(WaitForSignal(interrupt), "no interrupt after the completion");
        Assert.NotEqual(Environment.CurrentManagedThreadId, device.LastProcessingThread);

        // Paused VM: the controller deassigns on the I/O thread; the notify now exits to the transport,
        // which processes the queue synchronously on this (the vCPU) thread.
        controller.Pause();
        Assert.Equal(HostNotifierState.Deassigned, controller.GetState(0));
        Assert.Equal(0, binding.AssignedCount);
        queue.AddChain(BufferSpec.Write(8));
        queue.Kick();
        guest.Restart();
        Assert.Equal(KvmVcpuStopReason.Halted, guest.Vcpu.Run(guest.Bus));

        Assert.Equal(1, guest.Vcpu.MmioExits);
        Assert.True(queue.TryGetUsed(out _, out _), "the synchronous path did not complete the chain before Run returned");
        Assert.Equal(Environment.CurrentManagedThreadId, device.LastProcessingThread);
        Assert.Equal(2, device.Completed.Count);
    }

    private static bool WaitForUsed(GuestDriver queue)
    {
        DateTime deadline = DateTime.UtcNow + Timeout;
        var spin = new SpinWait();
        while (DateTime.UtcNow < deadline)
        {
            if (queue.TryGetUsed(out _, out _))
            {
                return true;
            }

            spin.SpinOnce();
        }

        return false;
    }

    private static bool WaitForSignal(EventFd eventFd)
    {
        DateTime deadline = DateTime.UtcNow + Timeout;
        var spin = new SpinWait();
        while (DateTime.UtcNow < deadline)
        {
            if (eventFd.TryConsume(out _))
            {
                return true;
            }

            spin.SpinOnce();
        }

        return false;
    }
}
