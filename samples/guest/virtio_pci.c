/* The virtio-pci modern transport (virtio 1.2 section 4.1): the function's vendor capabilities name where in its
   memory BARs the common configuration, the notify area, the ISR status byte and the device configuration are;
   interrupts are MSI-X vectors to the local APIC (one per queue plus one for configuration changes, or one shared
   by the queues when the table is too small, as Linux's vp_find_vqs falls back), or INTx through the IOAPIC. The
   capability walk checks what Linux's virtio_pci_modern_dev.c checks: a known BAR, the region inside it, the
   first usable capability of each type. */
#include "irq.h"
#include "pci.h"
#include "virtio.h"

/* Vendor capability (struct virtio_pci_cap, section 4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define CAP_TYPE 3
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_NOTIFY_MULTIPLIER 16

/* struct virtio_pci_common_cfg (section 4.1.4.3). */
#define COMMON_DEVICE_FEATURE_SELECT 0
#define COMMON_DEVICE_FEATURE 4
#define COMMON_DRIVER_FEATURE_SELECT 8
#define COMMON_DRIVER_FEATURE 12
#define COMMON_CONFIG_MSIX_VECTOR 16
#define COMMON_NUM_QUEUES 18
#define COMMON_DEVICE_STATUS 20
#define COMMON_CONFIG_GENERATION 21
#define COMMON_QUEUE_SELECT 22
#define COMMON_QUEUE_SIZE 24
#define COMMON_QUEUE_MSIX_VECTOR 26
#define COMMON_QUEUE_ENABLE 28
#define COMMON_QUEUE_NOTIFY_OFF 30
#define COMMON_QUEUE_DESC 32
#define COMMON_QUEUE_DRIVER 40
#define COMMON_QUEUE_DEVICE 48
#define COMMON_MIN_LENGTH 56

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* MSI-X capability and table (PCI Local Bus 3.0 section 6.8.2). */
#define MSIX_CONTROL 2
#define MSIX_TABLE 4
#define MSIX_CONTROL_ENABLE (1u << 15)
#define MSIX_CONTROL_MASKALL (1u << 14)
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA 8
#define MSIX_ENTRY_CONTROL 12
#define MSIX_ENTRY_MASKED 1u
#define MSI_ADDRESS_BASE 0xfee00000u

static struct pci_address where(struct virtio_dev *d) { return (struct pci_address){d->bus, d->slot, d->function}; }

/* 64-bit fields of the common configuration are written as two 32-bit halves, low first (section 4.1.3.1). */
static void common_write64(struct virtio_dev *d, u32 off, u64 v)
{
    mmio_write32(d->common + off, (u32)v);
    mmio_write32(d->common + off + 4, (u32)(v >> 32));
}

