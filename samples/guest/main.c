/* The test guest: reads the boot info, finds the devices, runs the workloads the command line names. */
#include "irq.h"
#include "pci.h"
#include "workloads.h"

#define MAX_DISKS BOOT_MAX_DEVICES

static struct blk_disk disks[MAX_DISKS];
static struct net_dev nets[BOOT_MAX_DEVICES];
static int disk_count, net_count;
static bool disks_ready, nets_ready;
static const struct boot_info *boot;
/* The devices: the boot info's table (virtio-mmio), or what enumerating PCI bus 0 found (BOOT_FLAG_PCI). */
static struct guest_device devices[BOOT_MAX_DEVICES];
static u32 device_count;
u32 boot_flags;

bool fail(const char *workload, int dev, const char *reason)
{
    print("fail %s dev=%d reason=%s\n", workload, dev, reason);
    return false;
}

void print_mb_s(const char *key, u64 bytes, u64 ticks)
{
    u64 centi = ticks ? bytes * tsc_khz / ticks / 10 : 0; /* bytes per ms = kB/s; / 10 = MB/s * 100 */
    print(" %s=%lu.%02lu", key, centi / 100, centi % 100);
}

static bool init_disk(int n, const struct guest_device *gd, int index) { return blk_init(&disks[n], gd, index); }
static bool init_net(int n, const struct guest_device *gd, int index) { return net_init(&nets[n], gd, index); }

/* Devices are set up on first use; a device that fails set-up stays out of the run (and fails it). */
static bool init_kind(bool *ready, u32 device_id, int *count, bool (*init)(int, const struct guest_device *, int))
{
    if (*ready)
        return true;
    *ready = true;
    bool ok = true;
    for (u32 i = 0; i < device_count; i++)
        if (devices[i].device_id == device_id) {
            if (init(*count, &devices[i], (int)i))
                (*count)++;
            else
                ok = false;
        }
    return ok;
}

static bool init_disks(void) { return init_kind(&disks_ready, VIRTIO_ID_BLOCK, &disk_count, init_disk); }
static bool init_nets(void) { return init_kind(&nets_ready, VIRTIO_ID_NET, &net_count, init_net); }

static bool report(const char *workload, int dev, bool ok)
{
    if (ok)
        print("ok %s dev=%d\n", workload, dev);
    return ok;
}

static bool run_blk(const char *name, bool (*fn)(struct blk_disk *))
{
    bool ok = init_disks();
    if (disk_count == 0)
        return fail(name, -1, "no-block-device");
    for (int i = 0; i < disk_count; i++)
        ok &= report(name, disks[i].dev.index, fn(&disks[i]));
    return ok;
}

static bool run_net(const char *name)
{
    bool ok = init_nets();
    if (net_count == 0)
        return fail(name, -1, "no-network-device");
    for (int i = 0; i < net_count; i++)
        ok &= report(name, nets[i].dev.index, net_ping(&nets[i]));
    return ok;
}

bool doorbell(struct virtio_dev *d, u16 queue)
{
    u64 count = cmdline_u64("count", 20000);
    if (count == 0)
        count = 1;
    u64 addr = d->notify_addr[queue];
    /* The same loop without the write, to subtract the (emulated) loop itself. */
    u64 t0 = rdtsc();
    for (u64 i = count; i; i--)
        compiler_barrier();
    u64 t1 = rdtsc();
    if (d->notify_width == 2) /* virtio-pci: a 16-bit write */
        for (u64 i = count; i; i--)
            mmio_write16(addr, queue);
    else /* virtio-mmio QueueNotify: 32 bits */
        for (u64 i = count; i; i--)
            mmio_write32(addr, queue);
    u64 t2 = rdtsc();
    u64 loop_ns = ticks_to_ns(t1 - t0) / count, total_ns = ticks_to_ns(t2 - t1) / count;
    print("result doorbell dev=%d count=%lu ns_per_notify=%lu loop_ns=%lu notify_minus_loop_ns=%lu ioeventfd=%d transport=%s\n",
          d->index, count, total_ns, loop_ns, total_ns > loop_ns ? total_ns - loop_ns : 0,
          (boot->flags & BOOT_FLAG_IOEVENTFD) != 0, d->ops->name);
    return true;
}

static bool run_doorbell(void)
{
    init_disks();
    init_nets();
    if (disk_count)
        return report("doorbell", disks[0].dev.index, doorbell(&disks[0].dev, 0));
    if (net_count)
        return report("doorbell", nets[0].dev.index, doorbell(&nets[0].dev, 1));
    return fail("doorbell", -1, "no-device");
}

static bool run_workload(const char *name)
{
    if (streq(name, "blk-verify"))
        return run_blk(name, blk_verify);
    if (streq(name, "blk-rand"))
        return run_blk(name, blk_rand);
    if (streq(name, "blk-flush"))
        return run_blk(name, blk_flush);
    if (streq(name, "blk-discard"))
        return run_blk(name, blk_discard);
    if (streq(name, "irq-level"))
        return run_blk(name, blk_irq_level);
    if (streq(name, "net-ping"))
        return run_net(name);
    if (streq(name, "doorbell"))
        return run_doorbell();
    if (streq(name, "default")) {
        bool ok = true;
        for (u32 i = 0; i < device_count; i++) {
            if (devices[i].device_id == VIRTIO_ID_BLOCK) {
                ok &= run_blk("blk-verify", blk_verify);
                break;
            }
        }
        for (u32 i = 0; i < device_count; i++) {
            if (devices[i].device_id == VIRTIO_ID_NET) {
                ok &= run_net("net-ping");
                break;
            }
        }
        return ok;
    }
    return fail(name, -1, "unknown-workload");
}

