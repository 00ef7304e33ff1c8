/* virtio-blk workloads (virtio 1.2 section 5.2): verify, random I/O, flush, discard / write zeroes. */
#include "irq.h"
#include "workloads.h"

#define VIRTIO_BLK_F_SIZE_MAX (1ul << 1)
#define VIRTIO_BLK_F_SEG_MAX (1ul << 2)
#define VIRTIO_BLK_F_RO (1ul << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ul << 6)
#define VIRTIO_BLK_F_FLUSH (1ul << 9)
#define VIRTIO_BLK_F_DISCARD (1ul << 13)
#define VIRTIO_BLK_F_WRITE_ZEROES (1ul << 14)

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0

/* Config space offsets (section 5.2.4). */
#define CFG_CAPACITY 0
#define CFG_SIZE_MAX 8
#define CFG_MAX_DISCARD_SECTORS 36
#define CFG_MAX_DISCARD_SEG 40
#define CFG_DISCARD_ALIGNMENT 44
#define CFG_MAX_WRITE_ZEROES_SECTORS 48
#define CFG_MAX_WRITE_ZEROES_SEG 52

#define SECTOR 512u
#define MAX_SLOTS 32
#define IO_TIMEOUT_US 10000000ul

struct blk_header {
    u32 type;
    u32 reserved;
    u64 sector;
};

struct blk_range { /* DISCARD / WRITE_ZEROES segment */
    u64 sector;
    u32 num_sectors;
    u32 flags;
};

struct blk_slot {
    struct blk_header header;
    struct blk_range range;
    u8 status;
    u8 *data;
    u32 data_len;
    u32 type;
    u64 sector;
    u64 started; /* rdtsc at submit */
};

bool blk_init(struct blk_disk *b, const struct guest_device *gd, int index)
{
    const char *reason;
    b->dev.index = index;
    if (!virtio_probe(&b->dev, gd, VIRTIO_ID_BLOCK, &reason))
        return fail("blk-init", index, reason);
    u64 wanted = VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX |
                 VIRTIO_BLK_F_RO | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD |
                 VIRTIO_BLK_F_WRITE_ZEROES | VIRTIO_F_RING_PACKED;
    if (cmdline_u64("packed", 1) == 0)
        wanted &= ~VIRTIO_F_RING_PACKED;
    if (cmdline_u64("indirect", 1) == 0)
        wanted &= ~VIRTIO_F_INDIRECT_DESC;
    if (cmdline_u64("event_idx", 1) == 0)
        wanted &= ~VIRTIO_F_EVENT_IDX;
    if (!virtio_negotiate(&b->dev, wanted, &reason))
        return fail("blk-init", index, reason);
    u64 f = b->dev.negotiated;
    b->capacity = virtio_config64(&b->dev, CFG_CAPACITY);
    b->read_only = (f & VIRTIO_BLK_F_RO) != 0;
    b->size_max = (f & VIRTIO_BLK_F_SIZE_MAX) ? virtio_config32(&b->dev, CFG_SIZE_MAX) : 0;
    if (f & VIRTIO_BLK_F_DISCARD) {
        b->max_discard_sectors = virtio_config32(&b->dev, CFG_MAX_DISCARD_SECTORS);
        b->max_discard_seg = virtio_config32(&b->dev, CFG_MAX_DISCARD_SEG);
        b->discard_alignment = virtio_config32(&b->dev, CFG_DISCARD_ALIGNMENT);
    }
    if (f & VIRTIO_BLK_F_WRITE_ZEROES) {
        b->max_write_zeroes_sectors = virtio_config32(&b->dev, CFG_MAX_WRITE_ZEROES_SECTORS);
        b->max_write_zeroes_seg = virtio_config32(&b->dev, CFG_MAX_WRITE_ZEROES_SEG);
    }
    if (!virtq_setup(&b->dev, &b->q, 0, (u16)cmdline_u64("queue_size", 128), &reason))
        return fail("blk-init", index, reason);

    u32 chunk = (u32)cmdline_u64("chunk_kib", 64) * 1024;
    if (b->size_max && chunk > b->size_max)
        chunk = b->size_max & ~(SECTOR - 1);
    if (chunk < 4096)
        chunk = 4096;
    b->chunk_bytes = chunk;
    b->slot_count = MAX_SLOTS;
    b->slots = alloc(sizeof(struct blk_slot) * MAX_SLOTS, 64);
    b->head_slot = alloc(2ul * b->q.size, 8);
    b->free_slots = alloc(2ul * MAX_SLOTS, 8);
    if (!b->slots || !b->head_slot || !b->free_slots)
        return fail("blk-init", index, "out-of-memory");
    for (int i = 0; i < MAX_SLOTS; i++) {
        b->slots[i].data = alloc(chunk, 4096);
        if (!b->slots[i].data)
            return fail("blk-init", index, "out-of-memory");
        b->free_slots[b->free_count++] = (u16)i;
    }
    virtio_driver_ok(&b->dev);
    virtio_print_features(&b->dev, "blk");
    print("guest: blk%d uses the %s ring (VIRTIO_F_RING_PACKED %s)\n", index, virtq_layout(&b->q),
          (f & VIRTIO_F_RING_PACKED) ? "negotiated" : (b->dev.offered & VIRTIO_F_RING_PACKED) ? "offered, refused" : "not offered");
    print("guest: blk%d capacity %lu sectors (%lu KiB)%s queue %u size_max %u discard %u/%u write_zeroes %u/%u\n",
          index, b->capacity, b->capacity / 2, b->read_only ? " read-only" : "", b->q.size, b->size_max,
          b->max_discard_sectors, b->max_discard_seg, b->max_write_zeroes_sectors, b->max_write_zeroes_seg);
    return true;
}

