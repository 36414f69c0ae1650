// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The XDP flow cache (DESIGN.md, "XDP flow cache"): megaflow entries installed by the workers,
 * looked up and executed in XDP so that established flows never reach user space.
 *
 * Key: FlowKey's 16 words, byte for byte (vswift_flowkey.h). An entry is (mask, masked key) →
 * actions, as OVS's megaflows; user space guarantees that entries never overlap, so the first hit
 * in mask order is the only one. Lookup: for each mask in use (at most VSWIFT_FC_MAX_MASKS, in
 * slot order), first the slot's shape filter (one bit per signature of the masked in_port,
 * dl_type, VLAN TCI and nw_proto of its entries: a clear bit means no entry of the slot can
 * match), then (mask slot, the masked words the mask names) in the hash map of its size class:
 * the kernel hashes the whole map key, so a mask naming 1–2 words probes a 24-byte key, 3–6
 * words a 56-byte one, and only wider masks the full 136-byte key.
 *
 * Maps shared by every device's program of one datapath (XDPFlowCache.swift creates them at their
 * real sizes and every program is loaded with bpf_map__reuse_fd; the sizes declared here are
 * placeholders, so a program loaded without the cache carries tiny maps): vswift_fc_control,
 * vswift_fc_masks, vswift_fc_table, vswift_fc_table2, vswift_fc_table6, vswift_fc_entries, vswift_fc_counters, vswift_fc_ports, vswift_fc_lisp.
 * Per program: vswift_fc_port (its in_port), vswift_fc_scratch, vswift_fc_stats.
 *
 * Actions: a fixed array of ops per entry. Anything the XDP side cannot do exactly as the workers'
 * HeaderRewrite would (an SCTP port rewrite, dec_ttl reaching 0, a VLAN pop that would expose a
 * third tag, ...) is found before the frame is touched, and the frame goes to user space as a miss
 * ("punt"): a cached entry never makes a frame come out differently than the workers would. */
#ifndef VSWIFT_FLOWCACHE_H
#define VSWIFT_FLOWCACHE_H

#include "vswift_flowkey.h"

#define VSWIFT_FC_MAX_MASKS 32
#define VSWIFT_FC_MAX_OPS 8
#define VSWIFT_FC_MISS (-1)

enum vswift_fc_op_kind {
    VSWIFT_FC_OP_NONE = 0,
    VSWIFT_FC_OP_OUTPUT = 1,     /* arg32: slot in vswift_fc_ports; ends the list */
    VSWIFT_FC_OP_DROP = 2,       /* ends the list (an entry whose list ends without output drops too) */
    VSWIFT_FC_OP_SET_ETH_SRC = 3, /* arg64: MAC, first octet most significant */
    VSWIFT_FC_OP_SET_ETH_DST = 4,
    VSWIFT_FC_OP_SET_IPV4_SRC = 5, /* arg32 */
    VSWIFT_FC_OP_SET_IPV4_DST = 6,
    VSWIFT_FC_OP_SET_NW_TOS = 7, /* arg32: DSCP bits of the TOS byte (0xfc), ECN kept */
    VSWIFT_FC_OP_SET_NW_ECN = 8, /* arg32: ECN bits (0x03), DSCP kept */
    VSWIFT_FC_OP_SET_TTL = 9,    /* arg32 */
    VSWIFT_FC_OP_DEC_TTL = 10,
    VSWIFT_FC_OP_SET_TP_SRC = 11, /* arg32: TCP/UDP port */
    VSWIFT_FC_OP_SET_TP_DST = 12,
    VSWIFT_FC_OP_POP_VLAN = 13,
    VSWIFT_FC_OP_PUSH_VLAN = 14, /* arg32: TPID (the new tag's TCI is 0, as push_vlan) */
    VSWIFT_FC_OP_LISP_ENCAP = 15, /* arg32: slot in vswift_fc_lisp (an outer IPv4 or IPv6 template) */
    VSWIFT_FC_OP_KINDS
};

struct vswift_fc_op {
    __u32 kind;
    __u32 arg32;
    __u64 arg64;
};

struct vswift_fc_entry {
    __u32 op_count;
    __u32 pad;
    struct vswift_fc_op ops[VSWIFT_FC_MAX_OPS];
};

/* Per CPU, per entry: what the entry forwarded (or dropped) in XDP. */
struct vswift_fc_counter {
    __u64 packets;
    __u64 bytes;
    __u64 last_used_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the last hit on this CPU */
};

/* A LISP encapsulation (LISP.encapsulate's outer headers, RFC 9300 §5.1): outer Ethernet + IPv4
 * or IPv6 + UDP + LISP. TTL and TOS follow LISP.OuterFields (outer = inner & mask | value). */
