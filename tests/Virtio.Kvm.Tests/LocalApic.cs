using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Threading;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm.Tests;

/// <summary>
/// A vCPU's in-kernel local APIC seen through KVM_GET_LAPIC / KVM_SET_LAPIC (struct kvm_lapic_state:
/// the register page up to 0x400, each register at its xAPIC offset), to observe what was delivered.
/// </summary>
internal static class LocalApic
{
    private const int IdRegister = 0x20;
    private const int SpuriousVectorRegister = 0xF0;
    private const uint SoftwareEnable = 1u << 8;
    private const int InterruptRequestRegister = 0x200;

    /// <summary>The x86 MSI address of fixed, physical-mode delivery to <paramref name="apicId"/>.</summary>
    public static ulong MsiAddress(byte apicId) => 0xFEE0_0000UL | ((ulong)apicId << 12);

    /// <summary>
    /// Sets the APIC software-enable bit (SVR bit 8; a reset APIC is software-disabled and drops fixed
    /// interrupts) and returns the APIC id.
    /// </summary>
    public static byte EnableAndReadId(KvmVcpu vcpu)
    {
        byte[] state = Read(vcpu);
        Span<byte> svr = state.AsSpan(SpuriousVectorRegister, 4);
        BinaryPrimitives.WriteUInt32LittleEndian(svr, BinaryPrimitives.ReadUInt32LittleEndian(svr) | SoftwareEnable);
        vcpu.SetLocalApic(state);
        return (byte)(BinaryPrimitives.ReadUInt32LittleEndian(Read(vcpu).AsSpan(IdRegister, 4)) >> 24);
    }

    /// <summary>Whether <paramref name="vector"/>'s bit is set in the IRR (8 words of 32 bits, 16 bytes apart).</summary>
    public static bool IsRequested(KvmVcpu vcpu, byte vector)
    {
        uint word = BinaryPrimitives.ReadUInt32LittleEndian(Read(vcpu).AsSpan(InterruptRequestRegister + (16 * (vector / 32)), 4));
        return (word & (1u << (vector % 32))) != 0;
    }

    /// <summary>Polls the IRR until <paramref name="vector"/> is requested (an irqfd may deliver from a kernel worker) or <paramref name="timeout"/> passes.</summary>
    public static bool WaitUntilRequested(KvmVcpu vcpu, byte vector, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!IsRequested(vcpu, vector))
        {
            if (clock.Elapsed > timeout)
            {
                return false;
            }

            Thread.Sleep(1);
        }

        return true;
    }

    private static byte[] Read(KvmVcpu vcpu)
    {
        byte[] state = new byte[KvmIoctl.LapicStateSize];
        vcpu.GetLocalApic(state);
        return state;
    }
}