/* Queues one request on a free slot (the caller kicks). data may be NULL for len 0. */
static bool submit(struct blk_disk *b, struct blk_slot *s, u32 type, u64 sector, void *data, u32 len)
{
    struct vq_buf bufs[3];
    int n = 0;
    s->header.type = type;
    s->header.reserved = 0;
    s->header.sector = sector;
    s->status = 0xff;
    s->type = type;
    s->sector = sector;
    s->data_len = len;
    bufs[n++] = (struct vq_buf){&s->header, sizeof s->header, false};
    if (len)
        bufs[n++] = (struct vq_buf){data, len, type == VIRTIO_BLK_T_IN};
    bufs[n++] = (struct vq_buf){&s->status, 1, true};
    s->started = rdtsc();
    int head = virtq_add(&b->q, bufs, n);
    if (head < 0)
        return false;
    b->head_slot[head] = (u16)(s - b->slots);
    return true;
}

/* Waits for one completion and checks it: status OK and used len = bytes the device must have written. */
static struct blk_slot *reap(struct blk_disk *b, const char *workload, bool *ok)
{
    u32 len;
    int head = virtq_wait(&b->q, &len, IO_TIMEOUT_US);
    if (head < 0) {
        *ok = fail(workload, b->dev.index, vq_error_name(head));
        return NULL;
    }
    struct blk_slot *s = &b->slots[b->head_slot[head]];
    b->free_slots[b->free_count++] = (u16)(s - b->slots);
    u32 expected = (s->type == VIRTIO_BLK_T_IN ? s->data_len : 0) + 1;
    if (s->status != VIRTIO_BLK_S_OK) {
        print("guest: blk%d request type %u sector %lu status %u\n", b->dev.index, s->type, s->sector, s->status);
        *ok = fail(workload, b->dev.index, "bad-status");
    } else if (len != expected) {
        print("guest: blk%d request type %u used len %u, expected %u\n", b->dev.index, s->type, len, expected);
        *ok = fail(workload, b->dev.index, "bad-used-len");
    } else {
        *ok = true;
    }
    return s;
}

static struct blk_slot *take_slot(struct blk_disk *b)
{
    return b->free_count ? &b->slots[b->free_slots[--b->free_count]] : NULL;
}

/* Takes a free slot; false when none or the ring is full (a free slot goes back). */
typedef bool (*prepare_fn)(struct blk_disk *b, struct blk_slot *s, void *ctx);
/* Handles one completed, already checked request; false fails the run (it printed why). */
typedef bool (*complete_fn)(struct blk_disk *b, struct blk_slot *s, void *ctx);