struct vswift_fc_lisp {
    __u64 eth_dst;
    __u64 eth_src;
    __u32 src;         /* the local RLOC (IPv4) */
    __u32 dst;         /* the remote RLOC (IPv4) */
    __u32 instance_id; /* low 24 bits */
    __u16 udp_dst;     /* 4341 */
    __u8 ttl_mask, ttl_value, tos_mask, tos_value;
    __u8 family;       /* 4 (src, dst) or 6 (src6, dst6) */
    __u8 pad0;
    __u16 mtu;         /* the egress device's MTU: a larger outer packet is left to the workers */
    __u8 pad[2];
    __u8 src6[16];     /* network order */
    __u8 dst6[16];
};

/* The longest UDP payload (inner packet + 16) whose checksum an IPv6 encapsulation computes: the
 * chunked sum below covers 16 × 256 + 252 + 3 bytes; a longer packet is left to the workers. */
#define VSFC_CSUM_MAX 4096

#define VSWIFT_FC_LISP_TEMPLATES 256

struct vswift_fc_control {
    __u32 enabled;    /* 0: every frame is a miss (the program is then today's plus this read) */
    __u32 mask_count; /* masks in use: slots 0..mask_count-1 of vswift_fc_masks */
};

struct vswift_fc_table_key {
    __u32 mask_slot;
    __u32 pad;
    struct vswift_flow_key masked;
};

/* The compact keys: (mask slot, the masked words the mask names, in word order, zero after). */
#define VSWIFT_FC_COMPACT_SMALL 2
#define VSWIFT_FC_COMPACT_LARGE 6

struct vswift_fc_table_key2 {
    __u32 mask_slot;
    __u32 pad;
    __u64 w[VSWIFT_FC_COMPACT_SMALL];
};

struct vswift_fc_table_key6 {
    __u32 mask_slot;
    __u32 pad;
    __u64 w[VSWIFT_FC_COMPACT_LARGE];
};

/* A mask slot (XDPFlowCache writes it; the shape bits change as entries come and go). */
struct vswift_fc_mask {
    struct vswift_flow_key mask;
    /* Bit vsfc_shape_bit(masked w0, w1) is set while the slot has an entry with that signature
     * (set before the entry is inserted, cleared after the last such entry is deleted). */
    __u64 shape[4];
    /* Size class: 2 or 6 (the compact table of that size; word[i] & 15 and cmask[i] name the
     * i-th word, cmask 0 past the last), or 16 (the full key in vswift_fc_table). */
    __u64 cmask[VSWIFT_FC_COMPACT_LARGE];
    __u8 word[8];
    __u32 size_class;
    __u32 pad;
};

struct vswift_fc_scratch {
    struct vswift_flow_key key;
    struct vswift_flow_loc loc;
    struct vswift_fc_table_key lookup;
    __u32 ip_id; /* the outer IPv4 identification of this CPU's next encapsulation (DF is set) */
    __u32 pad;
};

enum vswift_fc_stat {
    VSWIFT_FC_STAT_HIT,       /* executed in XDP */
    VSWIFT_FC_STAT_MISS,      /* no entry (cache on) */
    VSWIFT_FC_STAT_PUNT,      /* an entry, but its actions cannot be done exactly here */
    VSWIFT_FC_STAT_FAILED,    /* bpf_xdp_adjust_head refused (no headroom): dropped */
    VSWIFT_FC_STAT_MAX
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vswift_fc_control);
} vswift_fc_control SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, VSWIFT_FC_MAX_MASKS);
    __type(key, __u32);
    __type(value, struct vswift_fc_mask);
} vswift_fc_masks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct vswift_fc_table_key);
    __type(value, __u32);
} vswift_fc_table SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct vswift_fc_table_key2);
    __type(value, __u32);
} vswift_fc_table2 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct vswift_fc_table_key6);
    __type(value, __u32);
} vswift_fc_table6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vswift_fc_entry);
} vswift_fc_entries SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vswift_fc_counter);
} vswift_fc_counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} vswift_fc_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, VSWIFT_FC_LISP_TEMPLATES);
    __type(key, __u32);
    __type(value, struct vswift_fc_lisp);
} vswift_fc_lisp SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} vswift_fc_port SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vswift_fc_scratch);
} vswift_fc_scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, VSWIFT_FC_STAT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} vswift_fc_stats SEC(".maps");

static __always_inline void vsfc_count(__u32 stat)
{
    __u64 *value = bpf_map_lookup_elem(&vswift_fc_stats, &stat);
    if (value)
        *value += 1;
}

static __always_inline void vsfc_put16(__u8 *p, __u16 v)
{
    p[0] = v >> 8;
    p[1] = v;
}

static __always_inline void vsfc_put32(__u8 *p, __u32 v)
{
    vsfc_put16(p, v >> 16);
    vsfc_put16(p + 2, v);
}

static __always_inline void vsfc_put_mac(__u8 *p, __u64 mac)
{
    vsfc_put16(p, mac >> 32);
    vsfc_put32(p + 2, mac);
}

/* RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), folded as Checksum.fold (so the bytes equal the workers'). */
static __always_inline __u16 vsfc_fold(__u64 s)
{
    s = (s >> 32) + (s & 0xffffffff);
    s = (s >> 32) + (s & 0xffffffff);
    s = (s >> 16) + (s & 0xffff);
    s = (s >> 16) + (s & 0xffff);
    return (__u16)s;
}

