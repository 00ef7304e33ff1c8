/* A minimal virtio-mmio (version 2) driver with split and packed virtqueues (virtio 1.2 sections 2.7, 2.8, 4.2). */
#pragma once
#include "guest.h"

/* virtio-mmio register offsets (virtio 1.2 section 4.2.2). */
#define VIRTIO_MMIO_MAGIC 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976u /* "virt" */

/* Device status bits (section 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1u
#define VIRTIO_STATUS_DRIVER 2u
#define VIRTIO_STATUS_DRIVER_OK 4u
#define VIRTIO_STATUS_FEATURES_OK 8u
#define VIRTIO_STATUS_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED 128u

/* Device-independent feature bits (section 6). */
#define VIRTIO_F_INDIRECT_DESC (1ul << 28)
#define VIRTIO_F_EVENT_IDX (1ul << 29)
#define VIRTIO_F_VERSION_1 (1ul << 32)
#define VIRTIO_F_RING_PACKED (1ul << 34)

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2

/* Split virtqueue layout (section 2.7). */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

struct vring_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

struct vring_avail {
    u16 flags;
    u16 idx;
    u16 ring[]; /* then u16 used_event */
};

struct vring_used_elem {
    u32 id;
    u32 len;
};

struct vring_used {
    u16 flags;
    u16 idx;
    struct vring_used_elem ring[]; /* then u16 avail_event */
};

/* Packed virtqueue layout (section 2.8): one descriptor ring and two event suppression structures. */
#define VRING_PACKED_DESC_F_AVAIL (1u << 7)
#define VRING_PACKED_DESC_F_USED (1u << 15)
#define VRING_PACKED_EVENT_FLAG_ENABLE 0
#define VRING_PACKED_EVENT_FLAG_DISABLE 1
#define VRING_PACKED_EVENT_FLAG_DESC 2
#define VRING_PACKED_EVENT_F_WRAP_CTR 15

struct vring_packed_desc {
    u64 addr;
    u32 len;
    u16 id;
    u16 flags;
};

struct vring_packed_desc_event {
    u16 off_wrap; /* descriptor ring position | wrap counter << 15 */
    u16 flags;    /* ENABLE, DISABLE or DESC */
};

#define VIRTIO_MAX_QUEUES 7 /* queues a device may use here: each can have its own MSI-X vector (irq.h) */

struct virtio_dev;
struct virtq;

/* What differs between transports (virtio 1.2 section 4.1 PCI, 4.2 MMIO); everything above it (negotiation,
   virtqueues, workloads) is shared. */
struct virtio_ops {
    const char *name; /* "mmio" or "pci" */
    bool (*probe)(struct virtio_dev *d, const struct guest_device *gd, u32 expected_id, const char **reason);
    u32 (*get_status)(struct virtio_dev *d);
    void (*set_status)(struct virtio_dev *d, u32 status);
    u64 (*get_features)(struct virtio_dev *d);
    void (*set_features)(struct virtio_dev *d, u64 features);
    /* After FEATURES_OK, with completion by interrupt: route the line or program MSI-X vectors. */
    bool (*setup_interrupts)(struct virtio_dev *d, const char **reason);
    u32 (*config_generation)(struct virtio_dev *d);
    u64 (*config_read)(struct virtio_dev *d, u32 offset, int size); /* one try, no generation check */
    /* Selects queue `index`: its largest size, or 0 with a reason. */
    u32 (*queue_max)(struct virtio_dev *d, u16 index, const char **reason);
    /* Size (q->size), areas, interrupt vector, notify address, then enable. */
    bool (*queue_enable)(struct virtio_dev *d, struct virtq *q, u64 desc, u64 driver, u64 device, const char **reason);
    void (*notify)(struct virtq *q);
    /* The interrupt handler of a line (mmio, PCI INTx): learn the cause and acknowledge it. */
    void (*irq_ack)(void *d);
};

extern const struct virtio_ops virtio_mmio_ops;
extern const struct virtio_ops virtio_pci_ops;

enum virtio_irq_mode {
    VIRTIO_IRQ_NONE,        /* polling: nothing routed */
    VIRTIO_IRQ_LINE,        /* mmio GSI or PCI INTx through the IOAPIC */
    VIRTIO_IRQ_MSIX,        /* one MSI-X vector per queue and one for configuration changes */
    VIRTIO_IRQ_MSIX_SHARED, /* one MSI-X vector for configuration changes, one shared by the queues */
};

struct virtio_dev {
    int index; /* position in the guest's device list (the boot info's table, or bus 0's order) */
    const struct virtio_ops *ops;
    u64 base; /* mmio: the register window */
    u32 gsi;  /* mmio: the table's GSI; pci: the Interrupt Line */
    u32 device_id;
    u64 offered;    /* device features */
    u64 negotiated; /* features both sides accepted */
    u64 notify_addr[VIRTIO_MAX_QUEUES]; /* the doorbell of each enabled queue */
    u8 notify_width;                    /* its write width in bytes: 4 (mmio QueueNotify) or 2 (pci) */
    enum virtio_irq_mode irq_mode;
    bool level; /* the line is level-triggered */
    /* pci (virtio_pci.c) */
    u8 bus, slot, function;
    u64 common, isr, device_cfg, notify_base; /* the capabilities' addresses in their BARs */
    u32 device_cfg_len, notify_len, notify_multiplier;
    u16 num_queues;
    u32 msix_cap;     /* config-space offset of the MSI-X capability, 0 when there is none */
    u16 msix_entries; /* its table size */
    u64 msix_table;   /* the table's address */
    u16 msix_used;    /* entries we programmed */
};

