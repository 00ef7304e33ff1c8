/* PCI configuration mechanism #1 and bus 0 enumeration. The address register at 0xCF8 takes one 32-bit write:
   enable bit 31, bus 23:16, device 15:11, function 10:8, register 7:2; the data window 0xCFC-0xCFF is then read
   or written with a 1-, 2- or 4-byte access at 0xCFC + (offset & 3). */
#include "pci.h"

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc

static void select(struct pci_address a, u32 offset)
{
    outl(PCI_CONFIG_ADDRESS, 0x80000000u | ((u32)a.bus << 16) | ((u32)(a.slot & 31) << 11) |
                                 ((u32)(a.function & 7) << 8) | (offset & 0xfc));
}

u8 pci_read8(struct pci_address a, u32 offset)
{
    select(a, offset);
    return inb((u16)(PCI_CONFIG_DATA + (offset & 3)));
}

u16 pci_read16(struct pci_address a, u32 offset)
{
    select(a, offset);
    return inw((u16)(PCI_CONFIG_DATA + (offset & 2)));
}

u32 pci_read32(struct pci_address a, u32 offset)
{
    select(a, offset);
    return inl(PCI_CONFIG_DATA);
}

void pci_write8(struct pci_address a, u32 offset, u8 v)
{
    select(a, offset);
    outb((u16)(PCI_CONFIG_DATA + (offset & 3)), v);
}

void pci_write16(struct pci_address a, u32 offset, u16 v)
{
    select(a, offset);
    outw((u16)(PCI_CONFIG_DATA + (offset & 2)), v);
}

void pci_write32(struct pci_address a, u32 offset, u32 v)
{
    select(a, offset);
    outl(PCI_CONFIG_DATA, v);
}

bool pci_bar(struct pci_address a, int i, u64 *address, u64 *size)
{
    if (i < 0 || i > 5)
        return false;
    u32 reg = PCI_BAR0 + 4u * (u32)i;
    u32 lo = pci_read32(a, reg);
    if (lo & 1) /* I/O space */
        return false;
    bool is64 = ((lo >> 1) & 3) == 2;
    if (is64 && i == 5)
        return false;
    /* The upper half of a 64-bit BAR is not a BAR of its own: walk up from BAR 0 to see whether i starts one. */
    for (int k = 0; k < i;) {
        u32 v = pci_read32(a, PCI_BAR0 + 4u * (u32)k);
        bool wide = !(v & 1) && ((v >> 1) & 3) == 2;
        if (wide && k + 1 == i)
            return false;
        k += wide ? 2 : 1;
    }
    u32 hi = is64 ? pci_read32(a, reg + 4) : 0;
    /* Sizing with memory decode off, so no access hits the BAR while it holds all ones. */
    u16 command = pci_read16(a, PCI_COMMAND);
    pci_write16(a, PCI_COMMAND, (u16)(command & ~PCI_COMMAND_MEMORY));
    pci_write32(a, reg, 0xffffffffu);
    u32 mask_lo = pci_read32(a, reg);
    pci_write32(a, reg, lo);
    u32 mask_hi = 0xffffffffu;
    if (is64) {
        pci_write32(a, reg + 4, 0xffffffffu);
        mask_hi = pci_read32(a, reg + 4);
        pci_write32(a, reg + 4, hi);
    }
    pci_write16(a, PCI_COMMAND, command);
    u64 mask = ((u64)mask_hi << 32) | (mask_lo & ~0xfu);
    if (!is64)
        mask |= 0xffffffff00000000ul;
    if ((mask_lo & ~0xfu) == 0 && (!is64 || mask_hi == 0))
        return false; /* not implemented */
    *size = ~mask + 1;
    *address = ((u64)hi << 32) | (lo & ~0xfu);
    return true;
}

bool pci_move_bar(struct pci_address a, int i, u64 delta)
{
    u64 address, size;
    if (!pci_bar(a, i, &address, &size) || address == 0)
        return false;
    u32 reg = PCI_BAR0 + 4u * (u32)i;
    u32 lo = pci_read32(a, reg);
    u64 moved = address + delta;
    u16 command = pci_read16(a, PCI_COMMAND);
    pci_write16(a, PCI_COMMAND, (u16)(command & ~PCI_COMMAND_MEMORY));
    pci_write32(a, reg, (u32)moved | (lo & 0xf));
    if (((lo >> 1) & 3) == 2)
        pci_write32(a, reg + 4, (u32)(moved >> 32));
    pci_write16(a, PCI_COMMAND, command);
    print("guest: pci 00:%02x.%u BAR %d moved from 0x%lx to 0x%lx\n", a.slot, a.function, i, address, moved);
    return true;
}

u32 pci_find_capability(struct pci_address a, u8 id, u32 from)
{
    if (!(pci_read16(a, PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    u32 pos = from ? pci_read8(a, from + 1) : pci_read8(a, PCI_CAPABILITY_LIST);
    for (int ttl = 48; ttl > 0; ttl--) {
        pos &= 0xfc;
        if (pos < 0x40)
            return 0;
        if (pci_read8(a, pos) == id)
            return pos;
        pos = pci_read8(a, pos + 1);
    }
    return 0;
}

u32 pci_enumerate(struct guest_device *out, u32 max)
{
    u32 found = 0;
    for (u8 slot = 0; slot < 32; slot++) {
        struct pci_address a = {0, slot, 0};
        if (pci_read16(a, PCI_VENDOR_ID) == 0xffff)
            continue;
        u8 functions = (pci_read8(a, PCI_HEADER_TYPE) & 0x80) ? 8 : 1;
        for (u8 f = 0; f < functions; f++) {
            a.function = f;
            u16 vendor = pci_read16(a, PCI_VENDOR_ID);
            if (vendor == 0xffff)
                continue;
            u16 device = pci_read16(a, PCI_DEVICE_ID);
            u32 class = pci_read32(a, PCI_REVISION_ID);
            print("guest: pci 00:%02x.%u vendor %04x device %04x class %06x rev %u\n", slot, f, vendor, device,
                  class >> 8, class & 0xff);
            /* Modern virtio-pci only (virtio 1.2 section 4.1.2): device ID 0x1040 + virtio device ID. */
            if (vendor != 0x1af4 || device < 0x1040 || device > 0x107f || found >= max)
                continue;
            out[found] = (struct guest_device){
                .device_id = (u32)(device - 0x1040),
                .gsi = pci_read8(a, PCI_INTERRUPT_LINE),
                .mmio_base = 0,
                .pci = true,
                .bus = 0,
                .slot = slot,
                .function = f,
            };
            found++;
        }
    }
    return found;
}
