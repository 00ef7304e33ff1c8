/* A minimal virtio driver: the virtio-mmio (version 2) transport here, virtio-pci in virtio_pci.c, behind struct
   virtio_ops; split virtqueues (section 2.7) and packed ones (section 2.8). The
   packed paths follow Linux's drivers/virtio/virtio_ring.c (virtqueue_add_packed, virtqueue_kick_prepare_packed,
   virtqueue_get_buf_ctx_packed, virtqueue_enable_cb_prepare_packed, virtqueue_disable_cb_packed). */
#include "virtio.h"
#include "irq.h"

static u32 rd(struct virtio_dev *d, u32 off) { return mmio_read32(d->base + off); }
static void wr(struct virtio_dev *d, u32 off, u32 v) { mmio_write32(d->base + off, v); }

const char *vq_error_name(int error)
{
    switch (error) {
    case VQ_EMPTY: return "empty";
    case VQ_BAD_ID: return "bad-used-id";
    case VQ_BAD_LEN: return "bad-used-len";
    case VQ_TIMEOUT: return "timeout";
    default: return "unknown";
    }
}

/* ---- virtio-mmio (section 4.2) ---- */

static bool mmio_probe(struct virtio_dev *d, const struct guest_device *gd, u32 expected_id, const char **reason)
{
    d->base = gd->mmio_base;
    d->gsi = gd->gsi;
    if (rd(d, VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE) {
        *reason = "bad-magic";
        return false;
    }
    if (rd(d, VIRTIO_MMIO_VERSION) != 2) {
        *reason = "not-version-2";
        return false;
    }
    d->device_id = rd(d, VIRTIO_MMIO_DEVICE_ID);
    if (d->device_id != expected_id) {
        *reason = "unexpected-device-id";
        return false;
    }
    return true;
}

static u32 mmio_get_status(struct virtio_dev *d) { return rd(d, VIRTIO_MMIO_STATUS); }
static void mmio_set_status(struct virtio_dev *d, u32 status) { wr(d, VIRTIO_MMIO_STATUS, status); }

static u64 mmio_get_features(struct virtio_dev *d)
{
    wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    u64 offered = rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
    wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    return offered | (u64)rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void mmio_set_features(struct virtio_dev *d, u64 features)
{
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)features);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)(features >> 32));
}

/* Section 4.2.2: read which events happened, acknowledge exactly those. */
static void mmio_irq_ack(void *p)
{
    struct virtio_dev *d = p;
    u32 status = rd(d, VIRTIO_MMIO_INTERRUPT_STATUS);
    if (status)
        wr(d, VIRTIO_MMIO_INTERRUPT_ACK, status);
}

static bool mmio_setup_interrupts(struct virtio_dev *d, const char **reason)
{
    (void)reason;
    d->level = (boot_flags & BOOT_FLAG_IRQ_LEVEL) != 0;
    if (irq_route_line(d->index, d->gsi, d->level, mmio_irq_ack, d))
        d->irq_mode = VIRTIO_IRQ_LINE;
    return true;
}

static u32 mmio_config_generation(struct virtio_dev *d) { return rd(d, VIRTIO_MMIO_CONFIG_GENERATION); }

static u64 mmio_config_read(struct virtio_dev *d, u32 offset, int size)
{
    u64 v = 0;
    for (int i = size - 1; i >= 0; i--)
        v = (v << 8) | mmio_read8(d->base + VIRTIO_MMIO_CONFIG + offset + (u32)i);
    return v;
}

static u32 mmio_queue_max(struct virtio_dev *d, u16 index, const char **reason)
{
    wr(d, VIRTIO_MMIO_QUEUE_SEL, index);
    if (rd(d, VIRTIO_MMIO_QUEUE_READY)) {
        *reason = "queue-already-ready";
        return 0;
    }
    u32 num_max = rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (num_max == 0)
        *reason = "queue-not-available";
    return num_max;
}

/* For a packed ring QueueDesc is the descriptor ring, QueueDriver the driver event suppression structure and
   QueueDevice the device one (section 4.2.2). */