static __always_inline __u16 vsfc_update16(__u16 check, __u16 old, __u16 new)
{
    return ~vsfc_fold((__u64)(__u16)~check + (__u16)~old + new);
}

static __always_inline __u16 vsfc_update32(__u16 check, __u32 old, __u32 new)
{
    return ~vsfc_fold((__u64)(__u16)~check + (__u32)~old + new);
}

/* A computed UDP checksum of 0 is sent as 0xffff (0 means "none"). */
static __always_inline __u16 vsfc_udp(__u16 check) { return check ? check : 0xffff; }

/* The IPv4 TTL or IPv6 hop limit at `loc`, or -1 when the frame is not IP. */
static __always_inline int vsfc_ttl(void *data, void *end, struct vswift_flow_loc *loc)
{
    const __u8 *p;
    if (loc->ip_version == 4 && (p = vsk_at(data, end, loc->l3, 20)))
        return p[8];
    if (loc->ip_version == 6 && (p = vsk_at(data, end, loc->l3, 40)))
        return p[7];
    return -1;
}

/* Whether every op of `e` can be done here exactly as HeaderRewrite would; checked before the
 * frame is touched (a punted frame reaches the workers unchanged). Follows the ops' effects on
 * what the checks depend on: the TTL and the VLAN tags. */
static __always_inline int vsfc_expressible(struct xdp_md *ctx, struct vswift_fc_entry *e, struct vswift_flow_loc *loc)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    int ttl = vsfc_ttl(data, end, loc);
    int tags = loc->tags;
    int more_tags = loc->more_tags;
    int ip = loc->ip_version;
    __u32 n = e->op_count;
    __s64 output = -1;

    for (__u32 i = 0; i < VSWIFT_FC_MAX_OPS; i++) {
        if (i >= n)
            break;
        struct vswift_fc_op *op = &e->ops[i];
        switch (op->kind) {
        case VSWIFT_FC_OP_SET_TTL:
            if (ttl >= 0)
                ttl = op->arg32 & 0xff;
            break;
        case VSWIFT_FC_OP_DEC_TTL:
            /* The worker drops (and counts) a packet whose TTL runs out: let it. */
            if (ip && ttl >= 0) {
                if (ttl <= 1)
                    return 0;
                ttl -= 1;
            }
            break;
        case VSWIFT_FC_OP_SET_TP_SRC:
        case VSWIFT_FC_OP_SET_TP_DST:
            /* SCTP's CRC32c update is not done here. */
            if (ip && loc->has_l4 && loc->proto == 132)
                return 0;
            break;
        case VSWIFT_FC_OP_POP_VLAN:
            /* Popping a tag in front of a tag the parse stopped at would expose headers the
             * location does not know. */
            if (more_tags)
                return 0;
            if (tags > 0)
                tags -= 1;
            break;
        case VSWIFT_FC_OP_PUSH_VLAN:
            /* A third tag hides L3 from HeaderRewrite; simplest to leave that to the workers. */
            if (tags >= 2 || more_tags)
                return 0;
            tags += 1;
            break;
        case VSWIFT_FC_OP_LISP_ENCAP: {
            /* LISP.encapsulate carries IP only; VLAN tags are left behind. */
            if (!ip)
                return 0;
            __u32 slot = op->arg32;
            struct vswift_fc_lisp *t = bpf_map_lookup_elem(&vswift_fc_lisp, &slot);
            if (!t || (t->family != 4 && t->family != 6))
                return 0;
            /* IPv6: the UDP checksum is computed over at most VSFC_CSUM_MAX bytes. */
            if (t->family == 6 && (__u64)(end - data) + 16 > VSFC_CSUM_MAX)
                return 0;
            /* The workers' compare (Worker+PathMTU): frame - 14 + 36 (IPv4) or 56 (IPv6) over
             * the egress MTU goes their way (fragmentation or ICMP too big, RFC 9300 §7.1). The
             * frame as the ops before left it: 4 bytes per tag pushed or popped. */
            __s64 length = (__s64)(end - data) + 4 * (tags - (int)loc->tags);
            if (length - 14 + (t->family == 6 ? 56 : 36) > (__s64)t->mtu)
                return 0;
            break;
        }
        case VSWIFT_FC_OP_OUTPUT:
            if (output < 0)
                output = op->arg32; /* the first ends the list (vsfc_run) */
            break;
        case VSWIFT_FC_OP_NONE:
        case VSWIFT_FC_OP_DROP:
        case VSWIFT_FC_OP_SET_ETH_SRC:
        case VSWIFT_FC_OP_SET_ETH_DST:
        case VSWIFT_FC_OP_SET_IPV4_SRC:
        case VSWIFT_FC_OP_SET_IPV4_DST:
        case VSWIFT_FC_OP_SET_NW_TOS:
        case VSWIFT_FC_OP_SET_NW_ECN:
            break;
        default:
            return 0; /* an op this program does not know */
        }
    }
    /* The output's target is chosen now, before the frame is touched: user space clears the
     * DEVMAP slot of a device the kernel cannot redirect to (a veth whose peer runs no NAPI),
     * and the fallback (XDP_PASS, a sentinel) sends the frame to the workers untouched instead
     * of losing it. vsfc_run's OUTPUT returns XDP_REDIRECT to the target set here. */
    if (output >= 0 && bpf_redirect_map(&vswift_fc_ports, (__u32)output, XDP_PASS) != XDP_REDIRECT)
        return 0;
    return 1;
}

