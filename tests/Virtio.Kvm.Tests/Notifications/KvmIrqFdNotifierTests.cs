using Virtio.Core.Notifications;
using Virtio.Kvm.Notifications;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

public sealed class KvmIrqFdNotifierTests
{
    [Fact]
    public void Create_EdgeTriggered_RegistersAndSignallingLeavesTheVmRunnable()
    {
        // With the in-kernel irqchip HLT no longer exits, so the guest pauses itself through its bus
        // handler after one MMIO write, with interrupts disabled (IF = 0) so the line stays pending.
        using RealModeGuest guest = RealModeGuest.Create(
            GuestCode.Concat(GuestCode.StoreEaxToDoorbell, GuestCode.Spin), irqChip: true);
        var device = new RecordingIoHandler();
        device.OnWrite = guest.Vcpu.RequestPause;
        guest.Bus.Add(KvmIoSpace.Mmio, RealModeGuest.DataSegmentBase, 0x200, device);

        using (KvmIrqFdNotifier irq = KvmIrqFdNotifier.Create(guest.Vm, gsi: 5))
        {
            Assert.Equal(5u, irq.Gsi);
            Assert.Null(irq.ResampleFd);
            irq.Notify(InterruptReason.UsedBuffer, 0);
            irq.Notify(InterruptReason.ConfigurationChange, 0);

            Assert.Equal(KvmVcpuStopReason.Paused, guest.Vcpu.Run(guest.Bus));
            Assert.Single(device.Accesses);
        }

        // Deassigned: the same GSI can take a new irqfd.
        using KvmIrqFdNotifier again = KvmIrqFdNotifier.Create(guest.Vm, gsi: 5);
        again.Notify(InterruptReason.UsedBuffer, 0);
    }

    [Fact]
    public void Create_LevelTriggeredWithResample_RegistersAndDeassigns()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        if (guest.Vm.CheckExtension(KvmCapability.IrqFdResample) == 0)
        {
            Assert.Skip("KVM_CAP_IRQFD_RESAMPLE is not reported");
        }

        using KvmIrqFdNotifier irq = KvmIrqFdNotifier.Create(guest.Vm, gsi: 10, levelTriggered: true);

        Assert.NotNull(irq.ResampleFd);
        irq.EventFd.Signal();
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
