using System;
using System.IO;
using Virtio.Core.Memory;
using Virtio.Kvm.Bus;
using Xunit;

namespace Virtio.Kvm.Tests;

/// <summary>
/// A VM with 64 KiB of memory at 0, one vCPU in real mode at 0000:1000 with DS = 0xD000 (so DS:0x50
/// is guest physical 0xD0050, outside memory: an MMIO address), and hand-assembled code there.
/// Skips the test when /dev/kvm is absent or unusable.
/// </summary>
internal sealed class RealModeGuest : IDisposable
{
    public const ulong CodeAddress = 0x1000;
    public const ulong DataSegmentBase = 0xD0000;

    private RealModeGuest(KvmSystem kvm, KvmVm vm, GuestMemory memory, KvmVcpu vcpu)
    {
        Kvm = kvm;
        Vm = vm;
        Memory = memory;
        Vcpu = vcpu;
    }

    public KvmSystem Kvm { get; }

    public KvmVm Vm { get; }

    public GuestMemory Memory { get; }

    public KvmVcpu Vcpu { get; }

    public KvmBus Bus { get; } = new();

    /// <summary>Opens /dev/kvm and builds the VM, or skips the calling test.</summary>
    /// <param name="code">The guest code, loaded at 0x1000.</param>
    /// <param name="irqChip">Create the in-kernel irqchip (HLT then no longer exits).</param>
    /// <param name="memory">Guest memory to take over (it must cover 0x1000 and leave 0xD0000 unmapped); 64 KiB at 0 when null.</param>
    public static RealModeGuest Create(ReadOnlySpan<byte> code, bool irqChip = false, GuestMemory? memory = null)
    {
        KvmSystem kvm;
        try
        {
            kvm = OpenOrSkip();
        }
        catch
        {
            memory?.Dispose();
            throw;
        }

        KvmVm? vm = null;
        try
        {
            vm = kvm.CreateVm();
            memory ??= GuestMemory.CreateAnonymous(0x10000);
            vm.MapMemory(memory);
            if (irqChip)
            {
                vm.CreateIrqChip();
            }

            KvmVcpu vcpu = vm.CreateVcpu(0);
            var guest = new RealModeGuest(kvm, vm, memory, vcpu);
            guest.Load(code);
            return guest;
        }
        catch
        {
            vm?.Dispose();
            memory?.Dispose();
            kvm.Dispose();
            throw;
        }
    }

    /// <summary>Opens /dev/kvm (or $VIRTIO_KVM_DEVICE, to check the skip path) or skips the calling test.</summary>
    public static KvmSystem OpenOrSkip()
    {
        try
        {
            return KvmSystem.Open(Environment.GetEnvironmentVariable("VIRTIO_KVM_DEVICE") ?? KvmSystem.DefaultPath);
        }
        catch (KvmException e)
        {
            Assert.Skip($"needs /dev/kvm: {e.Message}");
            throw;
        }
        catch (IOException e)
        {
            Assert.Skip($"needs /dev/kvm: {e.Message}");
            throw;
        }
    }

    /// <summary>Writes <paramref name="code"/> at 0x1000 and points the vCPU at it in real mode.</summary>
    public void Load(ReadOnlySpan<byte> code)
    {
        Assert.True(Memory.TryGetSpan(new GuestAddress(CodeAddress), code.Length, out Span<byte> target));
        code.CopyTo(target);
        Restart();
    }

    /// <summary>Points the vCPU back at the start of the code.</summary>
    public void Restart()
    {
        KvmSpecialRegisters sregs = Vcpu.GetSpecialRegisters();
        sregs.Cs = KvmSegment.RealMode(0, code: true);
        sregs.Ds = KvmSegment.RealMode((ushort)(DataSegmentBase >> 4));
        sregs.Es = KvmSegment.RealMode(0);
        sregs.Fs = KvmSegment.RealMode(0);
        sregs.Gs = KvmSegment.RealMode(0);
        sregs.Ss = KvmSegment.RealMode(0);
        sregs.Cr0 &= ~1UL; // real mode
        Vcpu.SetSpecialRegisters(sregs);
        Vcpu.SetRegisters(new KvmRegisters { Rip = CodeAddress, Rflags = 0x2, Rsp = 0x8000 });
    }

    public void Dispose()
    {
        Vcpu.Dispose();
        Vm.Dispose();
        Memory.Dispose();
        Kvm.Dispose();
    }
}