/* setIPv4Source/Destination: address, header checksum, TCP/UDP checksum through the pseudo-header. */
static __always_inline void vsfc_set_ipv4_address(void *data, void *end, struct vswift_flow_loc *loc, __u32 field, __u32 new)
{
    __u8 *ip = (__u8 *)vsk_at(data, end, loc->l3, 20);
    if (loc->ip_version != 4 || !ip)
        return;
    __u32 old = vsk_be32(ip + field);
    if (old == new)
        return;
    vsfc_put32(ip + field, new);
    vsfc_put16(ip + 10, vsfc_update32(vsk_be16(ip + 10), old, new));
    if (!loc->has_l4)
        return;
    __u8 *l4;
    if (loc->proto == 6 && loc->l4_len >= 20 && (l4 = (__u8 *)vsk_at(data, end, loc->l4, 20))) {
        vsfc_put16(l4 + 16, vsfc_update32(vsk_be16(l4 + 16), old, new));
    } else if (loc->proto == 17 && loc->l4_len >= 8 && (l4 = (__u8 *)vsk_at(data, end, loc->l4, 8))) {
        __u16 check = vsk_be16(l4 + 6);
        if (check)
            vsfc_put16(l4 + 6, vsfc_udp(vsfc_update32(check, old, new)));
    }
}

/* setNetworkTOS / setECN: `bits` of the IPv4 TOS (header checksum updated) or IPv6 traffic class. */
static __always_inline void vsfc_set_traffic_class(void *data, void *end, struct vswift_flow_loc *loc, __u8 bits, __u8 value)
{
    __u8 *ip = (__u8 *)vsk_at(data, end, loc->l3, 20);
    if (!ip)
        return;
    if (loc->ip_version == 4) {
        __u16 old = vsk_be16(ip);
        __u16 new = (old & ~(__u16)bits) | (value & bits);
        vsfc_put16(ip, new);
        vsfc_put16(ip + 10, vsfc_update16(vsk_be16(ip + 10), old, new));
    } else if (loc->ip_version == 6) {
        __u32 word = vsk_be32(ip);
        vsfc_put32(ip, (word & ~((__u32)bits << 20)) | (__u32)(value & bits) << 20);
    }
}

/* setTTL (set) and decrementTTL (set = 0): IPv4 TTL (header checksum updated) or IPv6 hop limit. */
static __always_inline void vsfc_ttl_op(void *data, void *end, struct vswift_flow_loc *loc, int set, __u8 ttl)
{
    __u8 *ip = (__u8 *)vsk_at(data, end, loc->l3, 20);
    if (!ip)
        return;
    if (loc->ip_version == 4) {
        __u16 old = vsk_be16(ip + 8);
        __u16 new = set ? ((__u16)ttl << 8 | (old & 0xff)) : old - 0x100;
        vsfc_put16(ip + 8, new);
        vsfc_put16(ip + 10, vsfc_update16(vsk_be16(ip + 10), old, new));
    } else if (loc->ip_version == 6) {
        ip[7] = set ? ttl : ip[7] - 1;
    }
}

/* setTransportSource/Destination for TCP and UDP (SCTP was punted). */
static __always_inline void vsfc_set_port(void *data, void *end, struct vswift_flow_loc *loc, __u32 field, __u16 port)
{
    __u8 *l4;
    if (!loc->ip_version || !loc->has_l4)
        return;
    if (loc->proto == 6 && loc->l4_len >= 20 && (l4 = (__u8 *)vsk_at(data, end, loc->l4, 20))) {
        __u16 old = vsk_be16(l4 + field);
        vsfc_put16(l4 + field, port);
        vsfc_put16(l4 + 16, vsfc_update16(vsk_be16(l4 + 16), old, port));
    } else if (loc->proto == 17 && loc->l4_len >= 8 && (l4 = (__u8 *)vsk_at(data, end, loc->l4, 8))) {
        __u16 old = vsk_be16(l4 + field);
        vsfc_put16(l4 + field, port);
        __u16 check = vsk_be16(l4 + 6);
        if (check)
            vsfc_put16(l4 + 6, vsfc_udp(vsfc_update16(check, old, port)));
    }
}

/* Moves the 12 MAC bytes by `delta` (-4: a tag pushed, +4: popped) with the head; 0 or -1. The
 * caller checked the length (push: 14 bytes, pop: 18), so the frame keeps at least 14. */
