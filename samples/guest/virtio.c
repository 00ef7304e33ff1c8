/* A minimal virtio-mmio (version 2) driver with split virtqueues. */
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

bool virtio_probe(struct virtio_dev *d, u64 base, u32 gsi, u32 expected_id, const char **reason)
{
    d->base = base;
    d->gsi = gsi;
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

u32 virtio_status(struct virtio_dev *d) { return rd(d, VIRTIO_MMIO_STATUS); }

void virtio_reset(struct virtio_dev *d)
{
    wr(d, VIRTIO_MMIO_STATUS, 0);
    /* Section 4.2.3.1: the reset is complete when status reads back 0. Bounded. */
    u64 deadline = rdtsc() + us_to_ticks(1000000);
    while (rd(d, VIRTIO_MMIO_STATUS) != 0 && rdtsc() < deadline)
        ;
}

bool virtio_negotiate(struct virtio_dev *d, u64 wanted, const char **reason)
{
    virtio_reset(d);
    if (rd(d, VIRTIO_MMIO_STATUS) != 0) {
        *reason = "reset-timeout";
        return false;
    }
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    u64 offered = rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
    wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    offered |= (u64)rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
    d->offered = offered;
    if (!(offered & VIRTIO_F_VERSION_1)) {
        *reason = "no-version-1";
        wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_FAILED);
        return false;
    }
    d->negotiated = offered & (wanted | VIRTIO_F_VERSION_1);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)d->negotiated);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (u32)(d->negotiated >> 32));
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
        *reason = "features-not-accepted";
        wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_FAILED);
        return false;
    }
    return true;
}

void virtio_driver_ok(struct virtio_dev *d)
{
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                                  VIRTIO_STATUS_DRIVER_OK);
}

void virtio_print_features(struct virtio_dev *d, const char *what)
{
    print("guest: %s%d at 0x%lx gsi %u features offered 0x%lx negotiated 0x%lx\n", what, d->index, d->base, d->gsi,
          d->offered, d->negotiated);
}

/* Config reads: retry while ConfigGeneration changes under us (section 4.2.2). */
static u64 config_read(struct virtio_dev *d, u32 offset, int size)
{
    for (int tries = 0; tries < 100; tries++) {
        u32 gen = rd(d, VIRTIO_MMIO_CONFIG_GENERATION);
        u64 v = 0;
        for (int i = size - 1; i >= 0; i--)
            v = (v << 8) | mmio_read8(d->base + VIRTIO_MMIO_CONFIG + offset + (u32)i);
        if (rd(d, VIRTIO_MMIO_CONFIG_GENERATION) == gen)
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
    wr(d, VIRTIO_MMIO_QUEUE_SEL, index);
    if (rd(d, VIRTIO_MMIO_QUEUE_READY)) {
        *reason = "queue-already-ready";
        return false;
    }
    u32 num_max = rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (num_max == 0) {
        *reason = "queue-not-available";
        return false;
    }
    u16 size = max_size;
    if (size > num_max)
        size = (u16)num_max;
    /* Split queue sizes are powers of two: round down. */
    while (size & (size - 1))
        size &= (u16)(size - 1);
    q->dev = d;
    q->index = index;
    q->size = size;
    q->event_idx = (d->negotiated & VIRTIO_F_EVENT_IDX) != 0;
    q->indirect = (d->negotiated & VIRTIO_F_INDIRECT_DESC) != 0;
    q->desc = alloc(16ul * size, 4096);
    q->avail = alloc(6ul + 2ul * size, 4096);
    q->used = alloc(6ul + 8ul * size, 4096);
    q->chain_len = alloc(2ul * size, 8);
    q->writable = alloc(4ul * size, 8);
    q->indirect_tables = q->indirect ? alloc(16ul * VQ_MAX_SEGMENTS * size, 4096) : NULL;
    if (!q->desc || !q->avail || !q->used || !q->chain_len || !q->writable || (q->indirect && !q->indirect_tables)) {
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

    wr(d, VIRTIO_MMIO_QUEUE_NUM, size);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (u32)(u64)q->desc);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (u32)((u64)q->desc >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (u32)(u64)q->avail);
    wr(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (u32)((u64)q->avail >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (u32)(u64)q->used);
    wr(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (u32)((u64)q->used >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
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
    q->chain_len[head] = needed;
    q->writable[head] = writable;
    q->avail->ring[q->avail_idx & (q->size - 1)] = head;
    q->avail_idx++;
    return head;
}

void virtq_kick(struct virtq *q)
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
        notify = (u16)(now - event - 1) < (u16)(now - old);
    } else {
        notify = !(q->used->flags & VRING_USED_F_NO_NOTIFY);
    }
    if (notify) {
        mmio_write32(q->dev->base + VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
        q->notifies++;
    } else {
        q->suppressed++;
    }
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

int virtq_poll(struct virtq *q, u32 *len)
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
    if (q->event_idx)
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
    virtq_arm(q); /* the arm is visible before we read used->idx (store-load) */
    if (*(volatile u16 *)&q->used->idx == q->last_used)
        __asm__ volatile("sti; hlt" ::: "memory");
    else
        __asm__ volatile("sti" ::: "memory");
    /* Awake again: off until the next sleep. With EVENT_IDX the armed index is passed by the next used
       element, after which the device stays quiet; virtq_poll keeps it one behind. */
    if (!q->event_idx)
        q->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
}