static bool mmio_queue_enable(struct virtio_dev *d, struct virtq *q, u64 desc_area, u64 driver_area, u64 device_area,
                              const char **reason)
{
    (void)reason;
    wr(d, VIRTIO_MMIO_QUEUE_NUM, q->size);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (u32)desc_area);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (u32)(desc_area >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (u32)driver_area);
    wr(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (u32)(driver_area >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (u32)device_area);
    wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (u32)(device_area >> 32));
    q->notify_addr = d->base + VIRTIO_MMIO_QUEUE_NOTIFY;
    d->notify_width = 4;
    wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
    return true;
}

/* VIRTIO_F_NOTIFICATION_DATA is not negotiated: the notify is the queue index (section 4.2.3.3). */
static void mmio_notify(struct virtq *q) { mmio_write32(q->notify_addr, q->index); }

const struct virtio_ops virtio_mmio_ops = {
    .name = "mmio",
    .probe = mmio_probe,
    .get_status = mmio_get_status,
    .set_status = mmio_set_status,
    .get_features = mmio_get_features,
    .set_features = mmio_set_features,
    .setup_interrupts = mmio_setup_interrupts,
    .config_generation = mmio_config_generation,
    .config_read = mmio_config_read,
    .queue_max = mmio_queue_max,
    .queue_enable = mmio_queue_enable,
    .notify = mmio_notify,
    .irq_ack = mmio_irq_ack,
};

/* ---- Either transport ---- */

bool virtio_probe(struct virtio_dev *d, const struct guest_device *gd, u32 expected_id, const char **reason)
{
    d->ops = gd->pci ? &virtio_pci_ops : &virtio_mmio_ops;
    d->irq_mode = VIRTIO_IRQ_NONE;
    return d->ops->probe(d, gd, expected_id, reason);
}

u32 virtio_status(struct virtio_dev *d) { return d->ops->get_status(d); }

void virtio_reset(struct virtio_dev *d)
{
    d->ops->set_status(d, 0);
    /* Sections 4.1.4.3.2 and 4.2.3.1: the reset is complete when status reads back 0. Bounded. */
    u64 deadline = rdtsc() + us_to_ticks(1000000);
    while (d->ops->get_status(d) != 0 && rdtsc() < deadline)
        ;
}

bool virtio_negotiate(struct virtio_dev *d, u64 wanted, const char **reason)
{
    virtio_reset(d);
    if (d->ops->get_status(d) != 0) {
        *reason = "reset-timeout";
        return false;
    }
    d->ops->set_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
    d->ops->set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    u64 offered = d->ops->get_features(d);
    d->offered = offered;
    if (!(offered & VIRTIO_F_VERSION_1)) {
        *reason = "no-version-1";
        d->ops->set_status(d, VIRTIO_STATUS_FAILED);
        return false;
    }
    d->negotiated = offered & (wanted | VIRTIO_F_VERSION_1);
    d->ops->set_features(d, d->negotiated);
    d->ops->set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(d->ops->get_status(d) & VIRTIO_STATUS_FEATURES_OK)) {
        *reason = "features-not-accepted";
        d->ops->set_status(d, VIRTIO_STATUS_FAILED);
        return false;
    }
    if (irq_enabled && !d->ops->setup_interrupts(d, reason)) {
        d->ops->set_status(d, VIRTIO_STATUS_FAILED);
        return false;
    }
    return true;
}

void virtio_driver_ok(struct virtio_dev *d)
{
    d->ops->set_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                              VIRTIO_STATUS_DRIVER_OK);
}

u8 virtio_msix_vector(struct virtio_dev *d, u16 entry) { return (u8)(VECTOR_MSIX0 + VECTORS_PER_DEVICE * d->index + entry); }

void virtio_print_features(struct virtio_dev *d, const char *what)
{
    if (d->ops == &virtio_mmio_ops)
        print("guest: %s%d at 0x%lx gsi %u features offered 0x%lx negotiated 0x%lx\n", what, d->index, d->base, d->gsi,
              d->offered, d->negotiated);
    else
        print("guest: %s%d at pci 00:%02x.%u features offered 0x%lx negotiated 0x%lx\n", what, d->index, d->slot,
              d->function, d->offered, d->negotiated);
    print("guest: %s%d transport %s interrupts ", what, d->index, d->ops->name);
    switch (d->irq_mode) {
    case VIRTIO_IRQ_NONE:
        print("none (polling)\n");
        break;
    case VIRTIO_IRQ_LINE:
        print("%s gsi %u vector 0x%x (ioapic, %s)\n", d->ops == &virtio_pci_ops ? "intx" : "line", d->gsi,
              VECTOR_DEVICE0 + d->index, d->level ? "level" : "edge");
        break;
    case VIRTIO_IRQ_MSIX:
    case VIRTIO_IRQ_MSIX_SHARED:
        print("msix %s (%u of %u entries, vectors 0x%x-0x%x)\n",
              d->irq_mode == VIRTIO_IRQ_MSIX ? "per-queue" : "shared", d->msix_used, d->msix_entries,
              virtio_msix_vector(d, 0), virtio_msix_vector(d, (u16)(d->msix_used - 1)));
        break;
    }
}