/* Keeps up to qd requests in flight until count have completed: prepare submits one, complete checks one. */
static bool run_requests(struct blk_disk *b, const char *workload, u16 qd, u64 count, prepare_fn prepare,
                         complete_fn complete, void *ctx)
{
    u64 submitted = 0, completed = 0;
    u16 in_flight = 0;
    while (completed < count) {
        bool added = false;
        while (in_flight < qd && submitted < count) {
            struct blk_slot *s = take_slot(b);
            if (!s)
                break;
            if (!prepare(b, s, ctx)) {
                b->free_slots[b->free_count++] = (u16)(s - b->slots);
                break;
            }
            submitted++;
            in_flight++;
            added = true;
        }
        if (added)
            virtq_kick(&b->q);
        if (in_flight == 0)
            return fail(workload, b->dev.index, "cannot-submit");
        bool ok;
        struct blk_slot *s = reap(b, workload, &ok);
        if (!ok || !complete(b, s, ctx))
            return false;
        in_flight--;
        completed++;
    }
    return true;
}

/* Pattern: each sector starts with a tag naming the seed and the sector, then a fixed 504-byte body. */
static u64 pattern_seed;
static u8 pattern_body[SECTOR - 8];

static u64 sector_tag(u64 sector) { return pattern_seed ^ (sector * 0x9e3779b97f4a7c15ul); }

static void pattern_init(void)
{
    pattern_seed = rdtsc() | 1;
    random_seed(pattern_seed);
    for (u32 i = 0; i < sizeof pattern_body; i += 8) {
        u64 v = random_next();
        memcpy(&pattern_body[i], &v, 8);
    }
}

static void pattern_fill(u8 *buf, u64 sector, u32 sectors)
{
    for (u32 i = 0; i < sectors; i++, buf += SECTOR) {
        *(u64 *)buf = sector_tag(sector + i);
        memcpy(buf + 8, pattern_body, sizeof pattern_body);
    }
}

/* Returns the index of the first bad sector, or -1. */
static i64 pattern_check(const u8 *buf, u64 sector, u32 sectors)
{
    for (u32 i = 0; i < sectors; i++, buf += SECTOR)
        if (*(const u64 *)buf != sector_tag(sector + i) || memcmp(buf + 8, pattern_body, sizeof pattern_body))
            return (i64)i;
    return -1;
}

struct verify_ctx {
    bool write;
    u64 next; /* next sector to submit */
};

static bool verify_prepare(struct blk_disk *b, struct blk_slot *s, void *ctx)
{
    struct verify_ctx *v = ctx;
    u32 chunk = b->chunk_bytes / SECTOR;
    u32 n = b->capacity - v->next < chunk ? (u32)(b->capacity - v->next) : chunk;
    if (v->write)
        pattern_fill(s->data, v->next, n);
    if (!submit(b, s, v->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, v->next, s->data, n * SECTOR))
        return false;
    v->next += n;
    return true;
}

static bool verify_complete(struct blk_disk *b, struct blk_slot *s, void *ctx)
{
    struct verify_ctx *v = ctx;
    if (v->write)
        return true;
    i64 bad = pattern_check(s->data, s->sector, s->data_len / SECTOR);
    if (bad < 0)
        return true;
    print("guest: blk%d sector %lu does not read back what was written\n", b->dev.index, s->sector + (u64)bad);
    return fail("blk-verify", b->dev.index, "mismatch");
}

/* One pass over the disk: write the pattern, or read it back and check every byte. */
static bool verify_pass(struct blk_disk *b, bool write, u16 qd, u64 *ticks)
{
    struct verify_ctx v = {write, 0};
    u32 chunk = b->chunk_bytes / SECTOR;
    u64 requests = (b->capacity + chunk - 1) / chunk;
    u64 start = rdtsc();
    if (!run_requests(b, "blk-verify", qd, requests, verify_prepare, verify_complete, &v))
        return false;
    *ticks = rdtsc() - start;
    return true;
}

bool blk_verify(struct blk_disk *b)
{
    if (b->read_only) {
        print("result blk-verify dev=%d skipped=read-only\n", b->dev.index);
        return true;
    }
    u16 qd = (u16)cmdline_u64("qd", 8);
    u16 cap = virtq_capacity(&b->q, 3);
    if (qd > cap)
        qd = cap;
    if (qd > b->slot_count)
        qd = b->slot_count;
    if (qd == 0)
        qd = 1;
    pattern_init();
    u64 write_ticks, read_ticks;
    if (!verify_pass(b, true, qd, &write_ticks) || !verify_pass(b, false, qd, &read_ticks))
        return false;
    u64 bytes = b->capacity * SECTOR;
    print("result blk-verify dev=%d bytes=%lu request_bytes=%u qd=%u", b->dev.index, bytes, b->chunk_bytes, qd);
    print_mb_s("write_mb_s", bytes, write_ticks);
    print_mb_s("read_mb_s", bytes, read_ticks);
    print(" notifies=%lu suppressed=%lu ring=%s\n", b->q.notifies, b->q.suppressed, virtq_layout(&b->q));
    return true;
}

