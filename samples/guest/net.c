/* virtio-net workload (virtio 1.2 section 5.1): ARP for the peer, then ICMP echo. */
#include "workloads.h"

#define VIRTIO_NET_F_MAC (1ul << 5)
#define VIRTIO_NET_F_STATUS (1ul << 16)
#define VIRTIO_NET_S_LINK_UP 1

#define NET_HDR_LEN 12 /* struct virtio_net_hdr with VERSION_1: num_buffers included */
#define RX_BUF_LEN 2048
#define RX_BUFS 32
#define RX_QUEUE 0
#define TX_QUEUE 1
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ICMP_ID 0x7e57
#define PING_PAYLOAD 56

static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 be32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16(u8 *p, u16 v) { p[0] = (u8)(v >> 8), p[1] = (u8)v; }
static void put32(u8 *p, u32 v) { put16(p, (u16)(v >> 16)), put16(p + 2, (u16)v); }

static u16 checksum(const u8 *p, u32 len)
{
    u32 sum = 0;
    for (u32 i = 0; i + 1 < len; i += 2)
        sum += be16(p + i);
    if (len & 1)
        sum += (u32)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (u16)~sum;
}

static u8 *rx_by_head[256];

static bool post_rx(struct net_dev *n, u8 *buf)
{
    struct vq_buf b = {buf, RX_BUF_LEN, true};
    int head = virtq_add(&n->rx, &b, 1);
    if (head < 0)
        return false;
    rx_by_head[head] = buf;
    return true;
}

bool net_init(struct net_dev *n, const struct guest_device *gd, int index)
{
    const char *reason;
    n->dev.index = index;
    if (!virtio_probe(&n->dev, gd, VIRTIO_ID_NET, &reason))
        return fail("net-init", index, reason);
    u64 wanted = VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS;
    if (cmdline_u64("event_idx", 1) == 0)
        wanted &= ~VIRTIO_F_EVENT_IDX;
    if (!virtio_negotiate(&n->dev, wanted, &reason))
        return fail("net-init", index, reason);
    static const u8 fallback_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    for (u32 i = 0; i < 6; i++)
        n->mac[i] = (n->dev.negotiated & VIRTIO_NET_F_MAC) ? virtio_config8(&n->dev, i) : fallback_mac[i];
    if (!virtq_setup(&n->dev, &n->rx, RX_QUEUE, 64, &reason) || !virtq_setup(&n->dev, &n->tx, TX_QUEUE, 64, &reason))
        return fail("net-init", index, reason);
    u32 bufs = n->rx.size < RX_BUFS ? n->rx.size : RX_BUFS;
    n->rx_buffers = alloc((u64)RX_BUF_LEN * bufs, 4096);
    n->tx_buffer = alloc(RX_BUF_LEN, 4096);
    if (!n->rx_buffers || !n->tx_buffer)
        return fail("net-init", index, "out-of-memory");
    for (u32 i = 0; i < bufs; i++)
        post_rx(n, n->rx_buffers + (u64)i * RX_BUF_LEN);
    virtio_driver_ok(&n->dev);
    virtq_kick(&n->rx);
    virtio_print_features(&n->dev, "net");
    const u8 *m = n->mac;
    print("guest: net%d mac %02x:%02x:%02x:%02x:%02x:%02x", index, m[0], m[1], m[2], m[3], m[4], m[5]);
    if (n->dev.negotiated & VIRTIO_NET_F_STATUS)
        print(" link %s", (virtio_config16(&n->dev, 6) & VIRTIO_NET_S_LINK_UP) ? "up" : "down");
    print("\n");
    return true;
}

/* Sends one frame (the caller wrote it at tx_buffer + NET_HDR_LEN) and waits until the device is done with it. */
static bool send_frame(struct net_dev *n, u32 len)
{
    memset(n->tx_buffer, 0, NET_HDR_LEN); /* no offloads: flags 0, gso none */
    struct vq_buf b = {n->tx_buffer, NET_HDR_LEN + len, false};
    if (virtq_add(&n->tx, &b, 1) < 0)
        return fail("net-ping", n->dev.index, "tx-full");
    virtq_kick(&n->tx);
    u32 used_len;
    int r = virtq_wait(&n->tx, &used_len, 1000000);
    if (r < 0)
        return fail("net-ping", n->dev.index, r == VQ_TIMEOUT ? "tx-timeout" : vq_error_name(r));
    return true;
}