#define VQ_MAX_SEGMENTS 4 /* per request: enough for header, data, status */

struct virtq {
    struct virtio_dev *dev;
    u64 notify_addr; /* the doorbell: QueueNotify (mmio) or notify base + queue_notify_off * multiplier (pci) */
    u16 index;
    u16 size;
    bool event_idx;
    bool indirect;
    bool packed; /* VIRTIO_F_RING_PACKED negotiated: the fields below marked packed are used */
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    struct vring_desc *indirect_tables; /* VQ_MAX_SEGMENTS per head (split) */
    u16 *chain_len;                     /* descriptors a head (packed: a buffer ID) holds in the ring; 0 = free */
    u32 *writable;                      /* bytes the device may write for a head / buffer ID */
    u16 free_head;                      /* split: free descriptor list; packed: free buffer ID list */
    u16 num_free;
    u16 last_used;   /* split: used idx we have reaped to; packed: ring position of the next used descriptor */
    u16 avail_idx;   /* our copy of avail->idx */
    u16 kicked_idx;  /* avail_idx at the last kick */
    /* packed (Linux's vring_virtqueue_packed) */
    struct vring_packed_desc *ring;                  /* the descriptor ring, 16-byte aligned */
    struct vring_packed_desc_event *driver_event;    /* written by us: interrupts wanted */
    struct vring_packed_desc_event *device_event;    /* written by the device: notifications wanted */
    struct vring_packed_desc *packed_indirect;       /* VQ_MAX_SEGMENTS per buffer ID */
    u16 *id_next;        /* free buffer ID list links (desc_extra[].next) */
    u16 *id_last;        /* last ID a chain took from the free list (desc_state[].last) */
    u16 next_avail;      /* ring position of the next descriptor we write */
    u16 num_added;       /* descriptors made available since the last kick */
    u16 avail_used_flags; /* AVAIL/USED bits for our current lap */
    u16 event_flags_shadow; /* our copy of driver_event->flags */
    bool avail_wrap;     /* driver ring wrap counter, starts 1 */
    bool used_wrap;      /* used wrap counter, starts 1 */
    u64 notifies;    /* QueueNotify writes */
    u64 suppressed;  /* kicks the device asked us to skip */
};

struct vq_buf {
    const void *addr;
    u32 len;
    bool device_writes;
};

enum vq_error {
    VQ_EMPTY = -1,   /* nothing used yet */
    VQ_BAD_ID = -2,  /* used id out of range or not in flight */
    VQ_BAD_LEN = -3, /* used len larger than the writable buffers */
    VQ_TIMEOUT = -4,
};

const char *vq_error_name(int error);

/* Picks the transport from gd and checks the device is expected_id. */
bool virtio_probe(struct virtio_dev *d, const struct guest_device *gd, u32 expected_id, const char **reason);
/* Negotiates, then (completion by interrupt) sets up the device's interrupts. */
bool virtio_negotiate(struct virtio_dev *d, u64 wanted, const char **reason);
bool virtq_setup(struct virtio_dev *d, struct virtq *q, u16 index, u16 max_size, const char **reason);
void virtio_driver_ok(struct virtio_dev *d);
void virtio_reset(struct virtio_dev *d);
u32 virtio_status(struct virtio_dev *d);
u8 virtio_config8(struct virtio_dev *d, u32 offset);
u16 virtio_config16(struct virtio_dev *d, u32 offset);
u32 virtio_config32(struct virtio_dev *d, u32 offset);
u64 virtio_config64(struct virtio_dev *d, u32 offset);
/* Two lines: the features, then the transport and interrupt mode. */
void virtio_print_features(struct virtio_dev *d, const char *what);
/* The MSI-X vector (0x40 + 8 * device + entry) of entry `entry`, for the IDT and the message data. */
u8 virtio_msix_vector(struct virtio_dev *d, u16 entry);

/* Requests a queue can hold at once, given segments per request. */
u16 virtq_capacity(struct virtq *q, int segments);
/* Adds a request; returns its head (packed: its buffer ID), or VQ_EMPTY when the ring has no room. Split: not
   visible before virtq_kick. Packed: visible at once (the head's flags are written last, as Linux does). */
int virtq_add(struct virtq *q, const struct vq_buf *bufs, int count);
/* Publishes added requests and notifies the device unless it suppressed notifications. */
void virtq_kick(struct virtq *q);
/* Takes one used element: its head (>= 0) and len, or a vq_error. */
int virtq_poll(struct virtq *q, u32 *len);
/* Sleeps until an interrupt when completion is by interrupt and nothing is used yet; returns at once when polling. */
void virtq_idle(struct virtq *q);
/* Asks for an interrupt on the next completion (used_event, or clears NO_INTERRUPT; packed: the driver event
   area's off_wrap and ENABLE/DESC), with a full barrier. */
void virtq_arm(struct virtq *q);
/* No interrupts while we are awake (NO_INTERRUPT without EVENT_IDX; packed: DISABLE). */
void virtq_disarm(struct virtq *q);
/* True when a used element (packed: a used descriptor of our used lap) waits to be taken. */
bool virtq_has_used(struct virtq *q);
/* "split" or "packed". */
const char *virtq_layout(struct virtq *q);
/* virtq_poll until something is used or timeout_us passes (VQ_TIMEOUT). */
int virtq_wait(struct virtq *q, u32 *len, u64 timeout_us);
