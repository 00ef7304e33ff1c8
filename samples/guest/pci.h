/* PCI configuration mechanism #1 (ports 0xCF8/0xCFC), bus 0 enumeration and memory BARs: what the virtio-pci
   driver (virtio_pci.c) needs of the PCI Local Bus spec 3.0 (type-0 header, capability list, BARs). */
#pragma once
#include "guest.h"

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_REVISION_ID 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_CAPABILITY_LIST 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN 0x3d

#define PCI_COMMAND_MEMORY (1u << 1)
#define PCI_COMMAND_MASTER (1u << 2)
#define PCI_COMMAND_INTX_DISABLE (1u << 10)
#define PCI_STATUS_CAP_LIST (1u << 4)

#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_VNDR 0x09

struct pci_address {
    u8 bus, slot, function;
};

u8 pci_read8(struct pci_address a, u32 offset);
u16 pci_read16(struct pci_address a, u32 offset);
u32 pci_read32(struct pci_address a, u32 offset);
void pci_write8(struct pci_address a, u32 offset, u8 v);
void pci_write16(struct pci_address a, u32 offset, u16 v);
void pci_write32(struct pci_address a, u32 offset, u32 v);

/* Memory BAR i: its address (64-bit BARs joined with the next register) and size (found as a BIOS or Linux's
   __pci_read_base does: decode off, all ones written, read back, the value restored). False for an I/O BAR, an
   unimplemented one, the upper half of a 64-bit one, or i > 5. */
bool pci_bar(struct pci_address a, int i, u64 *address, u64 *size);

/* Moves memory BAR i up by delta (decoding off while its register changes, then restored); prints the move. */
bool pci_move_bar(struct pci_address a, int i, u64 delta);

/* Bus 0, every slot and (when the header says multi-function) every function: fills up to max devices with
   virtio vendor 0x1AF4 modern device IDs (0x1040 + virtio ID) and returns how many it found. Prints one line per
   function present. */
u32 pci_enumerate(struct guest_device *out, u32 max);

/* The offset in config space of the first capability with cap ID id at or after `from` (0: the list's start),
   or 0. Bounded: at most 48 entries, each at a dword-aligned offset of 0x40 or more. */
u32 pci_find_capability(struct pci_address a, u8 id, u32 from);
