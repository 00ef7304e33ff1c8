namespace Virtio.Kvm.Interop;

/// <summary>
/// Request numbers and flags of the KVM UAPI (include/uapi/linux/kvm.h), checked against this
/// machine's headers with a C program that printed each macro (docs/kvm.md).
/// </summary>
internal static class KvmIoctl
{
    public const int GetApiVersion = 0xAE00;
    public const int CreateVm = 0xAE01;
    public const int CheckExtension = 0xAE03;
    public const int GetVcpuMmapSize = 0xAE04;
    public const int GetSupportedCpuid = unchecked((int)0xC008AE05);
    public const int CreateVcpu = 0xAE41;
    public const int SetUserMemoryRegion = 0x4020AE46;
    public const int SetTssAddr = 0xAE47;
    public const int CreateIrqChip = 0xAE60;
    public const int IrqLine = 0x4008AE61;
    public const int GetIrqChip = unchecked((int)0xC208AE62);
    public const int SetIrqChip = unchecked((int)0x8208AE63); // _IOR in the header, though the kernel reads it
    public const int SetGsiRouting = 0x4008AE6A;
    public const int IrqFd = 0x4020AE76;
    public const int IoEventFd = 0x4040AE79;
    public const int Run = 0xAE80;
    public const int GetRegs = unchecked((int)0x8090AE81);
    public const int SetRegs = 0x4090AE82;
    public const int GetSregs = unchecked((int)0x8138AE83);
    public const int SetSregs = 0x4138AE84;
    public const int GetLapic = unchecked((int)0x8400AE8E);
    public const int SetLapic = 0x4400AE8F;
    public const int SetCpuid2 = 0x4008AE90;
    public const int GetTscKhz = 0xAEA3;

    /// <summary>The API version every KVM since Linux 2.6.22 reports.</summary>
    public const int ExpectedApiVersion = 12;

    public const uint IoEventFdFlagDataMatch = 1;
    public const uint IoEventFdFlagPio = 2;
    public const uint IoEventFdFlagDeassign = 4;

    public const uint IrqFdFlagDeassign = 1;
    public const uint IrqFdFlagResample = 2;

    /// <summary>sizeof(struct kvm_lapic_state): the local APIC's register page up to offset 0x400.</summary>
    public const int LapicStateSize = 1024;

    /// <summary>sizeof(struct kvm_irqchip): chip_id, pad, then a 512-byte union (kvm_pic_state or kvm_ioapic_state).</summary>
    public const int IrqChipStateSize = 520;
}
