/* Completion by interrupt: our own GDT and IDT, the 8259s masked, the IOAPIC routing each device's GSI to a
   vector, the local APIC enabled, and a periodic local APIC timer so that a `hlt` waiting for a device can
   never sleep past its deadline. Interrupt delivery goes through the IDT (also in KVM's emulator on a PVM
   host: measured, see docs/kvm.md "The test guest"). */
#include "irq.h"

#define IOAPIC_BASE 0xfec00000ul
#define LAPIC_BASE 0xfee00000ul
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_TPR 0x080
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_DIVIDE 0x3e0
#define LAPIC_TIMER_PERIODIC (1u << 17)

#define VECTOR_TIMER 0x20
#define VECTOR_SPURIOUS 0xff

struct idt_gate {
    u16 offset0;
    u16 selector;
    u8 ist;
    u8 attributes;
    u16 offset1;
    u32 offset2;
    u32 reserved;
} __attribute__((packed));

struct table_pointer {
    u16 limit;
    u64 base;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
/* Null, 64-bit code (selector 8), data (selector 16): the selectors the boot contract's entry state uses. */
static const u64 gdt[3] __attribute__((aligned(16))) = {0, 0x00af9a000000ffff, 0x00cf92000000ffff};
extern char isr_stubs[];

bool irq_enabled;
volatile u64 irq_count[BOOT_MAX_DEVICES];
volatile u64 timer_ticks;
volatile u32 irq_hold_ack[BOOT_MAX_DEVICES];
volatile u64 msix_count[BOOT_MAX_DEVICES][VECTORS_PER_DEVICE];
static void (*line_ack[BOOT_MAX_DEVICES])(void *);
static void *line_ctx[BOOT_MAX_DEVICES];

static void ioapic_write(u32 reg, u32 v)
{
    mmio_write32(IOAPIC_BASE, reg);
    mmio_write32(IOAPIC_BASE + 0x10, v);
}

static void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC_BASE + reg, v); }

void irq_dispatch(u64 vector, u64 *frame)
{
    if (vector < 32) {
        /* frame: error code, RIP, CS, RFLAGS, RSP, SS */
        print("guest: exception %lu error 0x%lx at rip 0x%lx rsp 0x%lx\ndone status=3\n", vector, frame[0], frame[1],
              frame[4]);
        outl(0xf4, 3);
        for (;;)
            __asm__ volatile("cli; hlt");
    }
    if (vector >= VECTOR_DEVICE0 && vector < VECTOR_DEVICE0 + BOOT_MAX_DEVICES) {
        /* A line: the transport learns and acknowledges the cause (mmio InterruptStatus and InterruptACK, PCI
           the ISR status byte, which its read clears), unless a test holds the acknowledgement back. */
        u32 i = (u32)(vector - VECTOR_DEVICE0);
        if (line_ack[i]) {
            if (irq_hold_ack[i])
                irq_hold_ack[i]--;
            else
                line_ack[i](line_ctx[i]);
        }
        irq_count[i]++;
    } else if (vector >= VECTOR_MSIX0 && vector < VECTOR_MSIX0 + VECTORS_PER_DEVICE * BOOT_MAX_DEVICES) {
        /* MSI-X: the vector says which device and which event; there is nothing to acknowledge but the EOI. */
        u32 i = (u32)(vector - VECTOR_MSIX0) / VECTORS_PER_DEVICE;
        msix_count[i][(vector - VECTOR_MSIX0) % VECTORS_PER_DEVICE]++;
        irq_count[i]++;
    } else if (vector == VECTOR_TIMER) {
        timer_ticks++;
    } else if (vector == VECTOR_SPURIOUS) {
        return; /* no EOI for the spurious vector */
    }
    lapic_write(LAPIC_EOI, 0);
}

void irq_init(void)
{
    struct table_pointer g = {sizeof gdt - 1, (u64)gdt}, i = {sizeof idt - 1, (u64)idt};
    for (int v = 0; v < 256; v++) {
        u64 a = (u64)isr_stubs + 16ul * (u64)v;
        idt[v] = (struct idt_gate){(u16)a, 8, 0, 0x8e, (u16)(a >> 16), (u32)(a >> 32), 0};
    }
    __asm__ volatile("lgdt %0" : : "m"(g));
    __asm__ volatile("lidt %0" : : "m"(i));
    /* Mask both 8259s: the in-kernel irqchip routes a GSI to them too, at their reset vector base (measured:
       GSI 5 arrived as vector 5 before this). */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    lapic_write(LAPIC_SVR, 0x100 | VECTOR_SPURIOUS);
    lapic_write(LAPIC_TPR, 0);
}

u32 irq_apic_id(void) { return mmio_read32(LAPIC_BASE + 0x020) >> 24; }

bool irq_route_line(int dev, u32 gsi, bool level, void (*ack)(void *), void *ctx)
{
    if (!irq_enabled || dev < 0 || dev >= BOOT_MAX_DEVICES || gsi >= 24)
        return false;
    line_ctx[dev] = ctx;
    line_ack[dev] = ack;
    /* fixed, physical, active high, unmasked; edge or level */
    ioapic_write(0x11 + 2 * gsi, 0); /* to local APIC 0 */
    ioapic_write(0x10 + 2 * gsi, (level ? 1u << 15 : 0) | (u32)(VECTOR_DEVICE0 + dev));
    return true;
}

void irq_start(void)
{
    /* A periodic timer bounds every hlt: KVM's local APIC counts at 1 GHz, divide by 1, so about 10 ms. */
    lapic_write(LAPIC_TIMER_DIVIDE, 0xb);
    lapic_write(LAPIC_LVT_TIMER, LAPIC_TIMER_PERIODIC | VECTOR_TIMER);
    lapic_write(LAPIC_TIMER_INITIAL, 10000000);
    irq_enabled = true;
    __asm__ volatile("sti");
}