struct ping_state {
    u32 ip, peer;
    u8 peer_mac[6];
    bool have_peer_mac;
    u16 want_seq; /* echo reply we wait for; 0 = none */
    bool got_reply;
    bool bad; /* a malformed frame or reply */
};

static u8 *eth_header(struct net_dev *n, const u8 *dst, u16 type)
{
    u8 *f = n->tx_buffer + NET_HDR_LEN;
    memcpy(f, dst, 6);
    memcpy(f + 6, n->mac, 6);
    put16(f + 12, type);
    return f + ETH_HLEN;
}

static bool send_arp(struct net_dev *n, struct ping_state *st, u16 op, const u8 *dst_mac, u32 target_ip)
{
    static const u8 broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    u8 *a = eth_header(n, op == 1 ? broadcast : dst_mac, ETH_P_ARP);
    put16(a, 1);        /* Ethernet */
    put16(a + 2, ETH_P_IP);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, n->mac, 6);
    put32(a + 14, st->ip);
    if (op == 1)
        memset(a + 18, 0, 6);
    else
        memcpy(a + 18, dst_mac, 6);
    put32(a + 24, target_ip);
    return send_frame(n, ETH_HLEN + 28);
}

static bool send_echo(struct net_dev *n, struct ping_state *st, u16 seq)
{
    u8 *ip = eth_header(n, st->peer_mac, ETH_P_IP);
    u32 icmp_len = 8 + PING_PAYLOAD;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (u16)(20 + icmp_len));
    put16(ip + 4, seq);
    ip[6] = 0x40; /* don't fragment */
    ip[8] = 64;
    ip[9] = 1; /* ICMP */
    put32(ip + 12, st->ip);
    put32(ip + 16, st->peer);
    put16(ip + 10, checksum(ip, 20));
    u8 *icmp = ip + 20;
    icmp[0] = 8;
    icmp[1] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 4, ICMP_ID);
    put16(icmp + 6, seq);
    for (u32 i = 0; i < PING_PAYLOAD; i++)
        icmp[8 + i] = (u8)(i + seq);
    put16(icmp + 2, checksum(icmp, icmp_len));
    return send_frame(n, ETH_HLEN + 20 + icmp_len);
}

static void handle_frame(struct net_dev *n, struct ping_state *st, const u8 *f, u32 len)
{
    if (len < ETH_HLEN)
        return;
    u16 type = be16(f + 12);
    const u8 *p = f + ETH_HLEN;
    len -= ETH_HLEN;
    if (type == ETH_P_ARP && len >= 28 && be16(p) == 1 && be16(p + 2) == ETH_P_IP) {
        u16 op = be16(p + 6);
        u32 sender = be32(p + 14), target = be32(p + 24);
        if (op == 2 && sender == st->peer) {
            memcpy(st->peer_mac, p + 8, 6);
            st->have_peer_mac = true;
        } else if (op == 1 && target == st->ip) {
            u8 mac[6];
            memcpy(mac, p + 8, 6);
            send_arp(n, st, 2, mac, sender); /* answer who-has for our address */
        }
        return;
    }
    if (type != ETH_P_IP || len < 20 || (p[0] >> 4) != 4)
        return;
    u32 ihl = (u32)(p[0] & 15) * 4, total = be16(p + 2);
    if (ihl < 20 || total > len || total < ihl + 8 || p[9] != 1 || be32(p + 12) != st->peer || be32(p + 16) != st->ip)
        return;
    const u8 *icmp = p + ihl;
    u32 icmp_len = total - ihl;
    if (icmp[0] != 0 || be16(icmp + 4) != ICMP_ID)
        return;
    if (checksum(icmp, icmp_len) != 0 || checksum(p, ihl) != 0 || icmp_len != 8 + PING_PAYLOAD) {
        st->bad = true;
        return;
    }
    u16 seq = be16(icmp + 6);
    for (u32 i = 0; i < PING_PAYLOAD; i++)
        if (icmp[8 + i] != (u8)(i + seq))
            st->bad = true;
    if (seq == st->want_seq && !st->bad)
        st->got_reply = true;
}