struct rand_ctx {
    bool write;
    u64 blocks; /* 4 KiB blocks on the disk */
    u64 *lat;
    u64 done;
};

static bool rand_prepare(struct blk_disk *b, struct blk_slot *s, void *ctx)
{
    struct rand_ctx *r = ctx;
    u64 sector = (random_next() % r->blocks) * 8;
    return submit(b, s, r->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, s->data, 4096);
}

static bool rand_complete(struct blk_disk *b, struct blk_slot *s, void *ctx)
{
    (void)b;
    struct rand_ctx *r = ctx;
    r->lat[r->done++] = rdtsc() - s->started;
    return true;
}

static bool rand_run(struct blk_disk *b, bool write, u16 qd, u64 ops, u64 *lat)
{
    struct rand_ctx r = {write, b->capacity / 8, lat, 0};
    u64 notifies = b->q.notifies;
    u64 start = rdtsc();
    if (!run_requests(b, "blk-rand", qd, ops, rand_prepare, rand_complete, &r))
        return false;
    u64 ticks = rdtsc() - start;
    sort_u64(lat, ops);
    u64 p99 = ops * 99 / 100;
    if (p99 >= ops)
        p99 = ops - 1;
    print("result blk-rand dev=%d rw=%s bs=4096 qd=%u ops=%lu iops=%lu p50_us=%lu p99_us=%lu notifies=%lu ring=%s\n",
          b->dev.index, write ? "write" : "read", qd, ops, rate_per_s(ops, ticks), ticks_to_us(lat[ops / 2]),
          ticks_to_us(lat[p99]), b->q.notifies - notifies, virtq_layout(&b->q));
    return true;
}

bool blk_rand(struct blk_disk *b)
{
    u64 ops = cmdline_u64("ops", 500);
    if (ops == 0)
        ops = 1;
    if (b->capacity < 8)
        return fail("blk-rand", b->dev.index, "disk-too-small");
    u64 *lat = alloc(8 * ops, 8);
    if (!lat)
        return fail("blk-rand", b->dev.index, "out-of-memory");
    u16 cap = virtq_capacity(&b->q, 3);
    if (cap > b->slot_count)
        cap = b->slot_count;
    static const u16 depths[] = {1, 32};
    for (int w = 0; w < 2; w++) {
        if (w && b->read_only)
            break;
        for (int i = 0; i < 2; i++) {
            u16 qd = depths[i] < cap ? depths[i] : cap;
            if (!rand_run(b, w != 0, qd, ops, lat))
                return false;
        }
    }
    return true;
}

/* Runs one request synchronously and checks it. */
static bool run_one(struct blk_disk *b, const char *workload, u32 type, u64 sector, void *data, u32 len, u64 *ticks)
{
    struct blk_slot *s = take_slot(b);
    if (!s)
        return fail(workload, b->dev.index, "no-free-slot");
    if (!submit(b, s, type, sector, data, len)) {
        b->free_slots[b->free_count++] = (u16)(s - b->slots);
        return fail(workload, b->dev.index, "queue-full");
    }
    virtq_kick(&b->q);
    bool ok;
    s = reap(b, workload, &ok);
    if (ok && ticks)
        *ticks = rdtsc() - s->started;
    return ok;
}

bool blk_flush(struct blk_disk *b)
{
    if (!(b->dev.negotiated & VIRTIO_BLK_F_FLUSH)) {
        print("result blk-flush dev=%d offered=0\n", b->dev.index);
        return true;
    }
    if (b->read_only) {
        print("result blk-flush dev=%d skipped=read-only\n", b->dev.index);
        return true;
    }
    u8 *buf = b->slots[MAX_SLOTS - 1].data;
    pattern_init();
    u32 sectors = b->capacity < 8 ? (u32)b->capacity : 8;
    pattern_fill(buf, 0, sectors);
    u64 write_ticks, flush_ticks;
    if (!run_one(b, "blk-flush", VIRTIO_BLK_T_OUT, 0, buf, sectors * SECTOR, &write_ticks) ||
        !run_one(b, "blk-flush", VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &flush_ticks))
        return false;
    print("result blk-flush dev=%d write_us=%lu flush_us=%lu ring=%s\n", b->dev.index, ticks_to_us(write_ticks),
          ticks_to_us(flush_ticks), virtq_layout(&b->q));
    return true;
}

