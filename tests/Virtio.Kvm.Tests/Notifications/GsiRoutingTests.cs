using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using Virtio.Core.Notifications;
using Virtio.Kvm.Interop;
using Virtio.Kvm.Notifications;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

public sealed class GsiRoutingTests
{
    private const int EINVAL = 22;

    [Fact]
    public void RoutingEntry_Is48Bytes_WithItsUnionAt16()
    {
        Assert.Equal(48, Unsafe.SizeOf<KvmIrqRoutingEntry>());
        var entry = new KvmIrqRoutingEntry { Word0 = 0x11223344 };
        Assert.Equal(0x11223344u, Unsafe.ReadUnaligned<uint>(ref Unsafe.AddByteOffset(ref Unsafe.As<KvmIrqRoutingEntry, byte>(ref entry), 16)));
    }

    [Fact]
    public void StandardRoutes_AreThePicAndIoApicPinsKvmInstalls()
    {
        IReadOnlyList<KvmIrqRoute> routes = KvmIrqRoute.StandardIrqChipRoutes();

        Assert.Equal(40, routes.Count);
        Assert.Contains(KvmIrqRoute.ToIrqChip(3, KvmIrqChip.PicMaster, 3), routes);
        Assert.Contains(KvmIrqRoute.ToIrqChip(12, KvmIrqChip.PicSlave, 4), routes);
        Assert.Contains(KvmIrqRoute.ToIrqChip(12, KvmIrqChip.IoApic, 12), routes);
        Assert.Contains(KvmIrqRoute.ToIrqChip(23, KvmIrqChip.IoApic, 23), routes);
        Assert.DoesNotContain(routes, r => r.Gsi >= 16 && r.Chip != KvmIrqChip.IoApic);
    }

    [Fact]
    public void ToIrqChip_RefusesPinsTheControllerLacks_AndUnknownControllers()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => KvmIrqRoute.ToIrqChip(0, KvmIrqChip.IoApic, 24));
        Assert.Throws<ArgumentOutOfRangeException>(() => KvmIrqRoute.ToIrqChip(0, KvmIrqChip.PicSlave, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => KvmIrqRoute.ToIrqChip(0, (KvmIrqChip)3, 0));
    }

    [Fact]
    public void SetGsiRouting_StandardPlusAnMsiRoute_IsAccepted_AndAnIrqFdOnTheMsiGsiSignals()
    {
        const byte Vector = 0x30;
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        byte apicId = LocalApic.EnableAndReadId(guest.Vcpu);
        var routes = new List<KvmIrqRoute>(KvmIrqRoute.StandardIrqChipRoutes())
        {
            // Fixed delivery, edge, of the vector to the vCPU's APIC (physical destination mode).
            KvmIrqRoute.ToMsi(40, LocalApic.MsiAddress(apicId), Vector),
        };

        guest.Vm.SetGsiRouting(routes);
        using KvmIrqFdNotifier msi = KvmIrqFdNotifier.Create(guest.Vm, gsi: 40);

        Assert.False(LocalApic.IsRequested(guest.Vcpu, Vector), "the vector was requested before the irqfd was signalled");
        msi.Notify(InterruptReason.UsedBuffer, 0);
        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, Vector, TimeSpan.FromSeconds(2)), $"vector {Vector:X2} never reached the local APIC's IRR");
    }

    [Fact]
    public void SetGsiRouting_AnIrqChipRouteOfOurOwn_AnIrqFdOnItsGsiRaisesThatIoApicPin()
    {
        const byte Vector = 0x31;
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        byte apicId = LocalApic.EnableAndReadId(guest.Vcpu);
        IoApic.Redirect(guest.Vm, pin: 9, Vector, apicId);
        var routes = new List<KvmIrqRoute>(KvmIrqRoute.StandardIrqChipRoutes())
        {
            // GSI 41 is beyond the standard table: only this entry makes it raise IOAPIC pin 9.
            KvmIrqRoute.ToIrqChip(41, KvmIrqChip.IoApic, 9),
        };

        guest.Vm.SetGsiRouting(routes);
        using KvmIrqFdNotifier pin = KvmIrqFdNotifier.Create(guest.Vm, gsi: 41);

        Assert.False(LocalApic.IsRequested(guest.Vcpu, Vector), "the vector was requested before the irqfd was signalled");
        pin.Notify(InterruptReason.UsedBuffer, 0);
        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, Vector, TimeSpan.FromSeconds(2)), $"vector {Vector:X2} of IOAPIC pin 9 never reached the local APIC's IRR");
    }

    [Fact]
    public void SetGsiRouting_TwoMsiEntriesForOneGsi_IsRefusedByTheKernel()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);

        KvmException e = Assert.Throws<KvmException>(() => guest.Vm.SetGsiRouting(
            [KvmIrqRoute.ToMsi(40, 0xFEE0_0000, 0x30), KvmIrqRoute.ToMsi(40, 0xFEE0_0000, 0x31)]));

        Assert.Equal(EINVAL, e.Errno);
        Assert.Contains("KVM_SET_GSI_ROUTING", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SetGsiRouting_WithoutIrqChip_IsRefusedByTheKernel()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();

        KvmException e = Assert.Throws<KvmException>(() => vm.SetGsiRouting(KvmIrqRoute.StandardIrqChipRoutes()));

        Assert.Equal(EINVAL, e.Errno);
    }

    [Fact]
    public void SetGsiRouting_MoreThanKvmTakes_IsRefusedBeforeTheIoctl()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        var routes = new KvmIrqRoute[KvmVm.MaxGsiRoutes + 1];

        Assert.Throws<ArgumentException>(() => vm.SetGsiRouting(routes));
    }
}