/* Takes received frames until done() or the timeout; false on a device error. */
static bool receive_until(struct net_dev *n, struct ping_state *st, bool (*done)(struct ping_state *), u64 timeout_us)
{
    u64 deadline = rdtsc() + us_to_ticks(timeout_us);
    while (!done(st) && !st->bad && rdtsc() < deadline) {
        u32 len;
        int head = virtq_poll(&n->rx, &len);
        if (head == VQ_EMPTY) {
            virtq_idle(&n->rx);
            continue;
        }
        if (head < 0)
            return fail("net-ping", n->dev.index, vq_error_name(head));
        u8 *buf = rx_by_head[head];
        if (len < NET_HDR_LEN)
            return fail("net-ping", n->dev.index, "short-rx");
        handle_frame(n, st, buf + NET_HDR_LEN, len - NET_HDR_LEN);
        post_rx(n, buf);
        virtq_kick(&n->rx);
    }
    if (st->bad)
        return fail("net-ping", n->dev.index, "bad-reply");
    return true;
}

static bool have_mac(struct ping_state *st) { return st->have_peer_mac; }
static bool have_reply(struct ping_state *st) { return st->got_reply; }

bool net_ping(struct net_dev *n)
{
    struct ping_state st = {0};
    char v[32];
    st.ip = 0x0a00020f;   /* 10.0.2.15 */
    st.peer = 0x0a000201; /* 10.0.2.1 */
    if ((cmdline_get("ip", v, sizeof v) && !parse_ipv4(v, &st.ip)) ||
        (cmdline_get("peer", v, sizeof v) && !parse_ipv4(v, &st.peer)))
        return fail("net-ping", n->dev.index, "bad-address");
    u64 count = cmdline_u64("count", 3);

    u64 arp_start = rdtsc();
    for (int tries = 0; tries < 3 && !st.have_peer_mac; tries++) {
        if (!send_arp(n, &st, 1, NULL, st.peer) || !receive_until(n, &st, have_mac, 1000000))
            return false;
    }
    if (!st.have_peer_mac)
        return fail("net-ping", n->dev.index, "arp-timeout");
    u64 arp_ticks = rdtsc() - arp_start;
    const u8 *m = st.peer_mac;
    print("guest: net%d peer %u.%u.%u.%u is at %02x:%02x:%02x:%02x:%02x:%02x\n", n->dev.index, st.peer >> 24,
          (st.peer >> 16) & 255, (st.peer >> 8) & 255, st.peer & 255, m[0], m[1], m[2], m[3], m[4], m[5]);

    u64 received = 0, min = ~0ul, max = 0, sum = 0;
    for (u64 seq = 1; seq <= count; seq++) {
        st.want_seq = (u16)seq;
        st.got_reply = false;
        u64 start = rdtsc();
        if (!send_echo(n, &st, (u16)seq) || !receive_until(n, &st, have_reply, 1000000))
            return false;
        if (!st.got_reply)
            continue;
        u64 rtt = rdtsc() - start;
        received++;
        sum += rtt;
        min = rtt < min ? rtt : min;
        max = rtt > max ? rtt : max;
    }
    print("result net-ping dev=%d sent=%lu received=%lu arp_us=%lu", n->dev.index, count, received,
          ticks_to_us(arp_ticks));
    if (received)
        print(" rtt_min_us=%lu rtt_avg_us=%lu rtt_max_us=%lu", ticks_to_us(min), ticks_to_us(sum / received),
              ticks_to_us(max));
    print("\n");
    if (received < count)
        return fail("net-ping", n->dev.index, received ? "lost-replies" : "timeout");
    return true;
}
