/* Completion by interrupt (IDT, IOAPIC, local APIC). */
#pragma once
#include "guest.h"

#define VECTOR_DEVICE0 0x30 /* device i of the boot info's table interrupts on vector 0x30 + i */

extern bool irq_enabled;
extern volatile u64 irq_count[BOOT_MAX_DEVICES];
extern volatile u64 timer_ticks;
/* While irq_hold_ack[i] > 0, device i's interrupts are taken without acknowledging InterruptStatus (each
   one counts it down): on a level-triggered line the interrupt must then come again after the EOI. */
extern volatile u32 irq_hold_ack[BOOT_MAX_DEVICES];

/* Loads our GDT and IDT (exceptions print and exit with status 3), masks the 8259s, enables the local APIC. */
void irq_init(void);
/* Routes each device's GSI to its vector (level-triggered when the boot info says so), starts the watchdog timer, enables interrupts. */
void irq_start(const struct boot_info *bi);
