/* The test guest's devices and workloads. Each workload prints its `result` lines and returns pass/fail. */
#pragma once
#include "virtio.h"

/* Prints `fail WORKLOAD dev=N reason=REASON` and returns false. */
bool fail(const char *workload, int dev, const char *reason);
/* Prints a rate as a decimal with two places: bytes over ticks in MB/s. */
void print_mb_s(const char *key, u64 bytes, u64 ticks);

struct blk_slot;

struct blk_disk {
    struct virtio_dev dev;
    struct virtq q;
    u64 capacity; /* 512-byte sectors */
    bool read_only;
    u32 size_max;
    u32 max_discard_sectors, max_discard_seg, discard_alignment;
    u32 max_write_zeroes_sectors, max_write_zeroes_seg;
    u32 chunk_bytes; /* blk-verify request size */
    u16 slot_count;
    struct blk_slot *slots;
    u16 *head_slot;  /* queue head -> slot */
    u16 *free_slots; /* stack of free slot indexes */
    u16 free_count;
};

bool blk_init(struct blk_disk *b, const struct guest_device *gd, int index);
bool blk_verify(struct blk_disk *b);
bool blk_rand(struct blk_disk *b);
bool blk_flush(struct blk_disk *b);
bool blk_discard(struct blk_disk *b);
/* One read whose first interrupt is left unacknowledged: passes when the line interrupts again. */
bool blk_irq_level(struct blk_disk *b);

struct net_dev {
    struct virtio_dev dev;
    struct virtq rx, tx;
    u8 mac[6];
    u8 *rx_buffers;
    u8 *tx_buffer;
};

bool net_init(struct net_dev *n, const struct guest_device *gd, int index);
bool net_ping(struct net_dev *n);

/* Times `count=` writes to QueueNotify of an initialized queue. */
bool doorbell(struct virtio_dev *d, u16 queue);
