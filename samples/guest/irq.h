/* Completion by interrupt (IDT, IOAPIC, local APIC). */
#pragma once
#include "guest.h"

#define VECTOR_DEVICE0 0x30 /* device i of the boot info's table interrupts on vector 0x30 + i */

extern bool irq_enabled;
extern volatile u64 irq_count[BOOT_MAX_DEVICES];
extern volatile u64 timer_ticks;

/* Loads our GDT and IDT (exceptions print and exit with status 3), masks the 8259s, enables the local APIC. */
void irq_init(void);
/* Routes each device's GSI to its vector, starts the watchdog timer, enables interrupts. */
void irq_start(const struct boot_info *bi);