static __always_inline int vsfc_move_macs(struct xdp_md *ctx, int delta, __u16 tpid)
{
    __u8 macs[12];
    const __u8 *p = vsk_at((void *)(long)ctx->data, (void *)(long)ctx->data_end, 0, 12);
    if (!p)
        return -1;
    __builtin_memcpy(macs, p, 12);
    if (bpf_xdp_adjust_head(ctx, delta))
        return -1;
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u8 *q;
    if (delta < 0) {
        if (!(q = (__u8 *)vsk_at(data, end, 0, 18)))
            return -1;
        __builtin_memcpy(q, macs, 12);
        vsfc_put16(q + 12, tpid);
        vsfc_put16(q + 14, 0);
    } else {
        if (!(q = (__u8 *)vsk_at(data, end, 0, 14)))
            return -1;
        __builtin_memcpy(q, macs, 12);
    }
    return 0;
}

/* Shifts every header offset after a tag push (+4) or pop (-4). */
static __always_inline void vsfc_shift(struct vswift_flow_loc *loc, int by)
{
    loc->l3 += by;
    loc->l4 += by;
}

/* LISP.mix and LISP.finish (MurmurHash3's finalizer): the flow hash behind the UDP source port. */
static __always_inline __u64 vsfc_mix(__u64 h, __u64 w)
{
    __u64 x = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return x ^ (x >> 29);
}