/* Config reads: retry while the configuration generation changes under us (sections 2.5.1, 4.1.4.3, 4.2.2). */
static u64 config_read(struct virtio_dev *d, u32 offset, int size)
{
    for (int tries = 0; tries < 100; tries++) {
        u32 gen = d->ops->config_generation(d);
        u64 v = d->ops->config_read(d, offset, size);
        if (d->ops->config_generation(d) == gen)
            return v;
    }
    return 0;
}

u8 virtio_config8(struct virtio_dev *d, u32 offset) { return (u8)config_read(d, offset, 1); }
u16 virtio_config16(struct virtio_dev *d, u32 offset) { return (u16)config_read(d, offset, 2); }
u32 virtio_config32(struct virtio_dev *d, u32 offset) { return (u32)config_read(d, offset, 4); }
u64 virtio_config64(struct virtio_dev *d, u32 offset) { return config_read(d, offset, 8); }

static u16 *used_event(struct virtq *q) { return &q->avail->ring[q->size]; }
static u16 *avail_event(struct virtq *q) { return (u16 *)&q->used->ring[q->size]; }

bool virtq_setup(struct virtio_dev *d, struct virtq *q, u16 index, u16 max_size, const char **reason)
{
    if (index >= VIRTIO_MAX_QUEUES) {
        *reason = "queue-index-too-high";
        return false;
    }
    u32 num_max = d->ops->queue_max(d, index, reason);
    if (num_max == 0)
        return false;
    u16 size = max_size;
    if (size > num_max)
        size = (u16)num_max;
    q->dev = d;
    q->index = index;
    q->event_idx = (d->negotiated & VIRTIO_F_EVENT_IDX) != 0;
    q->indirect = (d->negotiated & VIRTIO_F_INDIRECT_DESC) != 0;
    q->packed = (d->negotiated & VIRTIO_F_RING_PACKED) != 0;
    u64 desc_area, driver_area, device_area;
    if (q->packed) {
        /* Section 2.8: any size; the descriptor ring 16-byte aligned, each event suppression structure 4 bytes,
           4-byte aligned (section 2.8.10.1 table). */
        q->size = size;
        q->ring = alloc(16ul * size, 16);
        q->driver_event = alloc(sizeof *q->driver_event, 4);
        q->device_event = alloc(sizeof *q->device_event, 4);
        q->id_next = alloc(2ul * size, 8);
        q->id_last = alloc(2ul * size, 8);
        q->chain_len = alloc(2ul * size, 8);
        q->writable = alloc(4ul * size, 8);
        q->packed_indirect = q->indirect ? alloc(16ul * VQ_MAX_SEGMENTS * size, 16) : NULL;
        if (!q->ring || !q->driver_event || !q->device_event || !q->id_next || !q->id_last || !q->chain_len ||
            !q->writable || (q->indirect && !q->packed_indirect)) {
            *reason = "out-of-memory";
            return false;
        }
        /* vring_alloc_queue_packed / virtqueue_vring_init_packed: both wrap counters 1, the free buffer ID
           list in order. */
        for (u16 i = 0; i < size; i++)
            q->id_next[i] = (u16)(i + 1);
        q->free_head = 0;
        q->num_free = size;
        q->next_avail = q->last_used = q->num_added = 0;
        q->avail_wrap = q->used_wrap = true;
        q->avail_used_flags = VRING_PACKED_DESC_F_AVAIL;
        /* Interrupts start off, as for the split ring: polled completion never asks for one. */
        q->event_flags_shadow = VRING_PACKED_EVENT_FLAG_DISABLE;
        q->driver_event->off_wrap = 0;
        q->driver_event->flags = q->event_flags_shadow;
        desc_area = (u64)q->ring;
        driver_area = (u64)q->driver_event;
        device_area = (u64)q->device_event;
    } else {
        /* Split queue sizes are powers of two: round down. */
        while (size & (size - 1))
            size &= (u16)(size - 1);
        q->size = size;
        q->desc = alloc(16ul * size, 4096);
        q->avail = alloc(6ul + 2ul * size, 4096);
        q->used = alloc(6ul + 8ul * size, 4096);
        q->chain_len = alloc(2ul * size, 8);
        q->writable = alloc(4ul * size, 8);
        q->indirect_tables = q->indirect ? alloc(16ul * VQ_MAX_SEGMENTS * size, 4096) : NULL;
        if (!q->desc || !q->avail || !q->used || !q->chain_len || !q->writable ||
            (q->indirect && !q->indirect_tables)) {
            *reason = "out-of-memory";
            return false;
        }
        for (u16 i = 0; i < size; i++)
            q->desc[i].next = (u16)(i + 1);
        q->free_head = 0;
        q->num_free = size;
        q->last_used = q->avail_idx = q->kicked_idx = 0;
        /* Interrupts start off (the flag, or an event index the device has passed): polled completion never
           asks for one, and completion by interrupt asks only in virtq_idle, just before it sleeps. */
        q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
        *used_event(q) = 0xffff;
        desc_area = (u64)q->desc;
        driver_area = (u64)q->avail;
        device_area = (u64)q->used;
    }

    if (!d->ops->queue_enable(d, q, desc_area, driver_area, device_area, reason))
        return false;
    d->notify_addr[index] = q->notify_addr;
    return true;
}

