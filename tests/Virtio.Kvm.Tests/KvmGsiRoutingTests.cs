using System;
using System.Collections.Generic;
using Virtio.Core.Notifications;
using Virtio.Kvm.Notifications;
using Xunit;

namespace Virtio.Kvm.Tests;

/// <summary>The routing-table owner on real KVM (in-kernel irqchip; the vCPU is never run, so what KVM delivers stays in the local APIC's IRR).</summary>
public sealed class KvmGsiRoutingTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    [Fact]
    public void MsiRoutesAddedChangedAndRemoved_KeepTheIoApicRoutes()
    {
        const byte PinVector = 0x31;
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        byte apicId = LocalApic.EnableAndReadId(guest.Vcpu);
        IoApic.Redirect(guest.Vm, pin: 9, PinVector, apicId);
        var routing = new KvmGsiRouting(guest.Vm, KvmIrqRoute.StandardIrqChipRoutes());
        uint a = routing.AllocateMsiGsi();
        uint b = routing.AllocateMsiGsi();

        routing.SetMsiRoute(a, LocalApic.MsiAddress(apicId), 0x50);
        routing.SetMsiRoute(b, LocalApic.MsiAddress(apicId), 0x51);
        routing.SetMsiRoute(a, LocalApic.MsiAddress(apicId), 0x52);
        routing.RemoveMsiRoute(b);

        // Five installs (the constructor's and four changes) later, GSI 9 still reaches IOAPIC pin 9.
        Assert.Equal(5, routing.Installs);
        using KvmIrqFdNotifier pin = KvmIrqFdNotifier.Create(guest.Vm, gsi: 9);
        pin.Notify(InterruptReason.UsedBuffer, 0);
        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, PinVector, Timeout), "IOAPIC pin 9 lost its route when the MSI routes changed");

        // And the MSI route left in the table delivers its latest vector.
        using KvmIrqFdNotifier msi = KvmIrqFdNotifier.Create(guest.Vm, a);
        msi.Notify(InterruptReason.UsedBuffer, 0);
        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, 0x52, Timeout), "the changed MSI route did not deliver its vector");
        Assert.False(LocalApic.IsRequested(guest.Vcpu, 0x50), "the MSI route's old vector was delivered");

        var expected = new List<KvmIrqRoute>(KvmIrqRoute.StandardIrqChipRoutes()) { KvmIrqRoute.ToMsi(a, LocalApic.MsiAddress(apicId), 0x52) };
        Assert.Equal(expected, routing.GetRoutes());
    }

    [Fact]
    public void RemoveMsiRoute_AnIrqFdOnTheGsiDeliversNothing_UntilTheRouteIsSetAgain()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        byte apicId = LocalApic.EnableAndReadId(guest.Vcpu);
        var routing = new KvmGsiRouting(guest.Vm, KvmIrqRoute.StandardIrqChipRoutes());
        uint removed = routing.AllocateMsiGsi();
        uint sentinel = routing.AllocateMsiGsi();
        routing.SetMsiRoute(removed, LocalApic.MsiAddress(apicId), 0x53);
        routing.SetMsiRoute(sentinel, LocalApic.MsiAddress(apicId), 0x54);
        using KvmIrqFdNotifier irq = KvmIrqFdNotifier.Create(guest.Vm, removed);
        using KvmIrqFdNotifier last = KvmIrqFdNotifier.Create(guest.Vm, sentinel);

        routing.RemoveMsiRoute(removed);
        irq.Notify(InterruptReason.UsedBuffer, 0);
        last.Notify(InterruptReason.UsedBuffer, 0);

        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, 0x54, Timeout), "the sentinel vector never arrived");
        Assert.False(LocalApic.IsRequested(guest.Vcpu, 0x53), "a removed route still delivered");
        routing.SetMsiRoute(removed, LocalApic.MsiAddress(apicId), 0x55);
        irq.Notify(InterruptReason.UsedBuffer, 0);
        Assert.True(LocalApic.WaitUntilRequested(guest.Vcpu, 0x55, Timeout), "the route set again did not deliver");
    }

    [Fact]
    public void SetMsiRoute_Unchanged_DoesNotInstallAgain()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        var routing = new KvmGsiRouting(guest.Vm, KvmIrqRoute.StandardIrqChipRoutes());
        uint gsi = routing.AllocateMsiGsi();
        Assert.Equal(1, routing.Installs);

        routing.SetMsiRoute(gsi, 0xFEE0_0000, 0x40);
        routing.SetMsiRoute(gsi, 0xFEE0_0000, 0x40);
        routing.RemoveMsiRoute(gsi);
        routing.RemoveMsiRoute(gsi);
        routing.ReleaseMsiGsis([gsi]);

        Assert.Equal(3, routing.Installs);
    }

    [Fact]
    public void ReleaseMsiGsis_RemovesTheirRoutesInOneInstall_AndFreesTheGsis()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        IReadOnlyList<KvmIrqRoute> standard = KvmIrqRoute.StandardIrqChipRoutes();
        var routing = new KvmGsiRouting(guest.Vm, standard);
        uint a = routing.AllocateMsiGsi();
        uint b = routing.AllocateMsiGsi();
        routing.SetMsiRoute(a, 0xFEE0_0000, 0x40);
        routing.SetMsiRoute(b, 0xFEE0_0000, 0x41);
        int before = routing.Installs;

        routing.ReleaseMsiGsis([a, b]);

        Assert.Equal(before + 1, routing.Installs);
        Assert.Equal(standard, routing.GetRoutes());
        Assert.Equal(a, routing.AllocateMsiGsi());
        Assert.Throws<InvalidOperationException>(() => routing.SetMsiRoute(b, 0xFEE0_0000, 0x41));
    }

    [Fact]
    public void AllocateMsiGsi_StartsPastTheFixedRoutes_TheEmbeddersFilteredTable()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        var fixedRoutes = new List<KvmIrqRoute>();
        foreach (KvmIrqRoute route in KvmIrqRoute.StandardIrqChipRoutes())
        {
            // As the sample VMM does: device GSIs 5 and 6 reach their IOAPIC pin only.
            if (route.Chip == KvmIrqChip.IoApic || route.Gsi is not (5 or 6))
            {
                fixedRoutes.Add(route);
            }
        }

        fixedRoutes.Add(KvmIrqRoute.ToIrqChip(30, KvmIrqChip.IoApic, 7));
        var routing = new KvmGsiRouting(guest.Vm, fixedRoutes);

        Assert.Equal(31u, routing.FirstMsiGsi);
        Assert.Equal(31u, routing.AllocateMsiGsi());
        Assert.Equal(fixedRoutes, routing.FixedRoutes);
    }

    [Fact]
    public void Constructor_WithoutIrqChip_ThrowsTheKernelsRefusal()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();

        Assert.Equal(22, Assert.Throws<KvmException>(() => new KvmGsiRouting(vm, KvmIrqRoute.StandardIrqChipRoutes())).Errno);
    }
}
