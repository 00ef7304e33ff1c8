using System;
using System.Buffers.Binary;
using Virtio.Core.Memory;
using Virtio.Kvm;

namespace Virtio.Vmm.Boot;

/// <summary>
/// Puts a vCPU straight into 64-bit long mode, as the boot contract says: a flat GDT, identity page
/// tables for the low 4 GiB with 2 MiB pages (all below 0x7000), paging and PAE on, EFER.LME/LMA,
/// interrupts off, RSP 0x80000 and RDI pointing at the boot info.
/// </summary>
internal static class LongModeSetup
{
    /// <summary>Where the GDT goes (three descriptors: null, 64-bit code, data).</summary>
    public const ulong GdtAddress = 0x500;

    /// <summary>The PML4; the PDPT follows at 0x2000 and the four page directories at 0x3000 to 0x6FFF.</summary>
    public const ulong Pml4Address = 0x1000;

    /// <summary>The initial stack pointer.</summary>
    public const ulong StackTop = 0x80000;

    private const ulong PdptAddress = 0x2000;
    private const ulong FirstPdAddress = 0x3000;
    private const ulong Present = 1, Writable = 2, LargePage = 0x80;
    private const ushort CodeSelector = 0x08, DataSelector = 0x10;

    private const ulong Cr0ProtectionEnable = 1, Cr0MonitorCoprocessor = 2, Cr0ExtensionType = 0x10, Cr0NumericError = 0x20;
    private const ulong Cr0WriteProtect = 0x10000, Cr0Paging = 0x80000000;
    private const ulong Cr4Pae = 0x20, Cr4OsFxsr = 0x200, Cr4OsXmmExcpt = 0x400;
    private const ulong EferLme = 0x100, EferLma = 0x400;

    /// <summary>Writes the GDT and page tables into <paramref name="memory"/> and sets the vCPU's registers.</summary>
    /// <param name="vcpu">The vCPU, not yet run.</param>
    /// <param name="memory">Guest RAM (at least 512 KiB at address 0).</param>
    /// <param name="entry">The 64-bit entry point.</param>
    /// <param name="bootInfo">The boot info's guest physical address, passed in RDI.</param>
    public static void Apply(KvmVcpu vcpu, GuestMemory memory, ulong entry, ulong bootInfo)
    {
        WritePageTables(memory);
        Span<byte> gdt = Span(memory, GdtAddress, 24);
        gdt.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[8..], 0x00AF9A000000FFFF);  // 64-bit code, DPL 0
        BinaryPrimitives.WriteUInt64LittleEndian(gdt[16..], 0x00CF92000000FFFF); // flat data, DPL 0

        KvmSpecialRegisters sregs = vcpu.GetSpecialRegisters();
        var code = new KvmSegment
        {
            Base = 0, Limit = 0xFFFFFFFF, Selector = CodeSelector, Type = 11, Present = 1, Dpl = 0, Db = 0, S = 1, L = 1, G = 1,
        };
        var data = new KvmSegment
        {
            Base = 0, Limit = 0xFFFFFFFF, Selector = DataSelector, Type = 3, Present = 1, Dpl = 0, Db = 1, S = 1, L = 0, G = 1,
        };
        sregs.Cs = code;
        sregs.Ds = sregs.Es = sregs.Fs = sregs.Gs = sregs.Ss = data;
        sregs.Gdt = new KvmDescriptorTable { Base = GdtAddress, Limit = 23 };
        sregs.Idt = new KvmDescriptorTable { Base = 0, Limit = 0 };
        sregs.Cr3 = Pml4Address;
        sregs.Cr4 = Cr4Pae | Cr4OsFxsr | Cr4OsXmmExcpt;
        sregs.Cr0 = Cr0ProtectionEnable | Cr0MonitorCoprocessor | Cr0ExtensionType | Cr0NumericError | Cr0WriteProtect | Cr0Paging;
        sregs.Efer = EferLme | EferLma;
        vcpu.SetSpecialRegisters(sregs);
        vcpu.SetRegisters(new KvmRegisters { Rip = entry, Rflags = 2, Rsp = StackTop, Rdi = bootInfo });
    }

    private static void WritePageTables(GuestMemory memory)
    {
        Span<byte> pml4 = Span(memory, Pml4Address, 4096);
        pml4.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(pml4, PdptAddress | Present | Writable);

        Span<byte> pdpt = Span(memory, PdptAddress, 4096);
        pdpt.Clear();
        for (int i = 0; i < 4; i++)
        {
            ulong pd = FirstPdAddress + ((ulong)i * 4096);
            BinaryPrimitives.WriteUInt64LittleEndian(pdpt[(i * 8)..], pd | Present | Writable);
            Span<byte> table = Span(memory, pd, 4096);
            for (int j = 0; j < 512; j++)
            {
                ulong physical = (((ulong)i * 512) + (ulong)j) << 21;
                BinaryPrimitives.WriteUInt64LittleEndian(table[(j * 8)..], physical | Present | Writable | LargePage);
            }
        }
    }

    private static Span<byte> Span(GuestMemory memory, ulong address, int length) =>
        memory.TryGetSpan(new GuestAddress(address), length, out Span<byte> span)
            ? span
            : throw new InvalidOperationException($"guest RAM does not cover 0x{address:x}+{length}");
}
