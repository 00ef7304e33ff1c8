using System;
using System.Linq;
using Microsoft.Extensions.Logging;
using Virtio.Core.Threading;
using Virtio.Core.Transport.Pci;
using Virtio.Kvm.Notifications;
using Virtio.Testing;
using Xunit;

namespace Virtio.Kvm.Tests.Notifications;

/// <summary>
/// MSI-X vectors on real KVM: the guest's message, routed on the vector's GSI, reaches the local APIC
/// through the irqfd. The vCPU is never run, so what KVM delivers stays in the IRR; every negative check
/// raises a routed sentinel vector afterwards and waits for it (an irqfd with an MSI route is delivered
/// during the eventfd write), instead of sleeping.
/// </summary>
public sealed class KvmMsiXVectorsTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    [Fact]
    public void Raise_AfterTheGuestUnmasksTheVector_DeliversItsProgrammedVectorToTheLocalApic()
    {
        using Setup s = Setup.Create(vectors: 2);

        s.Vectors.Configure(1, s.Message(0x40), masked: false);
        Assert.False(LocalApic.IsRequested(s.Guest.Vcpu, 0x40), "the vector was requested before it was raised");
        s.Vectors.Raise(1);

        Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, 0x40, Timeout), "vector 0x40 never reached the local APIC's IRR");
        Assert.Equal(1, s.Vectors.Delivered(1));
        Assert.Equal(0, s.Vectors.Delivered(0));
        Assert.Equal(0, s.Vectors.DroppedRaises);
    }

    [Fact]
    public void Configure_TheGuestReprogramsTheEntry_RaiseDeliversTheNewVector_AndNothingIsInstalledWhileMasked()
    {
        using Setup s = Setup.Create(vectors: 1);
        s.Vectors.Configure(0, s.Message(0x41), masked: false);
        s.Vectors.Raise(0);
        Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, 0x41, Timeout), "vector 0x41 never arrived");
        s.Guest.Vcpu.SetLocalApic(s.CleanApic);
        int installs = s.Routing.Installs;

        // As a driver reprograms an entry: mask, write the data (a half-written entry), then unmask.
        s.Vectors.Configure(0, s.Message(0x41), masked: true);
        s.Vectors.Configure(0, new MsiMessage(0, 0x42), masked: true);
        s.Vectors.Configure(0, s.Message(0x42), masked: true);
        Assert.Equal(installs, s.Routing.Installs);
        s.Vectors.Configure(0, s.Message(0x42), masked: false);
        Assert.Equal(installs + 1, s.Routing.Installs);
        s.Vectors.Raise(0);

        Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, 0x42, Timeout), "the reprogrammed vector 0x42 never arrived");
        Assert.False(LocalApic.IsRequested(s.Guest.Vcpu, 0x41), "the old vector 0x41 was delivered after the reprogram");
        Assert.Equal(0, s.Vectors.RefusedMessages);

        // Unmasking an unchanged entry costs no install.
        s.Vectors.Configure(0, s.Message(0x42), masked: true);
        s.Vectors.Configure(0, s.Message(0x42), masked: false);
        Assert.Equal(installs + 1, s.Routing.Installs);
    }

    [Fact]
    public void Raise_SeveralVectorsAtOnce_EachDeliversItsOwnVector_AndIsCounted()
    {
        using Setup s = Setup.Create(vectors: 4);
        for (ushort v = 0; v < 4; v++)
        {
            s.Vectors.Configure(v, s.Message((byte)(0x50 + v)), masked: false);
        }

        Assert.Equal(4, s.Enumerable(v => s.Vectors.GsiOf(v)).Distinct().Count());

        // One deferred-call section, as a device's completion burst: every vector's write at its end.
        DeferredCalls.Begin();
        s.Vectors.Raise(0);
        s.Vectors.Raise(2);
        s.Vectors.Raise(2);
        s.Vectors.Raise(3);
        s.Vectors.Raise(1);
        DeferredCalls.End();

        for (byte v = 0; v < 4; v++)
        {
            Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, (byte)(0x50 + v), Timeout), $"vector 0x{0x50 + v:x2} never arrived");
        }

        Assert.Equal([1L, 1L, 2L, 1L], s.Enumerable(v => s.Vectors.Delivered(v)));
    }

    [Theory]
    [InlineData(0xFED0_0000UL, 0x43u)] // the IOAPIC's page, not the interrupt window
    [InlineData(0x1000UL, 0x43u)] // guest RAM: a DMA write
    [InlineData(0x1_FEE0_0000UL, 0x43u)] // upper address dword set
    [InlineData(0xFEE0_0000UL, 0x343u)] // reserved delivery mode 3
    public void Configure_AHostileMessage_IsNotInstalled_StopsTheVector_AndIsLoggedOnce(ulong address, uint data)
    {
        var logger = new CapturingLogger();
        using Setup s = Setup.Create(vectors: 2, logger);
        s.Vectors.Configure(1, s.Message(0x60), masked: false);
        s.Vectors.Configure(0, s.Message(0x44), masked: false);
        uint gsi = s.Vectors.GsiOf(0);

        s.Vectors.Configure(0, new MsiMessage(address, data), masked: false);
        s.Vectors.Configure(0, new MsiMessage(address, data), masked: false);
        s.Vectors.Raise(0);
        s.Vectors.Raise(1);

        Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, 0x60, Timeout), "the sentinel vector never arrived");
        Assert.False(LocalApic.IsRequested(s.Guest.Vcpu, 0x44), "the vector's old message was delivered after a hostile reprogram");
        Assert.False(LocalApic.IsRequested(s.Guest.Vcpu, 0x43), "the hostile message was delivered");
        Assert.DoesNotContain(s.Routing.GetRoutes(), r => r.Gsi == gsi);
        Assert.Equal(2, s.Vectors.RefusedMessages);
        Assert.Equal(1, s.Vectors.DroppedRaises);
        Assert.Equal(0, s.Vectors.Delivered(0));
        Assert.Single(logger.Entries, e => e.EventId.Id == 5001 && e.Level == LogLevel.Warning);

        // A valid message brings the vector back.
        s.Vectors.Configure(0, s.Message(0x45), masked: false);
        s.Vectors.Raise(0);
        Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, 0x45, Timeout), "the vector did not come back with a valid message");
    }

    [Fact]
    public void RaiseAndConfigure_AVectorPastTheTable_OrNeverConfigured_AreDroppedWithoutThrowing()
    {
        var logger = new CapturingLogger();
        using Setup s = Setup.Create(vectors: 2, logger);
        s.Vectors.Configure(1, s.Message(0x61), masked: false);

        s.Vectors.Configure(2, s.Message(0x46), masked: false);
        s.Vectors.Configure(0xFFFF, s.Message(0x46), masked: false);
        s.Vectors.Raise(2);
        s.Vectors.Raise(0); // never configured: no route yet
        s.Vectors.Raise(1);

        Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, 0x61, Timeout), "the sentinel vector never arrived");
        Assert.False(LocalApic.IsRequested(s.Guest.Vcpu, 0x46));
        Assert.Equal(2, s.Vectors.DroppedRaises);
        Assert.Single(logger.Entries, e => e.EventId.Id == 5003);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Vectors.Delivered(2));
    }

    [Fact]
    public void Dispose_DeassignsTheIrqFdsAndRemovesTheRoutes_AndTheGsisCanBeHandedOutAgain()
    {
        using Setup s = Setup.Create(vectors: 2);
        s.Vectors.Configure(0, s.Message(0x47), masked: false);
        s.Vectors.Configure(1, s.Message(0x48), masked: false);
        uint[] gsis = s.Enumerable(v => s.Vectors.GsiOf(v));

        s.Vectors.Dispose();
        s.Vectors.Raise(0);

        Assert.Equal(KvmIrqRoute.StandardIrqChipRoutes(), s.Routing.GetRoutes());
        Assert.Equal(1, s.Vectors.DroppedRaises);
        Assert.False(LocalApic.IsRequested(s.Guest.Vcpu, 0x47));

        // The same GSIs are free, and a new irqfd on them registers (the old ones were deassigned).
        using var again = new KvmMsiXVectors(s.Routing, 2);
        Assert.Equal(gsis, s.Enumerable(v => again.GsiOf(v)));
        again.Configure(1, s.Message(0x49), masked: false);
        again.Raise(1);
        Assert.True(LocalApic.WaitUntilRequested(s.Guest.Vcpu, 0x49, Timeout), "a vector on a reused GSI never arrived");
    }

    [Fact]
    public void Constructor_MoreVectorsThanTheRoutingTableHasRoom_ThrowsAndGivesItsGsisBack()
    {
        using RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
        var routing = new KvmGsiRouting(guest.Vm, KvmIrqRoute.StandardIrqChipRoutes());
        using var first = new KvmMsiXVectors(routing, KvmMsiXVectors.MaxVectors);

        Assert.Throws<InvalidOperationException>(() => new KvmMsiXVectors(routing, KvmMsiXVectors.MaxVectors));

        // 4096 - 40 fixed - 2048 = 2008 GSIs are still free.
        using var rest = new KvmMsiXVectors(routing, KvmVm.MaxGsiRoutes - 40 - KvmMsiXVectors.MaxVectors);
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvmMsiXVectors(routing, 0));
    }

    private sealed class Setup : IDisposable
    {
        private Setup(RealModeGuest guest, byte apicId, KvmGsiRouting routing, KvmMsiXVectors vectors)
        {
            Guest = guest;
            ApicId = apicId;
            Routing = routing;
            Vectors = vectors;
            CleanApic = new byte[Interop.KvmIoctl.LapicStateSize];
            guest.Vcpu.GetLocalApic(CleanApic);
        }

        public RealModeGuest Guest { get; }

        public byte ApicId { get; }

        public KvmGsiRouting Routing { get; }

        public KvmMsiXVectors Vectors { get; }

        /// <summary>The enabled local APIC with nothing requested, to put back between steps.</summary>
        public byte[] CleanApic { get; }

        public static Setup Create(int vectors, ILogger? logger = null)
        {
            RealModeGuest guest = RealModeGuest.Create(GuestCode.Hlt, irqChip: true);
            try
            {
                byte apicId = LocalApic.EnableAndReadId(guest.Vcpu);
                var routing = new KvmGsiRouting(guest.Vm, KvmIrqRoute.StandardIrqChipRoutes());
                return new Setup(guest, apicId, routing, new KvmMsiXVectors(routing, vectors, logger));
            }
            catch
            {
                guest.Dispose();
                throw;
            }
        }

        /// <summary>Fixed, edge, physical delivery of <paramref name="vector"/> to the vCPU's APIC.</summary>
        public MsiMessage Message(byte vector) => new(LocalApic.MsiAddress(ApicId), vector);

        public T[] Enumerable<T>(Func<ushort, T> of)
        {
            var values = new T[Vectors.Count];
            for (ushort v = 0; v < values.Length; v++)
            {
                values[v] = of(v);
            }

            return values;
        }

        public void Dispose()
        {
            Vectors.Dispose();
            Guest.Dispose();
        }
    }
}