static bool pci_probe(struct virtio_dev *d, const struct guest_device *gd, u32 expected_id, const char **reason)
{
    d->bus = gd->bus;
    d->slot = gd->slot;
    d->function = gd->function;
    d->gsi = gd->gsi;
    struct pci_address a = where(d);
    u16 device = pci_read16(a, PCI_DEVICE_ID);
    if (pci_read16(a, PCI_VENDOR_ID) != 0x1af4 || device < 0x1040 || device > 0x107f) {
        *reason = "not-virtio-pci-modern";
        return false;
    }
    d->device_id = (u32)(device - 0x1040);
    if (d->device_id != expected_id) {
        *reason = "unexpected-device-id";
        return false;
    }
    /* pci_move_bars=1: move BAR 0 16 MiB up first, as an OS that reassigns resources would. */
    if (cmdline_u64("pci_move_bars", 0))
        pci_move_bar(a, 0, 0x1000000);
    /* The first capability of each type whose region lies inside a memory BAR the firmware assigned. */
    bool have[5] = {false};
    u64 addr[5] = {0};
    u32 len[5] = {0};
    for (u32 pos = pci_find_capability(a, PCI_CAP_ID_VNDR, 0); pos; pos = pci_find_capability(a, PCI_CAP_ID_VNDR, pos)) {
        u8 type = pci_read8(a, pos + CAP_TYPE), bar = pci_read8(a, pos + CAP_BAR), cap_len = pci_read8(a, pos + 2);
        if (type < VIRTIO_PCI_CAP_COMMON_CFG || type > VIRTIO_PCI_CAP_DEVICE_CFG || have[type] || bar > 5 ||
            cap_len < 16 || (type == VIRTIO_PCI_CAP_NOTIFY_CFG && cap_len < 20))
            continue;
        u32 offset = pci_read32(a, pos + CAP_OFFSET), length = pci_read32(a, pos + CAP_LENGTH);
        u64 bar_addr, bar_size;
        if (!pci_bar(a, bar, &bar_addr, &bar_size) || bar_addr == 0 || (u64)offset + length > bar_size)
            continue;
        if (type == VIRTIO_PCI_CAP_COMMON_CFG && length < COMMON_MIN_LENGTH)
            continue;
        if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
            d->notify_multiplier = pci_read32(a, pos + CAP_NOTIFY_MULTIPLIER);
            if (d->notify_multiplier & 1) /* section 4.1.4.4: an even number */
                continue;
        }
        have[type] = true;
        addr[type] = bar_addr + offset;
        len[type] = length;
        print("guest: pci 00:%02x.%u cap type %u bar %u offset 0x%x length 0x%x (bar at 0x%lx size 0x%lx)\n", d->slot,
              d->function, type, bar, offset, length, bar_addr, bar_size);
    }
    if (!have[VIRTIO_PCI_CAP_COMMON_CFG] || !have[VIRTIO_PCI_CAP_NOTIFY_CFG] || !have[VIRTIO_PCI_CAP_ISR_CFG]) {
        *reason = !have[VIRTIO_PCI_CAP_COMMON_CFG] ? "no-common-cfg" : !have[VIRTIO_PCI_CAP_NOTIFY_CFG] ? "no-notify-cfg" : "no-isr-cfg";
        return false;
    }
    d->common = addr[VIRTIO_PCI_CAP_COMMON_CFG];
    d->notify_base = addr[VIRTIO_PCI_CAP_NOTIFY_CFG];
    d->notify_len = len[VIRTIO_PCI_CAP_NOTIFY_CFG];
    d->isr = addr[VIRTIO_PCI_CAP_ISR_CFG];
    d->device_cfg = addr[VIRTIO_PCI_CAP_DEVICE_CFG];
    d->device_cfg_len = len[VIRTIO_PCI_CAP_DEVICE_CFG];

    d->msix_cap = pci_find_capability(a, PCI_CAP_ID_MSIX, 0);
    if (d->msix_cap) {
        u32 table = pci_read32(a, d->msix_cap + MSIX_TABLE);
        u64 bar_addr, bar_size;
        d->msix_entries = (u16)((pci_read16(a, d->msix_cap + MSIX_CONTROL) & 0x7ff) + 1);
        if (pci_bar(a, (int)(table & 7), &bar_addr, &bar_size) && bar_addr &&
            (u64)(table & ~7u) + 16ul * d->msix_entries <= bar_size) {
            d->msix_table = bar_addr + (table & ~7u);
        } else {
            print("guest: pci 00:%02x.%u MSI-X table outside its BAR: not used\n", d->slot, d->function);
            d->msix_cap = 0;
        }
    }
    /* Memory decoding for the BARs and bus mastering for the rings (section 4.1.5.1). */
    u16 command = pci_read16(a, PCI_COMMAND);
    pci_write16(a, PCI_COMMAND, (u16)(command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
    d->num_queues = mmio_read16(d->common + COMMON_NUM_QUEUES);
    print("guest: pci 00:%02x.%u virtio id %u: %u queues, notify multiplier %u, msix %u entries, interrupt pin %u line %u\n",
          d->slot, d->function, d->device_id, d->num_queues, d->notify_multiplier, d->msix_cap ? d->msix_entries : 0,
          pci_read8(a, PCI_INTERRUPT_PIN), d->gsi);
    return true;
}

static u32 pci_get_status(struct virtio_dev *d) { return mmio_read8(d->common + COMMON_DEVICE_STATUS); }
static void pci_set_status(struct virtio_dev *d, u32 status) { mmio_write8(d->common + COMMON_DEVICE_STATUS, (u8)status); }

static u64 pci_get_features(struct virtio_dev *d)
{
    mmio_write32(d->common + COMMON_DEVICE_FEATURE_SELECT, 0);
    u64 offered = mmio_read32(d->common + COMMON_DEVICE_FEATURE);
    mmio_write32(d->common + COMMON_DEVICE_FEATURE_SELECT, 1);
    return offered | (u64)mmio_read32(d->common + COMMON_DEVICE_FEATURE) << 32;
}

static void pci_set_features(struct virtio_dev *d, u64 features)
{
    mmio_write32(d->common + COMMON_DRIVER_FEATURE_SELECT, 0);
    mmio_write32(d->common + COMMON_DRIVER_FEATURE, (u32)features);
    mmio_write32(d->common + COMMON_DRIVER_FEATURE_SELECT, 1);
    mmio_write32(d->common + COMMON_DRIVER_FEATURE, (u32)(features >> 32));
}

/* INTx (section 4.1.4.5): reading the ISR status byte tells the cause and clears it, deasserting the line. */
static void pci_irq_ack(void *p)
{
    struct virtio_dev *d = p;
    (void)mmio_read8(d->isr);
}

static void msix_disable(struct virtio_dev *d)
{
    struct pci_address a = where(d);
    u16 control = pci_read16(a, d->msix_cap + MSIX_CONTROL);
    pci_write16(a, d->msix_cap + MSIX_CONTROL, (u16)(control & ~(MSIX_CONTROL_ENABLE | MSIX_CONTROL_MASKALL)));
    d->msix_used = 0;
}

/* MSI-X on, as Linux's msix_capability_init orders it: Enable with Function Mask set, each entry masked while
   its address (the local APIC, this CPU's ID in bits 19:12) and data (the vector; fixed delivery, edge) are
   written, then unmasked, then Function Mask cleared. INTx off while MSI-X is on. */
static void msix_enable(struct virtio_dev *d, u16 entries)
{
    struct pci_address a = where(d);
    u16 control = pci_read16(a, d->msix_cap + MSIX_CONTROL);
    pci_write16(a, d->msix_cap + MSIX_CONTROL, (u16)(control | MSIX_CONTROL_ENABLE | MSIX_CONTROL_MASKALL));
    u32 apic = irq_apic_id();
    for (u16 e = 0; e < entries; e++) {
        u64 entry = d->msix_table + 16ul * e;
        mmio_write32(entry + MSIX_ENTRY_CONTROL, MSIX_ENTRY_MASKED);
        mmio_write32(entry + MSIX_ENTRY_ADDR_LO, MSI_ADDRESS_BASE | (apic << 12));
        mmio_write32(entry + MSIX_ENTRY_ADDR_HI, 0);
        mmio_write32(entry + MSIX_ENTRY_DATA, virtio_msix_vector(d, e));
        mmio_write32(entry + MSIX_ENTRY_CONTROL, 0);
    }
    pci_write16(a, d->msix_cap + MSIX_CONTROL, (u16)((control | MSIX_CONTROL_ENABLE) & ~MSIX_CONTROL_MASKALL));
    pci_write16(a, PCI_COMMAND, (u16)(pci_read16(a, PCI_COMMAND) | PCI_COMMAND_INTX_DISABLE));
    d->msix_used = entries;
}

/* Section 4.1.5.1.2: the device answers NO_VECTOR when it cannot map the event; then fall back. */
static bool set_config_vector(struct virtio_dev *d, u16 vector)
{
    mmio_write16(d->common + COMMON_CONFIG_MSIX_VECTOR, vector);
    return mmio_read16(d->common + COMMON_CONFIG_MSIX_VECTOR) == vector;
}

static bool pci_setup_interrupts(struct virtio_dev *d, const char **reason)
{
    struct pci_address a = where(d);
    u16 queues = d->num_queues < VIRTIO_MAX_QUEUES ? d->num_queues : VIRTIO_MAX_QUEUES;
    if (d->msix_cap && cmdline_u64("msix", 1)) {
        /* vp_find_vqs: per-queue vectors, then one shared by the queues, then INTx. */
        bool shared = cmdline_u64("msix_shared", 0) != 0;
        if (!shared && d->msix_entries >= queues + 1) {
            msix_enable(d, (u16)(queues + 1));
            if (set_config_vector(d, 0)) {
                d->irq_mode = VIRTIO_IRQ_MSIX;
                return true;
            }
            msix_disable(d);
        }
        if (d->msix_entries >= 2) {
            msix_enable(d, 2);
            if (set_config_vector(d, 0)) {
                d->irq_mode = VIRTIO_IRQ_MSIX_SHARED;
                return true;
            }
            msix_disable(d);
        }
        print("guest: pci 00:%02x.%u MSI-X vectors refused: INTx\n", d->slot, d->function);
    }
    if (pci_read8(a, PCI_INTERRUPT_PIN) == 0) {
        *reason = "no-msix-no-intx";
        return false;
    }
    pci_write16(a, PCI_COMMAND, (u16)(pci_read16(a, PCI_COMMAND) & ~PCI_COMMAND_INTX_DISABLE));
    d->level = true; /* PCI INTx is level-triggered */
    if (!irq_route_line(d->index, d->gsi, true, pci_irq_ack, d)) {
        *reason = "intx-line-not-routable";
        return false;
    }
    d->irq_mode = VIRTIO_IRQ_LINE;
    return true;
}

static u32 pci_config_generation(struct virtio_dev *d) { return mmio_read8(d->common + COMMON_CONFIG_GENERATION); }

/* Device configuration at the width of the field; a 64-bit field as two 32-bit reads (section 4.1.3.1). */
static u64 pci_config_read(struct virtio_dev *d, u32 offset, int size)
{
    if (!d->device_cfg || (u64)offset + (u64)size > d->device_cfg_len)
        return 0;
    u64 at = d->device_cfg + offset;
    switch (size) {
    case 1: return mmio_read8(at);
    case 2: return mmio_read16(at);
    case 4: return mmio_read32(at);
    default: return mmio_read32(at) | (u64)mmio_read32(at + 4) << 32;
    }
}

static u32 pci_queue_max(struct virtio_dev *d, u16 index, const char **reason)
{
    if (index >= d->num_queues) {
        *reason = "queue-not-available";
        return 0;
    }
    mmio_write16(d->common + COMMON_QUEUE_SELECT, index);
    if (mmio_read16(d->common + COMMON_QUEUE_ENABLE)) {
        *reason = "queue-already-ready";
        return 0;
    }
    u32 size = mmio_read16(d->common + COMMON_QUEUE_SIZE);
    if (size == 0)
        *reason = "queue-not-available";
    return size;
}

static bool pci_queue_enable(struct virtio_dev *d, struct virtq *q, u64 desc_area, u64 driver_area, u64 device_area,
                             const char **reason)
{
    mmio_write16(d->common + COMMON_QUEUE_SELECT, q->index);
    mmio_write16(d->common + COMMON_QUEUE_SIZE, q->size);
    common_write64(d, COMMON_QUEUE_DESC, desc_area);
    common_write64(d, COMMON_QUEUE_DRIVER, driver_area);
    common_write64(d, COMMON_QUEUE_DEVICE, device_area);
    if (d->irq_mode == VIRTIO_IRQ_MSIX || d->irq_mode == VIRTIO_IRQ_MSIX_SHARED) {
        u16 entry = d->irq_mode == VIRTIO_IRQ_MSIX ? (u16)(1 + q->index) : 1;
        mmio_write16(d->common + COMMON_QUEUE_MSIX_VECTOR, entry);
        if (mmio_read16(d->common + COMMON_QUEUE_MSIX_VECTOR) != entry) {
            *reason = "queue-msix-vector-refused";
            return false;
        }
    }
    /* Section 4.1.4.4: the doorbell is at notify base + queue_notify_off * notify_off_multiplier, and the
       16-bit write must lie inside the notify capability. */
    u64 off = (u64)mmio_read16(d->common + COMMON_QUEUE_NOTIFY_OFF) * d->notify_multiplier;
    if (off + 2 > d->notify_len) {
        *reason = "notify-outside-capability";
        return false;
    }
    q->notify_addr = d->notify_base + off;
    d->notify_width = 2;
    mmio_write16(d->common + COMMON_QUEUE_ENABLE, 1);
    return true;
}

/* The 16-bit queue index (no VIRTIO_F_NOTIFICATION_DATA, section 4.1.5.2). */
static void pci_notify(struct virtq *q) { mmio_write16(q->notify_addr, q->index); }

const struct virtio_ops virtio_pci_ops = {
    .name = "pci",
    .probe = pci_probe,
    .get_status = pci_get_status,
    .set_status = pci_set_status,
    .get_features = pci_get_features,
    .set_features = pci_set_features,
    .setup_interrupts = pci_setup_interrupts,
    .config_generation = pci_config_generation,
    .config_read = pci_config_read,
    .queue_max = pci_queue_max,
    .queue_enable = pci_queue_enable,
    .notify = pci_notify,
    .irq_ack = pci_irq_ack,
};