u16 virtq_capacity(struct virtq *q, int segments)
{
    if (q->indirect && segments > 1 && segments <= VQ_MAX_SEGMENTS)
        return q->size;
    return (u16)(q->size / segments);
}

static u16 take_desc(struct virtq *q)
{
    u16 i = q->free_head;
    q->free_head = q->desc[i].next;
    q->num_free--;
    return i;
}

static void fill_desc(struct vring_desc *d, const struct vq_buf *b)
{
    d->addr = (u64)b->addr;
    d->len = b->len;
    d->flags = b->device_writes ? VRING_DESC_F_WRITE : 0;
}

/* Writes the chain (one indirect descriptor when `indirect`) and puts its head on the avail ring. */
static u16 split_add(struct virtq *q, const struct vq_buf *bufs, int count, bool indirect)
{
    u16 head;
    if (indirect) {
        head = take_desc(q);
        struct vring_desc *table = &q->indirect_tables[(u32)head * VQ_MAX_SEGMENTS];
        for (int i = 0; i < count; i++) {
            fill_desc(&table[i], &bufs[i]);
            if (i + 1 < count) {
                table[i].flags |= VRING_DESC_F_NEXT;
                table[i].next = (u16)(i + 1);
            }
        }
        q->desc[head].addr = (u64)table;
        q->desc[head].len = (u32)(16 * count);
        q->desc[head].flags = VRING_DESC_F_INDIRECT;
    } else {
        head = take_desc(q);
        u16 cur = head;
        for (int i = 0; i < count; i++) {
            fill_desc(&q->desc[cur], &bufs[i]);
            if (i + 1 < count) {
                u16 n = take_desc(q);
                q->desc[cur].flags |= VRING_DESC_F_NEXT;
                q->desc[cur].next = n;
                cur = n;
            }
        }
    }
    q->avail->ring[q->avail_idx & (q->size - 1)] = head;
    q->avail_idx++;
    return head;
}

/* vring_need_event (section 2.7.10; the packed ring uses the same arithmetic). */
static bool need_event(u16 event, u16 now, u16 old) { return (u16)(now - event - 1) < (u16)(now - old); }

/* Publishes avail->idx; true when the device wants a notify. */
static bool split_kick_prepare(struct virtq *q)
{
    /* Section 2.7.13: ring entries are visible before avail->idx moves. x86 keeps stores in order. */
    compiler_barrier();
    u16 old = q->kicked_idx, now = q->avail_idx;
    q->avail->idx = now;
    q->kicked_idx = now;
    /* Section 2.7.10: our idx store is visible before we read the suppression field (store-load). */
    full_barrier();
    bool notify;
    if (q->event_idx) {
        u16 event = *avail_event(q);
        notify = need_event(event, now, old);
    } else {
        notify = !(q->used->flags & VRING_USED_F_NO_NOTIFY);
    }
    return notify;
}