static __always_inline __u64 vsfc_finish(__u64 h)
{
    __u64 x = h ^ (h >> 33);
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static __always_inline int vsfc_has_ports(__u8 proto) { return proto == 6 || proto == 17 || proto == 132; }

/* The one's-complement sum (bpf_csum_diff's 32-bit partial) of `len` bytes at `base`, added to
 * `sum`: chunks of constant size, so the verifier sees every packet access bounded; a trailing
 * 1–3 bytes are summed zero-padded (they start at an even offset, RFC 1071 §4.1). -1: out of
 * range. Every program including this header has it (one per object). */
__attribute__((noinline)) __s64 vsfc_csum(struct xdp_md *ctx, __u32 base, __u32 len, __s64 sum)
{
    /* A global function: the verifier checks it once, not once per path that reaches it. */
    if (!ctx)
        return -1;
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u32 off = 0;
    const __u8 *q;
    if (len > VSFC_CSUM_MAX)
        return -1;
    for (int i = 0; i < VSFC_CSUM_MAX / 256; i++) {
        if (len - off < 256)
            break;
        if (!(q = vsk_at(data, end, base + off, 256)))
            return -1;
        sum = bpf_csum_diff(0, 0, (__be32 *)q, 256, sum);
        off += 256;
    }
#define VSFC_CSUM_STEP(n)                                                   \
    if (len - off >= n) {                                                    \
        if (!(q = vsk_at(data, end, base + off, n)))                         \
            return -1;                                                       \
        sum = bpf_csum_diff(0, 0, (__be32 *)q, n, sum);                      \
        off += n;                                                            \
    }
    VSFC_CSUM_STEP(128)
    VSFC_CSUM_STEP(64)
    VSFC_CSUM_STEP(32)
    VSFC_CSUM_STEP(16)
    VSFC_CSUM_STEP(8)
    VSFC_CSUM_STEP(4)
#undef VSFC_CSUM_STEP
    __u32 rest = len - off;
    if (rest) {
        __u8 tail[4] = {};
        if (!(q = vsk_at(data, end, base + off, 1)))
            return -1;
        tail[0] = q[0];
        if (rest > 1) {
            if (!(q = vsk_at(data, end, base + off, 2)))
                return -1;
            tail[1] = q[1];
        }
        if (rest > 2) {
            if (!(q = vsk_at(data, end, base + off, 3)))
                return -1;
            tail[2] = q[2];
        }
        sum = bpf_csum_diff(0, 0, (__be32 *)tail, 4, sum);
    }
    return sum;
}

/* The IPv6 outer headers of LISP.encapsulate (the frame's inner packet already starts at `l3` and
 * ends at udp_length - 16 after it): Ethernet, IPv6 (RFC 8200 §3), UDP with its checksum over
 * the pseudo-header (§8.1) and the whole datagram, 0 sent as 0xffff (RFC 768), LISP. 0 or -1. */
static __always_inline int vsfc_lisp_outer6(struct xdp_md *ctx, struct vswift_fc_lisp *t, __u32 l3, __u32 udp_length,
                                            __u8 tos, __u8 ttl, __u32 sport)
{
    if (bpf_xdp_adjust_head(ctx, (int)l3 - 70))
        return -1;
    __u8 *p = (__u8 *)vsk_at((void *)(long)ctx->data, (void *)(long)ctx->data_end, 0, 70);
    if (!p)
        return -1;
    vsfc_put_mac(p, t->eth_dst);
    vsfc_put_mac(p + 6, t->eth_src);
    vsfc_put16(p + 12, 0x86dd);
    vsfc_put32(p + 14, 0x60000000 | (__u32)tos << 20);
    vsfc_put32(p + 18, udp_length << 16 | 17 << 8 | ttl);
    __builtin_memcpy(p + 22, t->src6, 16);
    __builtin_memcpy(p + 38, t->dst6, 16);
    vsfc_put32(p + 54, sport << 16 | t->udp_dst);
    vsfc_put32(p + 58, udp_length << 16);
    vsfc_put32(p + 62, 0x48000000);
    vsfc_put32(p + 66, (t->instance_id & 0xffffff) << 8 | 0x01);

    __u8 pseudo[40];
    __builtin_memcpy(pseudo, t->src6, 16);
    __builtin_memcpy(pseudo + 16, t->dst6, 16);
    vsfc_put32(pseudo + 32, udp_length);
    vsfc_put32(pseudo + 36, 17);
    __s64 sum = bpf_csum_diff(0, 0, (__be32 *)pseudo, 40, 0);
    if (sum < 0)
        return -1;
    sum = vsfc_csum(ctx, 54, udp_length, sum);
    if (sum < 0)
        return -1;
    __u16 check = ~vsfc_fold((__u64)(__u32)sum);
    if (!check)
        check = 0xffff;
    /* The sum is in memory order (csum_partial): stored as is. */
    p = (__u8 *)vsk_at((void *)(long)ctx->data, (void *)(long)ctx->data_end, 0, 70);
    if (!p)
        return -1;
    __builtin_memcpy(p + 60, &check, 2);
    return 0;
}

/* LISP.encapsulate with the outer headers of template `slot`, byte for byte: the inner packet
 * (IPv4 or IPv6, VLAN tags and Ethernet padding left behind) behind outer Ethernet, IPv4 (DF,
 * checksum computed) or IPv6 (traffic class, flow label 0), UDP (source port 0xc000 | 14 bits of
 * the inner flow hash; checksum 0 over IPv4, as RFC 9300 §5.3 allows, computed over IPv6) and the
 * LISP header (L and I bits, instance id, LSBs 1). 0 or -1. */
static __always_inline int vsfc_lisp_encap(struct xdp_md *ctx, struct vswift_fc_scratch *s, __u32 slot)
{
    struct vswift_fc_lisp *t = bpf_map_lookup_elem(&vswift_fc_lisp, &slot);
    if (!t)
        return -1;
    struct vswift_flow_loc *loc = &s->loc;
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u32 l3 = loc->l3;
    if (l3 > 22)
        return -1;
    const __u8 *ip = vsk_at(data, end, l3, 40);
    if (!ip && !(loc->ip_version == 4 && (ip = vsk_at(data, end, l3, 20))))
        return -1;
    __u32 inner_length = (__u32)(end - data) - l3;
    __u8 tos, ttl;
    __u64 hash;
    __u64 frag = s->key.w[2] >> 56;
    if (loc->ip_version == 4) {
        __u32 total = vsk_be16(ip + 2);
        if (total >= 20 && total < inner_length)
            inner_length = total;
        tos = ip[1];
        ttl = ip[8];
        __u32 ihl = (__u32)(ip[0] & 0x0f) << 2;
        __u32 ports = 0;
        const __u8 *l4;
        if (frag == 0 && vsfc_has_ports(ip[9]) && ihl >= 20 && ihl + 4 <= inner_length &&
            (l4 = vsk_at(data, end, l3 + ihl, 4)))
            ports = vsk_be32(l4);
        hash = vsfc_finish(vsfc_mix(vsfc_mix(4, vsk_be64(ip + 12)), (__u64)ip[9] << 32 | ports));
    } else {
        __u32 total = 40 + vsk_be16(ip + 4);
        if (total > 40 && total < inner_length)
            inner_length = total;
        tos = (vsk_be16(ip) >> 4) & 0xff;
        ttl = ip[7];
        __u32 ports = 0;
        const __u8 *l4;
        if (loc->has_l4 && frag == 0 && vsfc_has_ports(loc->proto) && loc->l4 + 4 <= l3 + inner_length &&
            (l4 = vsk_at(data, end, loc->l4, 4)))
            ports = vsk_be32(l4);
        __u64 h = vsfc_mix(6, vsk_be64(ip + 8));
        h = vsfc_mix(h, vsk_be64(ip + 16));
        h = vsfc_mix(h, vsk_be64(ip + 24));
        h = vsfc_mix(h, vsk_be64(ip + 32));
        hash = vsfc_finish(vsfc_mix(h, (__u64)ip[6] << 32 | ports));
    }
    tos = (tos & t->tos_mask) | t->tos_value;
    ttl = (ttl & t->ttl_mask) | t->ttl_value;

    /* Ethernet padding is not part of the packet (as LISP.encapsulate and the kernel's ip_rcv). */
    __u32 frame_length = (__u32)(end - data);
    if (l3 + inner_length < frame_length && bpf_xdp_adjust_tail(ctx, (int)(l3 + inner_length) - (int)frame_length))
        return -1;
    __u32 udp_length = inner_length + 16;
    __u32 sport = 0xc000 | (__u32)(hash & 0x3fff);
    if (t->family == 6)
        return vsfc_lisp_outer6(ctx, t, l3, udp_length, tos, ttl, sport);

    __u16 id = s->ip_id;
    s->ip_id = id + 1;
    if (bpf_xdp_adjust_head(ctx, (int)l3 - 50))
        return -1;
    __u8 *p = (__u8 *)vsk_at((void *)(long)ctx->data, (void *)(long)ctx->data_end, 0, 50);
    if (!p)
        return -1;
    __u32 total_length = udp_length + 20;
    vsfc_put_mac(p, t->eth_dst);
    vsfc_put_mac(p + 6, t->eth_src);
    vsfc_put16(p + 12, 0x0800);
    vsfc_put32(p + 14, 0x45000000 | (__u32)tos << 16 | total_length);
    vsfc_put32(p + 18, (__u32)id << 16 | 0x4000);
    vsfc_put32(p + 22, (__u32)ttl << 24 | 17 << 16);
    vsfc_put32(p + 26, t->src);
    vsfc_put32(p + 30, t->dst);
    /* LISP.ipv4HeaderChecksum */
    __u32 sum = 0x4500 | tos;
    sum += total_length + id + 0x4000;
    sum += (__u32)ttl << 8 | 17;
    sum += (t->src >> 16) + (t->src & 0xffff) + (t->dst >> 16) + (t->dst & 0xffff);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    vsfc_put16(p + 24, ~sum);
    vsfc_put32(p + 34, sport << 16 | t->udp_dst);
    vsfc_put32(p + 38, udp_length << 16);
    vsfc_put32(p + 42, 0x48000000);
    vsfc_put32(p + 46, (t->instance_id & 0xffffff) << 8 | 0x01);
    return 0;
}

/* Runs the ops of `e` (already checked by vsfc_expressible); returns the XDP verdict. */
static __always_inline int vsfc_run(struct xdp_md *ctx, struct vswift_fc_entry *e, struct vswift_fc_scratch *s)
{
    struct vswift_flow_loc *loc = &s->loc;
    __u32 n = e->op_count;
    for (__u32 i = 0; i < VSWIFT_FC_MAX_OPS; i++) {
        if (i >= n)
            break;
        struct vswift_fc_op *op = &e->ops[i];
        void *data = (void *)(long)ctx->data;
        void *end = (void *)(long)ctx->data_end;
        __u8 *eth = (__u8 *)vsk_at(data, end, 0, 14);
        if (!eth)
            return XDP_DROP;
        switch (op->kind) {
        case VSWIFT_FC_OP_OUTPUT:
            /* The target vsfc_expressible's bpf_redirect_map set (the per-CPU redirect state
             * holds until this program returns). */
            return XDP_REDIRECT;
        case VSWIFT_FC_OP_DROP:
            return XDP_DROP;
        case VSWIFT_FC_OP_SET_ETH_SRC:
            vsfc_put_mac(eth + 6, op->arg64);
            break;
        case VSWIFT_FC_OP_SET_ETH_DST:
            vsfc_put_mac(eth, op->arg64);
            break;
        case VSWIFT_FC_OP_SET_IPV4_SRC:
            vsfc_set_ipv4_address(data, end, loc, 12, op->arg32);
            break;
        case VSWIFT_FC_OP_SET_IPV4_DST:
            vsfc_set_ipv4_address(data, end, loc, 16, op->arg32);
            break;
        case VSWIFT_FC_OP_SET_NW_TOS:
            vsfc_set_traffic_class(data, end, loc, 0xfc, op->arg32);
            break;
        case VSWIFT_FC_OP_SET_NW_ECN:
            vsfc_set_traffic_class(data, end, loc, 0x03, op->arg32);
            break;
        case VSWIFT_FC_OP_SET_TTL:
            vsfc_ttl_op(data, end, loc, 1, op->arg32);
            break;
        case VSWIFT_FC_OP_DEC_TTL:
            vsfc_ttl_op(data, end, loc, 0, 0);
            break;
        case VSWIFT_FC_OP_SET_TP_SRC:
            vsfc_set_port(data, end, loc, 0, op->arg32);
            break;
        case VSWIFT_FC_OP_SET_TP_DST:
            vsfc_set_port(data, end, loc, 2, op->arg32);
            break;
        case VSWIFT_FC_OP_POP_VLAN:
            /* popVLAN: only an outermost 802.1Q/802.1ad tag, in a frame of at least 18 bytes. */
            if (loc->tags == 0 || !vsk_at(data, end, 0, 18))
                break;
            if (vsfc_move_macs(ctx, 4, 0)) {
                vsfc_count(VSWIFT_FC_STAT_FAILED);
                return XDP_DROP;
            }
            loc->tags -= 1;
            vsfc_shift(loc, -4);
            break;
        case VSWIFT_FC_OP_PUSH_VLAN:
            if (vsfc_move_macs(ctx, -4, op->arg32)) {
                vsfc_count(VSWIFT_FC_STAT_FAILED);
                return XDP_DROP;
            }
            loc->tags += 1;
            vsfc_shift(loc, 4);
            break;
        case VSWIFT_FC_OP_LISP_ENCAP:
            if (vsfc_lisp_encap(ctx, s, op->arg32)) {
                vsfc_count(VSWIFT_FC_STAT_FAILED);
                return XDP_DROP;
            }
            /* The frame is now the outer packet: no header of the key is where it was. */
            loc->ip_version = 0;
            loc->has_l4 = 0;
            loc->tags = 0;
            break;
        default:
            break;
        }
    }
    /* An action list without output drops the packet (OpenFlow). */
    return XDP_DROP;
}

/* The shape filter's bit for a key whose masked words 0 and 1 are these (XDPFlowCache.shapeBit):
 * in_port, dl_type and the VLAN TCI (word 0) and nw_proto (word 1's bits 48-55) through a
 * multiplicative hash, the top 8 bits. */
static __always_inline __u32 vsfc_shape_bit(__u64 w0, __u64 w1)
{
    return (__u32)(((w0 ^ ((w1 >> 48 & 0xff) << 24)) * 0x9e3779b97f4a7c15ULL) >> 56);
}

/* The entry id whose (mask, masked key) matches s->key, scanning the first `mask_count` mask
 * slots in order, or NULL. */
static __always_inline __u32 *vsfc_find(struct vswift_fc_scratch *s, __u32 mask_count)
{
    __u32 *entry_id = 0;
    for (__u32 m = 0; m < VSWIFT_FC_MAX_MASKS; m++) {
        if (m >= mask_count)
            break;
        __u32 slot = m;
        struct vswift_fc_mask *mask = bpf_map_lookup_elem(&vswift_fc_masks, &slot);
        if (!mask)
            break;
        __u32 bit = vsfc_shape_bit(s->key.w[0] & mask->mask.w[0], s->key.w[1] & mask->mask.w[1]);
        if (!(mask->shape[bit >> 6] & (1ULL << (bit & 63))))
            continue;
        if (mask->size_class == VSWIFT_FC_COMPACT_SMALL) {
            struct vswift_fc_table_key2 k = {.mask_slot = m};
#pragma unroll
            for (int i = 0; i < VSWIFT_FC_COMPACT_SMALL; i++)
                k.w[i] = s->key.w[mask->word[i] & (VSK_WORDS - 1)] & mask->cmask[i];
            entry_id = bpf_map_lookup_elem(&vswift_fc_table2, &k);
        } else if (mask->size_class == VSWIFT_FC_COMPACT_LARGE) {
            struct vswift_fc_table_key6 k = {.mask_slot = m};
#pragma unroll
            for (int i = 0; i < VSWIFT_FC_COMPACT_LARGE; i++)
                k.w[i] = s->key.w[mask->word[i] & (VSK_WORDS - 1)] & mask->cmask[i];
            entry_id = bpf_map_lookup_elem(&vswift_fc_table6, &k);
        } else {
            s->lookup.mask_slot = m;
            s->lookup.pad = 0;
#pragma unroll
            for (int w = 0; w < VSK_WORDS; w++)
                s->lookup.masked.w[w] = s->key.w[w] & mask->mask.w[w];
            entry_id = bpf_map_lookup_elem(&vswift_fc_table, &s->lookup);
        }
        if (entry_id)
            break;
    }
    return entry_id;
}

/* The cache's verdict for this frame: an XDP action on a hit, VSWIFT_FC_MISS otherwise (a miss,
 * the cache off, or an entry this program must not execute). */
static __always_inline int vswift_flowcache(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct vswift_fc_control *control = bpf_map_lookup_elem(&vswift_fc_control, &zero);
    if (!control || !control->enabled)
        return VSWIFT_FC_MISS;
    __u32 mask_count = control->mask_count;
    if (mask_count == 0) {
        vsfc_count(VSWIFT_FC_STAT_MISS);
        return VSWIFT_FC_MISS;
    }
    __u32 *in_port = bpf_map_lookup_elem(&vswift_fc_port, &zero);
    struct vswift_fc_scratch *s = bpf_map_lookup_elem(&vswift_fc_scratch, &zero);
    if (!in_port || !s)
        return VSWIFT_FC_MISS;
    vswift_extract_key(ctx, *in_port, &s->key, &s->loc);

    __u32 *entry_id = vsfc_find(s, mask_count);
    if (!entry_id) {
        vsfc_count(VSWIFT_FC_STAT_MISS);
        return VSWIFT_FC_MISS;
    }
    __u32 id = *entry_id;
    struct vswift_fc_entry *entry = bpf_map_lookup_elem(&vswift_fc_entries, &id);
    if (!entry || !vsfc_expressible(ctx, entry, &s->loc)) {
        vsfc_count(VSWIFT_FC_STAT_PUNT);
        return VSWIFT_FC_MISS;
    }
    struct vswift_fc_counter *counter = bpf_map_lookup_elem(&vswift_fc_counters, &id);
    if (counter) {
        counter->packets += 1;
        counter->bytes += (__u64)(ctx->data_end - ctx->data);
        counter->last_used_ns = bpf_ktime_get_ns();
    }
    vsfc_count(VSWIFT_FC_STAT_HIT);
    return vsfc_run(ctx, entry, s);
}

#endif
