/* The test guest: shared declarations. Freestanding: no libc, general registers only. */
#pragma once

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;
typedef u64 size_t;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

/* Boot info (README.md, "Boot contract"). */
#define BOOT_INFO_MAGIC 0x54524956u
#define BOOT_FLAG_IRQ_WIRED 1u
#define BOOT_FLAG_IOEVENTFD 2u
#define BOOT_FLAG_IRQ_LEVEL 4u /* device lines are level-triggered (irqfd with resample) */
#define BOOT_FLAG_PCI 8u       /* devices are virtio-pci functions on PCI bus 0; the device table is empty */
#define BOOT_MAX_DEVICES 16

struct boot_device {
    u64 mmio_base;
    u32 gsi;
    u32 device_id;
};

struct boot_info {
    u32 magic;
    u32 version;
    u64 memory_size;
    u64 tsc_khz;
    u32 device_count;
    u32 flags;
    char cmdline[256];
    struct boot_device devices[BOOT_MAX_DEVICES];
};

/* A device the guest found: from the boot info's table (virtio-mmio) or by enumerating PCI bus 0. */
struct guest_device {
    u32 device_id; /* virtio device ID: 2 = block, 1 = network */
    u32 gsi;       /* mmio: the table's GSI; pci: the function's Interrupt Line */
    u64 mmio_base; /* mmio: the register window; pci: 0 */
    bool pci;
    u8 bus, slot, function;
};

/* Port I/O, MMIO and ordering. */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u16 inw(u16 port)
{
    u16 v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u32 inl(u16 port)
{
    u32 v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline u32 mmio_read32(u64 addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32 *)addr = v; }
static inline u16 mmio_read16(u64 addr) { return *(volatile u16 *)addr; }
static inline void mmio_write16(u64 addr, u16 v) { *(volatile u16 *)addr = v; }
static inline u8 mmio_read8(u64 addr) { return *(volatile u8 *)addr; }
static inline void mmio_write8(u64 addr, u8 v) { *(volatile u8 *)addr = v; }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }
/* A full fence (store-load) without mfence: a locked add on the stack. */
static inline void full_barrier(void) { __asm__ volatile("lock addl $0, (%%rsp)" ::: "memory", "cc"); }
static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

extern u32 boot_flags; /* the boot info's flags (main.c) */

/* lib.c */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool streq(const char *a, const char *b);
void print(const char *fmt, ...);
void *alloc(size_t size, size_t align); /* zeroed; NULL when guest RAM runs out */
void heap_init(u64 memory_size);
u64 heap_free_bytes(void);

extern u64 tsc_khz;
u64 ticks_to_us(u64 ticks);
u64 ticks_to_ns(u64 ticks);
u64 us_to_ticks(u64 us);
u64 rate_per_s(u64 count, u64 ticks); /* count per second over ticks */

/* Command line: "workload=a,b key=value ...". */
void cmdline_init(const char *cmdline);
bool cmdline_get(const char *key, char *value, size_t size);
u64 cmdline_u64(const char *key, u64 fallback);
bool list_contains(const char *list, const char *item);
bool parse_ipv4(const char *s, u32 *ip);

u64 random_next(void); /* xorshift64* */
void random_seed(u64 seed);
void sort_u64(u64 *a, size_t n); /* heap sort: O(n log n), no recursion */
