using Xunit;

namespace Virtio.Kvm.Tests;

public sealed class KvmSystemTests
{
    [Fact]
    public void Open_ReportsTheCapabilitiesTheBindingNeeds()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();

        Assert.True(kvm.VcpuMmapSize >= 4096);
        Assert.NotEqual(0, vm.CheckExtension(KvmCapability.UserMemory));
        Assert.NotEqual(0, vm.CheckExtension(KvmCapability.IoEventFd));
        Assert.NotEqual(0, vm.CheckExtension(KvmCapability.IrqFd));
        Assert.NotEqual(0, vm.CheckExtension(KvmCapability.ImmediateExit));
        Assert.True(kvm.CheckExtension(KvmCapability.NrMemSlots) > 1);
        var output = TestContext.Current.TestOutputHelper;
        foreach (KvmCapability cap in System.Enum.GetValues<KvmCapability>())
        {
            output?.WriteLine($"{cap}: system {kvm.CheckExtension(cap)}, vm {vm.CheckExtension(cap)}");
        }

        output?.WriteLine($"vcpu mmap size {kvm.VcpuMmapSize}");
    }

    [Fact]
    public void GetSupportedCpuid_HasTheBasicAndExtendedLeaves_AndSetCpuidTakesThem()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        using KvmVcpu vcpu = vm.CreateVcpu(0);

        KvmCpuidEntry[] entries = kvm.GetSupportedCpuid();

        Assert.Equal(40, System.Runtime.CompilerServices.Unsafe.SizeOf<KvmCpuidEntry>());
        Assert.Contains(entries, e => e.Function == 0 && e.Eax >= 1);
        // Leaf 0x80000001 EDX bit 29: long mode, which the sample VMM's 64-bit entry needs.
        Assert.Contains(entries, e => e.Function == 0x80000001 && (e.Edx & (1u << 29)) != 0);
        vcpu.SetCpuid(entries);
        TestContext.Current.TestOutputHelper?.WriteLine($"{entries.Length} CPUID entries; TSC {vcpu.GetTscKhz()} kHz");
    }

    [Fact]
    public void Open_MissingDevice_ThrowsKvmExceptionWithEnoent()
    {
        KvmException e = Assert.Throws<KvmException>(() => KvmSystem.Open("/dev/no-such-kvm"));

        Assert.Equal(2, e.Errno);
    }

    [Fact]
    public void MapMemory_SlotTwice_Throws()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        using var memory = Virtio.Core.Memory.GuestMemory.CreateAnonymous(0x10000);

        Assert.Equal(1, vm.MapMemory(memory));
        Assert.Throws<System.InvalidOperationException>(() => vm.MapMemory(memory));
    }

    [Fact]
    public void CreateIrqChip_Twice_ThrowsKvmException()
    {
        using KvmSystem kvm = RealModeGuest.OpenOrSkip();
        using KvmVm vm = kvm.CreateVm();
        vm.CreateIrqChip();

        Assert.True(vm.HasIrqChip);
        Assert.NotEqual(0, Assert.Throws<KvmException>(vm.CreateIrqChip).Errno);
    }
}