static void free_chain(struct virtq *q, u16 head)
{
    u16 n = q->chain_len[head], last = head;
    for (u16 i = 1; i < n; i++)
        last = q->desc[last].next;
    q->desc[last].next = q->free_head;
    q->free_head = head;
    q->num_free = (u16)(q->num_free + n);
    q->chain_len[head] = 0;
}

static int split_poll(struct virtq *q, u32 *len)
{
    u16 used_idx = *(volatile u16 *)&q->used->idx;
    if (used_idx == q->last_used)
        return VQ_EMPTY;
    /* Section 2.7.8: read the element only after seeing idx (x86 keeps loads in order). */
    compiler_barrier();
    struct vring_used_elem e = q->used->ring[q->last_used & (q->size - 1)];
    q->last_used++;
    if (q->event_idx) /* one already passed: no interrupt while we are awake to poll (virtq_idle re-arms) */
        *used_event(q) = (u16)(q->last_used - 1);
    if (e.id >= q->size || q->chain_len[e.id] == 0)
        return VQ_BAD_ID;
    u32 writable = q->writable[e.id];
    free_chain(q, (u16)e.id);
    if (e.len > writable)
        return VQ_BAD_LEN;
    *len = e.len;
    return (int)e.id;
}

/* ---- Packed virtqueue (section 2.8), as Linux's virtio_ring.c drives it ---- */

/* is_used_desc_packed: the descriptor at idx is used when its AVAIL and USED bits are equal and match the
   used wrap counter of the lap we read (section 2.8.1). */
static bool packed_is_used(struct virtq *q, u16 idx, bool wrap)
{
    u16 flags = *(volatile u16 *)&q->ring[idx].flags;
    bool avail = (flags & VRING_PACKED_DESC_F_AVAIL) != 0;
    bool used = (flags & VRING_PACKED_DESC_F_USED) != 0;
    return avail == used && used == wrap;
}

static void packed_fill(struct vring_packed_desc *d, const struct vq_buf *b, u16 id)
{
    d->addr = (u64)b->addr;
    d->len = b->len;
    d->id = id;
}

/* virtqueue_add_packed (and virtqueue_add_indirect_packed): every descriptor but the head is written with its
   AVAIL/USED bits for our lap; the head's flags go last, after a write barrier, so the device sees the whole
   chain or none of it (section 2.8.21). One buffer ID per chain, taken from the free ID list; the list holds as
   many IDs as the ring has slots, and a chain takes as many IDs as ring descriptors (Linux's desc_extra). */
static u16 packed_add(struct virtq *q, const struct vq_buf *bufs, int count, bool indirect)
{
    u16 needed = indirect ? 1 : (u16)count;
    u16 head = q->next_avail, i = head, id = q->free_head, curr = id, last = id;
    u16 avail_used_flags = q->avail_used_flags, head_flags;
    if (indirect) {
        /* Section 2.8.8: in the table only WRITE counts; NEXT is not used. */
        struct vring_packed_desc *table = &q->packed_indirect[(u32)id * VQ_MAX_SEGMENTS];
        for (int n = 0; n < count; n++) {
            table[n].addr = (u64)bufs[n].addr;
            table[n].len = bufs[n].len;
            table[n].id = 0;
            table[n].flags = bufs[n].device_writes ? VRING_DESC_F_WRITE : 0;
        }
        q->ring[head].addr = (u64)table;
        q->ring[head].len = (u32)(16 * count);
        q->ring[head].id = id;
        head_flags = (u16)(VRING_DESC_F_INDIRECT | avail_used_flags);
        curr = q->id_next[curr];
        if (++i >= q->size) {
            i = 0;
            q->avail_wrap = !q->avail_wrap;
            q->avail_used_flags ^= VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED;
        }
    } else {
        head_flags = 0;
        for (int n = 0; n < count; n++) {
            u16 flags = avail_used_flags;
            if (n + 1 < count)
                flags |= VRING_DESC_F_NEXT;
            if (bufs[n].device_writes)
                flags |= VRING_DESC_F_WRITE;
            packed_fill(&q->ring[i], &bufs[n], id);
            if (i == head)
                head_flags = flags;
            else
                q->ring[i].flags = flags;
            last = curr;
            curr = q->id_next[curr];
            if (++i >= q->size) {
                i = 0;
                avail_used_flags ^= VRING_PACKED_DESC_F_AVAIL | VRING_PACKED_DESC_F_USED;
            }
        }
        if (i <= head) /* went past the end of the ring: the next lap */
            q->avail_wrap = !q->avail_wrap;
        q->avail_used_flags = avail_used_flags;
    }
    q->num_free = (u16)(q->num_free - needed);
    q->next_avail = i;
    q->free_head = curr;
    q->id_last[id] = last;
    q->num_added = (u16)(q->num_added + needed);
    /* virtio_wmb: the chain's descriptors (and an indirect table) are visible before the head's flags make it
       available. x86 keeps stores in order; the compiler must too. */
    compiler_barrier();
    *(volatile u16 *)&q->ring[head].flags = head_flags;
    return id;
}

