using System;
using System.Threading;
using Virtio.Core.Notifications;
using Virtio.Core.Threading;
using Virtio.Kvm.Notifications;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

public sealed class KvmIrqFdNotifierTests
{
    [Fact]
    public void Create_EdgeTriggered_SignallingRaisesTheIoApicPin_AndTheVmStaysRunnable()
    {
        // With the in-kernel irqchip HLT no longer exits, so the guest pauses itself through its bus
        // handler after one MMIO write, with interrupts disabled (IF = 0) so the line stays pending.
        using RealModeGuest guest = RealModeGuest.Create(
            GuestCode.Concat(GuestCode.StoreEaxToDoorbell, GuestCode.Spin), irqChip: true);
        var device = new RecordingIoHandler();
        device.OnWrite = guest.Vcpu.RequestPause;
        guest.Bus.Add(KvmIoSpace.Mmio, RealModeGuest.DataSegmentBase, 0x200, device);
        const byte Vector = 0x33;
        byte apicId = LocalApic.EnableAndReadId(guest.Vcpu);
        IoApic.Redirect(guest.Vm, pin: 5, Vector, apicId);

        using KvmIrqFdNotifier irq = KvmIrqFdNotifier.Create(guest.Vm, gsi: 5);
        Assert.Equal(5u, irq.Gsi);
        Assert.Null(irq.ResampleFd);
        Assert.False(LocalApic.IsRequested(guest.Vcpu, Vector), "the vector was requested before the irqfd was signalled");
        irq.Notify(InterruptReason.UsedBuffer, 0);
        irq.Notify(InterruptReason.ConfigurationChange, 0);

        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, Vector, TimeSpan.FromSeconds(2)), $"vector {Vector:X2} of the edge-triggered GSI 5 never reached the local APIC's IRR");
        Assert.Equal(KvmVcpuStopReason.Paused, guest.Vcpu.Run(guest.Bus));
        Assert.Single(device.Accesses);
    }

    [Fact]
    public void Create_LevelTriggeredWithResample_HasAResampleFd_AndSignallingRaisesTheLine()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        if (guest.Vm.CheckExtension(KvmCapability.IrqFdResample) == 0)
        {
            Assert.Skip("KVM_CAP_IRQFD_RESAMPLE is not reported");
        }

        const byte Vector = 0x32;
        byte apicId = LocalApic.EnableAndReadId(guest.Vcpu);
        IoApic.Redirect(guest.Vm, pin: 10, Vector, apicId, levelTriggered: true);
        using KvmIrqFdNotifier irq = KvmIrqFdNotifier.Create(guest.Vm, gsi: 10, levelTriggered: true);

        Assert.NotNull(irq.ResampleFd);
        Assert.False(LocalApic.IsRequested(guest.Vcpu, Vector), "the vector was requested before the irqfd was signalled");
        irq.EventFd.Signal();
        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, Vector, TimeSpan.FromSeconds(2)), $"vector {Vector:X2} of the level-triggered GSI 10 never reached the local APIC's IRR");
    }

    [Fact]
    public void WatchResample_RaisesTheLineAgainOnlyWhileTheDeviceHasAnInterruptPending()
    {
        // KVM signals the resample fd at the guest's end of interrupt; here the test signals it, as
        // the fd is an ordinary eventfd. (The boot test Boot_IrqLevel_* drives it from a real EOI.)
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        if (guest.Vm.CheckExtension(KvmCapability.IrqFdResample) == 0)
        {
            Assert.Skip("KVM_CAP_IRQFD_RESAMPLE is not reported");
        }

        using var ioThread = new IoThread("resample-test");
        ioThread.Start();
        using KvmIrqFdNotifier irq = KvmIrqFdNotifier.Create(guest.Vm, gsi: 10, levelTriggered: true);
        int pending = 1;
        int asked = 0;
        using (irq.WatchResample(ioThread, () =>
        {
            Interlocked.Increment(ref asked);
            return Volatile.Read(ref pending) != 0;
        }))
        {
            irq.ResampleFd!.Signal();
            Assert.True(SpinWait.SpinUntil(() => irq.Reassertions == 1, TimeSpan.FromSeconds(10)), "the line was not raised again");

            Volatile.Write(ref pending, 0);
            irq.ResampleFd.Signal();
            Assert.True(SpinWait.SpinUntil(() => Volatile.Read(ref asked) == 2, TimeSpan.FromSeconds(10)), "the second end of interrupt was not seen");
            Assert.Equal(1, irq.Reassertions);
        }

        // Watch stopped: a later resample is left alone.
        irq.ResampleFd.Signal();
        Thread.Sleep(50);
        Assert.Equal(2, Volatile.Read(ref asked));
        ioThread.Stop();
    }

    [Fact]
    public void WatchResample_OnAnEdgeTriggeredLine_Throws()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        using var ioThread = new IoThread("resample-test");
        using KvmIrqFdNotifier irq = KvmIrqFdNotifier.Create(guest.Vm, gsi: 5);

        Assert.Throws<InvalidOperationException>(() => irq.WatchResample(ioThread, () => true));
    }

    [Fact]
    public void Create_WithoutIrqChip_ThrowsKvmExceptionWithErrno()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();

        KvmException e = Assert.Throws<KvmException>(() => KvmIrqFdNotifier.Create(vm, gsi: 5));

        Assert.NotEqual(0, e.Errno);
        Assert.Contains("KVM_IRQFD", e.Message, System.StringComparison.Ordinal);
    }
}