/* Level-triggered interrupts (completion=irq on a VMM run with --irq-level): the handler leaves the first
   interrupt of one read unacknowledged, so InterruptStatus stays set across its EOI. A level line must then
   interrupt again: KVM lowers the line at the EOI, and the VMM raises it again from the resample fd while
   the status is set. On an edge-triggered line no second interrupt comes and the workload fails. */
bool blk_irq_level(struct blk_disk *b)
{
    if (!irq_enabled)
        return fail("irq-level", b->dev.index, "needs-completion-irq");
    u32 i = (u32)b->dev.index;
    u64 before = irq_count[i];
    irq_hold_ack[i] = 1;
    virtq_arm(&b->q); /* this completion interrupts even if it is seen before the guest would sleep */
    if (!run_one(b, "irq-level", VIRTIO_BLK_T_IN, 0, b->slots[MAX_SLOTS - 1].data, SECTOR, NULL)) {
        irq_hold_ack[i] = 0;
        return false;
    }
    /* The completion was seen in the used ring; give the second interrupt half a second (timer ticks). */
    u64 start = timer_ticks;
    while (irq_count[i] - before < 2 && timer_ticks - start < 50)
        __asm__ volatile("hlt");
    virtq_disarm(&b->q);
    u64 interrupts = irq_count[i] - before;
    bool held = irq_hold_ack[i] == 0;
    irq_hold_ack[i] = 0;
    print("result irq-level dev=%d interrupts=%lu held=%d\n", b->dev.index, interrupts, held);
    if (!held)
        return fail("irq-level", b->dev.index, "no-interrupt");
    if (interrupts < 2)
        return fail("irq-level", b->dev.index, "not-reasserted");
    return true;
}

static bool all_zero(const u8 *p, u32 n)
{
    for (u32 i = 0; i < n; i += 8)
        if (*(const u64 *)(p + i))
            return false;
    return true;
}

bool blk_discard(struct blk_disk *b)
{
    bool discard = (b->dev.negotiated & VIRTIO_BLK_F_DISCARD) && b->max_discard_sectors && b->max_discard_seg;
    bool zeroes = (b->dev.negotiated & VIRTIO_BLK_F_WRITE_ZEROES) && b->max_write_zeroes_sectors &&
                  b->max_write_zeroes_seg;
    if (b->read_only) {
        print("result blk-discard dev=%d skipped=read-only\n", b->dev.index);
        return true;
    }
    struct blk_range *range = alloc(sizeof *range, 16);
    u8 *buf = b->slots[MAX_SLOTS - 1].data;
    u64 discard_ticks = 0, zero_ticks = 0;
    u32 limit = b->chunk_bytes / SECTOR;
    if (limit > b->capacity)
        limit = (u32)b->capacity;
    if (discard) {
        u32 n = b->max_discard_sectors < limit ? b->max_discard_sectors : limit;
        if (b->discard_alignment && n > b->discard_alignment)
            n -= n % b->discard_alignment;
        *range = (struct blk_range){0, n, 0};
        if (!run_one(b, "blk-discard", VIRTIO_BLK_T_DISCARD, 0, range, sizeof *range, &discard_ticks))
            return false;
    }
    if (zeroes) {
        u32 n = b->max_write_zeroes_sectors < limit ? b->max_write_zeroes_sectors : limit;
        pattern_init();
        pattern_fill(buf, 0, n);
        if (!run_one(b, "blk-discard", VIRTIO_BLK_T_OUT, 0, buf, n * SECTOR, NULL))
            return false;
        *range = (struct blk_range){0, n, 0};
        if (!run_one(b, "blk-discard", VIRTIO_BLK_T_WRITE_ZEROES, 0, range, sizeof *range, &zero_ticks))
            return false;
        memset(buf, 0xa5, n * SECTOR);
        if (!run_one(b, "blk-discard", VIRTIO_BLK_T_IN, 0, buf, n * SECTOR, NULL))
            return false;
        if (!all_zero(buf, n * SECTOR))
            return fail("blk-discard", b->dev.index, "write-zeroes-not-zero");
    }
    print("result blk-discard dev=%d discard=%d write_zeroes=%d discard_us=%lu write_zeroes_us=%lu ring=%s\n",
          b->dev.index, discard, zeroes, ticks_to_us(discard_ticks), ticks_to_us(zero_ticks), virtq_layout(&b->q));
    return true;
}
