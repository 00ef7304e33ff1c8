using System;
using System.Diagnostics;
using System.Globalization;
using Virtio.Core.Memory;
using Virtio.Core.Notifications;
using Virtio.Kvm;
using Virtio.Kvm.Bus;
using Virtio.Kvm.Notifications;

namespace Virtio.Vmm.Bench;

/// <summary>
/// The doorbell experiment of the ioeventfd commit (seed 003) on this machine's KVM: a real-mode guest
/// rings a doorbell N times in a LOOP, and we time the whole run. Rows: the empty loop (the cost of the
/// guest's own instructions, emulated here), an MMIO write that exits to user space, the same write
/// caught by an ioeventfd, and the same pair for a PIO OUT. Prints microseconds per notify; asserts nothing.
/// Run it as <c>virtio-vmm bench doorbell [--count N]</c>.
/// </summary>
internal static class DoorbellMeasurement
{
    private const ulong CodeAddress = 0x1000;
    private const ulong DoorbellBase = 0xD0000; // DS = 0xD000: DS:0x50 is QueueNotify of a device at 0xD0000
    private const ushort Port = 0x6000;

    public static void Run(int iterations)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Doorbell: {iterations} notifies per row, real-mode guest, vCPU time per notify"));
        Console.WriteLine("| path                           | us/notify | minus empty loop |");
        Console.WriteLine("|--------------------------------|-----------|------------------|");
        double empty = Measure("empty loop (no I/O)", iterations, Loop([]), KvmIoSpace.Mmio, ioeventfd: false, baseline: 0);
        Measure("MMIO write, exit to user space", iterations, Loop([0x66, 0xA3, 0x50, 0x00]), KvmIoSpace.Mmio, ioeventfd: false, empty);
        Measure("MMIO write, ioeventfd", iterations, Loop([0x66, 0xA3, 0x50, 0x00]), KvmIoSpace.Mmio, ioeventfd: true, empty);
        Measure("PIO out, exit to user space", iterations, Loop([0xEF]), KvmIoSpace.Pio, ioeventfd: false, empty);
        Measure("PIO out, ioeventfd", iterations, Loop([0xEF]), KvmIoSpace.Pio, ioeventfd: true, empty);
    }

    /// <summary>mov eax, 0 (queue 0); mov dx, Port; mov ecx, N; body; loop (ECX); hlt.</summary>
    private static byte[] Loop(byte[] body)
    {
        byte[] prologue = [0x66, 0xB8, 0, 0, 0, 0, 0xBA, unchecked((byte)Port), (byte)(Port >> 8), 0x66, 0xB9, 0, 0, 0, 0];
        byte[] code = new byte[prologue.Length + body.Length + 4];
        prologue.CopyTo(code, 0);
        body.CopyTo(code, prologue.Length);
        int at = prologue.Length + body.Length;
        code[at] = 0x67; // address size: LOOP counts in ECX
        code[at + 1] = 0xE2;
        code[at + 2] = unchecked((byte)(sbyte)-(body.Length + 3));
        code[at + 3] = 0xF4;
        return code;
    }

    private static double Measure(string name, int iterations, byte[] code, KvmIoSpace space, bool ioeventfd, double baseline)
    {
        BitConverter.TryWriteBytes(code.AsSpan(11, 4), (uint)iterations);
        using KvmSystem kvm = KvmSystem.Open();
        using KvmVm vm = kvm.CreateVm();
        using GuestMemory memory = GuestMemory.CreateAnonymous(0x10000);
        vm.MapMemory(memory);
        using KvmVcpu vcpu = vm.CreateVcpu(0);
        if (!memory.TryGetSpan(new GuestAddress(CodeAddress), code.Length, out Span<byte> target))
        {
            throw new InvalidOperationException("code does not fit");
        }

        code.CopyTo(target);
        KvmSpecialRegisters sregs = vcpu.GetSpecialRegisters();
        sregs.Cs = KvmSegment.RealMode(0, code: true);
        sregs.Ds = KvmSegment.RealMode((ushort)(DoorbellBase >> 4));
        sregs.Es = sregs.Fs = sregs.Gs = sregs.Ss = KvmSegment.RealMode(0);
        vcpu.SetSpecialRegisters(sregs);
        vcpu.SetRegisters(new KvmRegisters { Rip = CodeAddress, Rflags = 2, Rsp = 0x8000 });

        var bus = new KvmBus();
        var sink = new NullIoHandler();
        bus.Add(KvmIoSpace.Mmio, DoorbellBase, 0x200, sink);
        bus.Add(KvmIoSpace.Pio, Port, 4, sink);
        using EventFd kick = EventFd.Create();
        KvmIoEventFdBinding? binding = null;
        if (ioeventfd)
        {
            binding = space == KvmIoSpace.Mmio
                ? KvmIoEventFdBinding.ForVirtioMmio(vm, DoorbellBase)
                : new KvmIoEventFdBinding(vm, KvmIoSpace.Pio, Port, width: 2);
            if (!binding.TryAssign(0, kick, out string? refusal))
            {
                throw new InvalidOperationException(refusal);
            }
        }

        var stopwatch = Stopwatch.StartNew();
        KvmVcpuStopReason reason = vcpu.Run(bus);
        stopwatch.Stop();
        binding?.Deassign(0, kick);
        kick.TryConsume(out ulong kicks);

        long exits = vcpu.MmioExits + vcpu.PioExits;
        double us = stopwatch.Elapsed.TotalMicroseconds / iterations;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name,-30} | {us,9:F2} | {(baseline == 0 ? "-" : (us - baseline).ToString("F2", CultureInfo.InvariantCulture)),16} |  ({reason}, {exits} exits, {kicks} eventfd signals)"));
        return us;
    }

    private sealed class NullIoHandler : IKvmIoHandler
    {
        public void Read(ulong offset, Span<byte> data) => data.Clear();

        public void Write(ulong offset, ReadOnlySpan<byte> data)
        {
        }
    }
}
