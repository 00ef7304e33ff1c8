using System;
using System.Buffers.Binary;
using Virtio.Kvm.Interop;

namespace Virtio.Kvm.Tests;

/// <summary>The in-kernel IOAPIC seen through KVM_GET_IRQCHIP / KVM_SET_IRQCHIP (chip 2, struct kvm_ioapic_state).</summary>
internal static class IoApic
{
    private const uint ChipId = 2;

    // kvm_irqchip: chip_id, pad, then kvm_ioapic_state, whose redirtbl[24] starts at its offset 24.
    private const int RedirectionTable = 8 + 24;

    /// <summary>
    /// Programs <paramref name="pin"/>'s redirection entry (masked after reset) to deliver
    /// <paramref name="vector"/>, fixed, edge or level, to APIC <paramref name="apicId"/> in physical mode.
    /// </summary>
    public static void Redirect(KvmVm vm, uint pin, byte vector, byte apicId, bool levelTriggered = false)
    {
        byte[] state = new byte[KvmIoctl.IrqChipStateSize];
        BinaryPrimitives.WriteUInt32LittleEndian(state, ChipId);
        vm.GetIrqChip(state);
        BinaryPrimitives.WriteUInt64LittleEndian(state.AsSpan(RedirectionTable + (8 * (int)pin), 8), vector | (levelTriggered ? 1UL << 15 : 0) | ((ulong)apicId << 56));
        vm.SetIrqChip(state);
    }
}