/* virtqueue_kick_prepare_packed: a full barrier (our head flags before the device's event structure), then
   the device event area decides: DISABLE no notify, ENABLE notify, DESC (EVENT_IDX) notify when the
   descriptors made available since the last kick pass the event position, taken one ring back when its wrap
   bit is not our current lap's. */
static bool packed_kick_prepare(struct virtq *q)
{
    full_barrier();
    u16 old = (u16)(q->next_avail - q->num_added), now = q->next_avail;
    q->num_added = 0;
    u32 snapshot = *(volatile u32 *)q->device_event; /* off_wrap and flags in one read */
    u16 off_wrap = (u16)snapshot, flags = (u16)(snapshot >> 16) & 0x3;
    bool notify;
    if (flags != VRING_PACKED_EVENT_FLAG_DESC) {
        notify = flags != VRING_PACKED_EVENT_FLAG_DISABLE;
    } else {
        bool wrap = (off_wrap >> VRING_PACKED_EVENT_F_WRAP_CTR) != 0;
        u16 event = off_wrap & (u16)~(1u << VRING_PACKED_EVENT_F_WRAP_CTR);
        if (wrap != q->avail_wrap)
            event = (u16)(event - q->size);
        notify = need_event(event, now, old);
    }
    return notify;
}

/* detach_buf_packed: the chain's IDs go back on the free ID list. */
static void packed_detach(struct virtq *q, u16 id)
{
    q->id_next[q->id_last[id]] = q->free_head;
    q->free_head = id;
    q->num_free = (u16)(q->num_free + q->chain_len[id]);
    q->chain_len[id] = 0;
}

/* virtqueue_get_buf_ctx_packed: the next used descriptor is at last_used when it is used for the used wrap
   counter; read barrier, then its ID and len; move on by the chain's ring descriptors, flipping the counter past
   the end. With interrupts on in DESC mode, off_wrap follows last_used. */
static int packed_poll(struct virtq *q, u32 *len)
{
    u16 last = q->last_used;
    if (!packed_is_used(q, last, q->used_wrap))
        return VQ_EMPTY;
    /* virtio_rmb: ID and len only after the flags said used (x86 keeps loads in order). */
    compiler_barrier();
    u16 id = q->ring[last].id;
    u32 used_len = q->ring[last].len;
    if (id >= q->size || q->chain_len[id] == 0)
        return VQ_BAD_ID;
    u32 writable = q->writable[id];
    u16 n = q->chain_len[id];
    packed_detach(q, id);
    last = (u16)(last + n);
    if (last >= q->size) {
        last = (u16)(last - q->size);
        q->used_wrap = !q->used_wrap;
    }
    q->last_used = last;
    if (q->event_flags_shadow == VRING_PACKED_EVENT_FLAG_DESC) {
        /* virtio_store_mb */
        *(volatile u16 *)&q->driver_event->off_wrap =
            (u16)(q->last_used | ((u16)q->used_wrap << VRING_PACKED_EVENT_F_WRAP_CTR));
        full_barrier();
    }
    if (used_len > writable)
        return VQ_BAD_LEN;
    *len = used_len;
    return (int)id;
}

/* virtqueue_enable_cb_prepare_packed: with EVENT_IDX, off_wrap names the next used position and lap first
   (write barrier), then the flags become DESC, or ENABLE without EVENT_IDX. The caller's full barrier and
   re-check follow (virtqueue_poll). */
