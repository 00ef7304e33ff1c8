/* Completion by interrupt (IDT, IOAPIC, local APIC). */
#pragma once
#include "guest.h"

#define VECTOR_DEVICE0 0x30 /* device i's line (mmio GSI, PCI INTx) interrupts on vector 0x30 + i */
#define VECTOR_MSIX0 0x40      /* device i's MSI-X table entry k interrupts on vector 0x40 + 8 * i + k */
#define VECTORS_PER_DEVICE 8   /* MSI-X entries a device may use: configuration + VIRTIO_MAX_QUEUES */

extern bool irq_enabled;
extern volatile u64 irq_count[BOOT_MAX_DEVICES];
extern volatile u64 timer_ticks;
/* Per device and MSI-X table entry: how many interrupts came on that entry's vector. */
extern volatile u64 msix_count[BOOT_MAX_DEVICES][VECTORS_PER_DEVICE];
/* While irq_hold_ack[i] > 0, device i's interrupts are taken without acknowledging InterruptStatus (each
   one counts it down): on a level-triggered line the interrupt must then come again after the EOI. */
extern volatile u32 irq_hold_ack[BOOT_MAX_DEVICES];

/* Loads our GDT and IDT (exceptions print and exit with status 3), masks the 8259s, enables the local APIC. */
void irq_init(void);
/* Starts the watchdog timer and enables interrupts. */
void irq_start(void);
/* Routes GSI `gsi` through the IOAPIC to device `dev`'s vector (level- or edge-triggered); the handler calls
   ack(ctx) to learn and clear the cause. False when interrupts are off or the GSI has no IOAPIC pin. */
bool irq_route_line(int dev, u32 gsi, bool level, void (*ack)(void *), void *ctx);
/* This CPU's local APIC ID (the destination of an MSI-X message). */
u32 irq_apic_id(void);