/* How fast this vCPU runs plain code (emulated on a PVM host outside its native ranges). */
static void calibrate(void)
{
    u64 n = 10000, i = n;
    u64 t0 = rdtsc();
    __asm__ volatile("1: dec %0\n jnz 1b" : "+r"(i) : : "cc");
    u64 t1 = rdtsc();
    static u8 a[16384], b[16384];
    memcpy(a, b, sizeof a);
    u64 t2 = rdtsc();
    bool same = memcmp(a, b, sizeof a) == 0;
    u64 t3 = rdtsc();
    u64 ns_per_insn = ticks_to_ns(t1 - t0) / (2 * n);
    print("guest: cpu: %lu ns per instruction (dec/jnz loop, %lu iterations), rep string:", ns_per_insn, n);
    print_mb_s("copy_mb_s", sizeof a, t2 - t1);
    print_mb_s("compare_mb_s", same ? sizeof a : 0, t3 - t2);
    print("\n");
}

int guest_main(const struct boot_info *bi)
{
    boot = bi;
    if (bi->magic != BOOT_INFO_MAGIC || bi->version != 1) {
        print("guest: bad boot info (magic 0x%x version %u)\ndone status=2\n", bi->magic, bi->version);
        return 2;
    }
    tsc_khz = bi->tsc_khz;
    if (tsc_khz == 0) {
        tsc_khz = 1000000;
        print("guest: tsc_khz unknown, assuming 1 GHz (timings are off)\n");
    }
    heap_init(bi->memory_size);
    cmdline_init(bi->cmdline);
    boot_flags = bi->flags;
    u32 count = bi->device_count > BOOT_MAX_DEVICES ? BOOT_MAX_DEVICES : bi->device_count;
    print("guest: boot info v%u memory %lu MiB tsc %lu kHz devices %u flags 0x%x cmdline \"%s\"\n", bi->version,
          bi->memory_size >> 20, bi->tsc_khz, count, bi->flags, bi->cmdline);
    if (bi->flags & BOOT_FLAG_PCI) {
        /* The devices are virtio-pci functions on bus 0: find them ourselves (configuration mechanism #1). */
        device_count = pci_enumerate(devices, BOOT_MAX_DEVICES);
        for (u32 i = 0; i < device_count; i++)
            print("guest: device %u: id %u at pci 00:%02x.%u interrupt line %u\n", i, devices[i].device_id,
                  devices[i].slot, devices[i].function, devices[i].gsi);
    } else {
        for (u32 i = 0; i < count; i++) {
            devices[i] = (struct guest_device){.device_id = bi->devices[i].device_id, .gsi = bi->devices[i].gsi,
                                               .mmio_base = bi->devices[i].mmio_base, .pci = false};
            print("guest: device %u: id %u at 0x%lx gsi %u\n", i, bi->devices[i].device_id, bi->devices[i].mmio_base,
                  bi->devices[i].gsi);
        }
        device_count = count;
    }
    calibrate();
    irq_init();
    char mode[8];
    /* Polling is the default: on the PVM host it matched interrupts in throughput with shorter tails
       (docs/kvm.md, "The test guest"). */
    if (!cmdline_get("completion", mode, sizeof mode))
        memcpy(mode, "poll", 5);
    if (streq(mode, "irq")) {
        if (!(bi->flags & BOOT_FLAG_IRQ_WIRED))
            print("guest: completion=irq but the boot info says interrupts are not wired\n");
        irq_start();
    } else if (!streq(mode, "poll")) {
        print("guest: unknown completion=%s\ndone status=2\n", mode);
        return 2;
    }
    print("guest: completion by %s\n", irq_enabled ? "interrupt" : "polling");

    char list[128];
    if (!cmdline_get("workload", list, sizeof list) || !list[0])
        memcpy(list, "default", 8);
    bool ok = true;
    for (char *s = list; *s;) {
        char *e = s;
        while (*e && *e != ',')
            e++;
        char saved = *e;
        *e = 0;
        u64 start = rdtsc();
        print("guest: workload %s\n", s);
        ok &= run_workload(s);
        print("guest: workload %s took %lu ms\n", s, ticks_to_us(rdtsc() - start) / 1000);
        *e = saved;
        s = saved ? e + 1 : e;
    }
    for (int i = 0; i < disk_count; i++)
        virtio_reset(&disks[i].dev);
    for (int i = 0; i < net_count; i++)
        virtio_reset(&nets[i].dev);
    if (irq_enabled) {
        __asm__ volatile("cli");
        print("guest: interrupts per device:");
        for (u32 i = 0; i < device_count; i++)
            print(" %lu", irq_count[i]);
        print(" timer %lu\n", timer_ticks);
        for (u32 i = 0; i < device_count; i++) {
            bool any = false;
            for (u32 e = 0; e < VECTORS_PER_DEVICE; e++)
                any |= msix_count[i][e] != 0;
            if (!any)
                continue;
            print("guest: msix dev=%u", i);
            for (u32 e = 0; e < VECTORS_PER_DEVICE; e++)
                if (msix_count[i][e])
                    print(" entry%u=%lu", e, msix_count[i][e]);
            print("\n");
        }
    }
    int status = ok ? 0 : 1;
    print("done status=%d\n", status);
    return status;
}