static void packed_enable_cb(struct virtq *q)
{
    if (q->event_idx) {
        *(volatile u16 *)&q->driver_event->off_wrap =
            (u16)(q->last_used | ((u16)q->used_wrap << VRING_PACKED_EVENT_F_WRAP_CTR));
        compiler_barrier();
    }
    if (q->event_flags_shadow == VRING_PACKED_EVENT_FLAG_DISABLE) {
        q->event_flags_shadow = q->event_idx ? VRING_PACKED_EVENT_FLAG_DESC : VRING_PACKED_EVENT_FLAG_ENABLE;
        *(volatile u16 *)&q->driver_event->flags = q->event_flags_shadow;
    }
}

/* virtqueue_disable_cb_packed */
static void packed_disable_cb(struct virtq *q)
{
    if (q->event_flags_shadow != VRING_PACKED_EVENT_FLAG_DISABLE) {
        q->event_flags_shadow = VRING_PACKED_EVENT_FLAG_DISABLE;
        *(volatile u16 *)&q->driver_event->flags = q->event_flags_shadow;
    }
}

/* ---- Either layout ---- */

const char *virtq_layout(struct virtq *q) { return q->packed ? "packed" : "split"; }

int virtq_add(struct virtq *q, const struct vq_buf *bufs, int count)
{
    bool indirect = q->indirect && count > 1 && count <= VQ_MAX_SEGMENTS;
    u16 needed = indirect ? 1 : (u16)count;
    if (count < 1 || q->num_free < needed)
        return VQ_EMPTY;
    u32 writable = 0;
    for (int i = 0; i < count; i++)
        if (bufs[i].device_writes)
            writable += bufs[i].len;

    u16 head = q->packed ? packed_add(q, bufs, count, indirect) : split_add(q, bufs, count, indirect);
    q->chain_len[head] = needed;
    q->writable[head] = writable;
    return head;
}

void virtq_kick(struct virtq *q)
{
    if (q->packed ? packed_kick_prepare(q) : split_kick_prepare(q)) {
        q->dev->ops->notify(q);
        q->notifies++;
    } else {
        q->suppressed++;
    }
}

int virtq_poll(struct virtq *q, u32 *len) { return q->packed ? packed_poll(q, len) : split_poll(q, len); }

bool virtq_has_used(struct virtq *q)
{
    if (q->packed)
        return packed_is_used(q, q->last_used, q->used_wrap);
    return *(volatile u16 *)&q->used->idx != q->last_used;
}

int virtq_wait(struct virtq *q, u32 *len, u64 timeout_us)
{
    int r = virtq_poll(q, len);
    if (r != VQ_EMPTY)
        return r;
    u64 deadline = rdtsc() + us_to_ticks(timeout_us);
    for (;;) {
        r = virtq_poll(q, len);
        if (r != VQ_EMPTY)
            return r;
        if (rdtsc() > deadline)
            return VQ_TIMEOUT;
        virtq_idle(q);
    }
}

void virtq_arm(struct virtq *q)
{
    if (q->packed)
        packed_enable_cb(q);
    else if (q->event_idx)
        *used_event(q) = q->last_used;
    else
        q->avail->flags = 0;
    full_barrier();
}

void virtq_idle(struct virtq *q)
{
    if (!irq_enabled)
        return;
    /* Ask for an interrupt only now, about to sleep (Linux's virtqueue_enable_cb_prepare): one the device
       sends while we are awake and reaping costs a handler and two MMIO exits (InterruptStatus,
       InterruptACK) for nothing. Arm, then re-check the ring: a completion published before the arm
       was visible is seen here and we do not sleep. Interrupts off between the check and hlt: `sti; hlt`
       sleeps before a pending interrupt is taken, so a completion that lands after the check still wakes
       us. The watchdog timer bounds the sleep. */
    __asm__ volatile("cli" ::: "memory");
    virtq_arm(q); /* the arm is visible before we read used->idx or the next used descriptor (store-load) */
    if (!virtq_has_used(q))
        __asm__ volatile("sti; hlt" ::: "memory");
    else
        __asm__ volatile("sti" ::: "memory");
    /* Awake again: off until the next sleep. Split with EVENT_IDX: the armed index is passed by the next
       used element, after which the device stays quiet; virtq_poll keeps it one behind. Packed: DISABLE. */
    virtq_disarm(q);
}

void virtq_disarm(struct virtq *q)
{
    if (q->packed)
        packed_disable_cb(q);
    else if (!q->event_idx)
        q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
}
