// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* LISP decapsulation in XDP (DESIGN.md, "XDP flow cache", LISP decapsulation): an underlay
 * device's program unwraps a LISP packet and runs the cached megaflow of its inner frame, exactly
 * as a worker would receive it (Worker+Tunnel.swift receiveTunnelled, LISP.parseOuter,
 * LISP.decapsulate), or leaves the frame untouched for the AF_XDP path.
 *
 * Stage 1, the trust boundary: a decap entry (vswift_fc_decap) is keyed by everything the worker
 * checks before it unwraps a packet for a LISP port with a fixed remote_ip and key: the arrival
 * device, the outer family, destination (the local RLOC), source (remote_ip), UDP destination
 * port and instance id. User space installs one per (such port, accepted underlay endpoint) and
 * names the port the worker would choose; a frame no entry names is the workers' (they refuse or
 * count it). Stage 2: the inner frame's key (in_port = the LISP port's XDP id, tun_id/tun_src/
 * tun_dst from the outer headers) is computed from the untouched frame and looked up in the
 * megaflow masks; only a hit changes the frame.
 *
 * Punted (left whole to the workers, which drop and count, or take it exactly): anything
 * parseOuter calls malformed, encrypted or a bad inner length (outer IPv4 options or fragments,
 * a wrong IPv4 header or UDP checksum, IPv6 extension headers, KK != 00, an inner packet that is
 * not IPv4/IPv6 or whose length does not fit), ECN CE over an inner Not-ECT packet and an inner
 * TTL that the outer one takes to 0 (RFC 6040 §4.2; RFC 9300 §5.3), a nonzero UDP checksum over
 * more than VSFC_CSUM_MAX bytes, and an entry whose actions cannot be done exactly. */
#ifndef VSWIFT_DECAP_H
#define VSWIFT_DECAP_H

#include "vswift_flowcache.h"

#define VSWIFT_FC_DECAP_ENTRIES 1024

/* Addresses in network order; an IPv4 address in addr[0..3], the rest zero. */
struct vswift_fc_decap_key {
    __u32 ifindex;     /* the arrival device */
    __u8 family;       /* 4 or 6 */
    __u8 pad;
    __u16 udp_port;    /* the outer UDP destination port, host order */
    __u32 instance_id; /* the LISP header's instance id, 0 without the I bit (as the worker) */
    __u8 dst[16];      /* the local RLOC */
    __u8 src[16];      /* the LISP port's remote_ip */
};

struct vswift_fc_decap {
    __u32 in_port; /* the LISP port's XDP id (XDPFlowCacheTranslation.inPortID) */
    __u32 slot;    /* its counters in vswift_fc_decap_counters */
};

/* Per CPU, per decap entry: packets and bytes (the decapsulated frame, as the worker's rx
 * counters of the LISP port) that were decapsulated and run here. */
struct vswift_fc_decap_counter {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1);
    __type(key, struct vswift_fc_decap_key);
    __type(value, struct vswift_fc_decap);
} vswift_fc_decap SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vswift_fc_decap_counter);
} vswift_fc_decap_counters SEC(".maps");

/* RFC 6040 §4.2 Figure 4 (LISP.ecnDecapsulationTable): nibble inner << 2 | outer; 4 = drop. */
#define VSDC_ECN_TABLE 0x3333321231114000ULL

/* The one's-complement sum of the 20-byte IPv4 header at `ip` is 0xffff (LISP.parseOuter). */
static __always_inline int vsdc_ipv4_header_ok(const __u8 *ip)
{
    __s64 sum = bpf_csum_diff(0, 0, (__be32 *)ip, 20, 0);
    return sum >= 0 && vsfc_fold((__u64)(__u32)sum) == 0xffff;
}

/* A nonzero UDP checksum verifies over the pseudo-header (RFC 768; RFC 8200 §8.1) and the
 * datagram at `udp` (`udp_length` bytes); zero is accepted over both families (RFC 6935), as
 * parseOuter accepts it. -1: cannot tell here (too long), punt. */
static __always_inline int vsdc_udp_ok(struct xdp_md *ctx, struct vswift_fc_decap_key *dk, __u32 udp,
                                       __u32 udp_length, __u16 check)
{
    if (!check)
        return 1;
    if (udp_length > VSFC_CSUM_MAX)
        return -1;
    /* The pseudo-header's words in any order (the sum commutes): both addresses as the key holds
     * them (an IPv4 address padded with zeros, which add nothing), then protocol and length. */
    __u8 rest[4];
    vsfc_put16(rest, 17);
    vsfc_put16(rest + 2, udp_length);
    __s64 sum = bpf_csum_diff(0, 0, (__be32 *)dk->dst, 32, 0);
    if (sum >= 0)
        sum = bpf_csum_diff(0, 0, (__be32 *)rest, 4, sum);
    if (sum < 0)
        return -1;
    sum = vsfc_csum(ctx, udp, udp_length, sum);
    if (sum < 0)
        return -1;
    return vsfc_fold((__u64)(__u32)sum) == 0xffff;
}

/* Stage 1's result: the inner header's offset (50 or 70), the inner packet's length, the inner
 * IP version with the TTL and TOS the outer header gives it, and the decap entry's counter slot. */
static __always_inline __s64 vsdc_pack(__u32 inner, __u32 packet_length, __u32 fields, __u32 slot)
{
    return (__s64)((__u64)(inner & 0x7f) | (__u64)(packet_length & 0xffff) << 8 | (__u64)(fields & 0xffffff) << 24 |
                   (__u64)(slot & 0x7fff) << 48);
}

/* Stage 2, for what stage 1 found (`decap`, packed by vsdc_pack): the inner frame's key
 * completed in the scratch, looked up, and only on a hit the frame made the one the worker would
 * process, and run. A function of its own: the verifier sees the offsets as bounded values, not as
 * the constants of each outer family (which would double its paths), and its stack is not added
 * to stage 1's. */
__attribute__((noinline)) int vsdc_inner(struct xdp_md *ctx, __u64 decap)
{
    __u32 zero = 0;
    struct vswift_fc_control *control = bpf_map_lookup_elem(&vswift_fc_control, &zero);
    struct vswift_fc_scratch *s = bpf_map_lookup_elem(&vswift_fc_scratch, &zero);
    if (!ctx || !control || !s)
        return VSWIFT_FC_MISS;
    /* Unpacked with masks, so the verifier sees every bound. */
    __u32 inner = decap & 0x7f;
    __u32 packet_length = (decap >> 8) & 0xffff;
    __u32 fields = (decap >> 24) & 0xffffff;
    __u32 counter_slot = (decap >> 48) & 0xffff;
    if (inner < 14)
        return VSWIFT_FC_MISS;
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u32 length = (__u32)(end - data);
    __u8 version = fields >> 16;
    __u8 new_ttl = fields >> 8;
    __u8 new_tos = fields;
    __u8 ecn = new_tos & 3;
    __u16 inner_type = version == 4 ? 0x0800 : 0x86dd;
    /* The inner frame's key, from the frame as it is (the inner headers at `inner`; the bytes
     * the decapsulation would trim after the packet change none of the extraction's checks,
     * which are bounded by the IP length fields parseOuter compared with the UDP payload). */
    struct vswift_flow_key *k = &s->key;
    struct vswift_flow_loc *loc = &s->loc;
    *loc = (struct vswift_flow_loc){};
    if (version == 4)
        vsk_parse_ipv4(data, end, inner, length, k, loc);
    else
        vsk_parse_ipv6(data, end, inner, length, k, loc);
    if (loc->ip_version != version)
        goto punt;
    k->w[1] = (k->w[1] & ~(0xffULL << 56)) | (__u64)new_tos << 56;
    k->w[2] = (k->w[2] & ~(0xffULL << 48)) | (__u64)new_ttl << 48;

    __u32 *entry_id = vsfc_find(s, control->mask_count);
    if (!entry_id)
        goto miss;
    __u32 id = *entry_id;
    struct vswift_fc_entry *fc = bpf_map_lookup_elem(&vswift_fc_entries, &id);
    if (!fc)
        goto punt;

    /* A hit: the frame becomes the inner frame the worker processes. What is overwritten is saved
     * first, so a punt after this puts the outer frame back byte for byte. */
    __u8 saved[28];
    __u8 *p = (__u8 *)vsk_at(data, end, inner - 14, 28);
    if (!p)
        goto punt;
    __builtin_memcpy(saved, p, 28);
    __u8 *ih = p + 14;
    if (version == 4) {
        __u16 word0 = vsk_be16(ih), ttl_word = vsk_be16(ih + 8);
        __u16 new_word0 = (word0 & 0xff00) | new_tos;
        __u16 new_ttl_word = (__u16)new_ttl << 8 | (ttl_word & 0xff);
        if (new_word0 != word0 || new_ttl_word != ttl_word) {
            __u16 check = vsfc_update16(vsk_be16(ih + 10), word0, new_word0);
            check = vsfc_update16(check, ttl_word, new_ttl_word);
            vsfc_put16(ih, new_word0);
            vsfc_put16(ih + 8, new_ttl_word);
            vsfc_put16(ih + 10, check);
        }
    } else {
        __u32 first = vsk_be32(ih);
        if (ecn != ((first >> 20) & 3))
            vsfc_put32(ih, (first & ~0x00300000U) | (__u32)ecn << 20);
        ih[7] = new_ttl;
    }
    if (bpf_xdp_adjust_head(ctx, (int)inner - 14)) {
        /* Refused (never seen: the head only moves forward here): put the inner header back. */
        p = (__u8 *)vsk_at((void *)(long)ctx->data, (void *)(long)ctx->data_end, inner - 14, 28);
        if (!p) {
            vsfc_count(VSWIFT_FC_STAT_FAILED);
            return XDP_DROP;
        }
        __builtin_memcpy(p, saved, 28);
        goto punt;
    }
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    if (!(p = (__u8 *)vsk_at(data, end, 0, 14)))
        return XDP_DROP;
    vsfc_put_mac(p, 0x020000000000ULL);
    vsfc_put_mac(p + 6, 0x020000000000ULL);
    vsfc_put16(p + 12, inner_type);
    vsfc_shift(loc, -(int)(inner - 14));
    /* The checks below read the offsets back from the scratch as 16-bit loads (as on the
     * port-mode path): computed in registers, clang bounds one copy and uses another, and the
     * verifier then cannot bound the packet pointer. */
    asm volatile("" ::: "memory");
    if (!vsfc_expressible(ctx, fc, loc)) {
        if (bpf_xdp_adjust_head(ctx, -((int)inner - 14))) {
            vsfc_count(VSWIFT_FC_STAT_FAILED);
            return XDP_DROP;
        }
        data = (void *)(long)ctx->data;
        end = (void *)(long)ctx->data_end;
        if (!(p = (__u8 *)vsk_at(data, end, inner - 14, 28))) {
            vsfc_count(VSWIFT_FC_STAT_FAILED);
            return XDP_DROP;
        }
        __builtin_memcpy(p, saved, 28);
        goto punt;
    }
    /* What follows the inner packet belongs to no packet (LISP.decapsulate's length). */
    __u32 frame_length = (__u32)(ctx->data_end - ctx->data);
    if (14 + packet_length < frame_length && bpf_xdp_adjust_tail(ctx, (int)(14 + packet_length) - (int)frame_length)) {
        vsfc_count(VSWIFT_FC_STAT_FAILED);
        return XDP_DROP;
    }
    __u64 bytes = 14 + packet_length;
    struct vswift_fc_decap_counter *dc = bpf_map_lookup_elem(&vswift_fc_decap_counters, &counter_slot);
    if (dc) {
        dc->packets += 1;
        dc->bytes += bytes;
    }
    struct vswift_fc_counter *counter = bpf_map_lookup_elem(&vswift_fc_counters, &id);
    if (counter) {
        counter->packets += 1;
        counter->bytes += bytes;
        counter->last_used_ns = bpf_ktime_get_ns();
    }
    vsfc_count(VSWIFT_FC_STAT_HIT);
    return vsfc_run(ctx, fc, s);

punt:
    vsfc_count(VSWIFT_FC_STAT_PUNT);
    return VSWIFT_FC_MISS;
miss:
    vsfc_count(VSWIFT_FC_STAT_MISS);
    return VSWIFT_FC_MISS;
}

/* Stage 1: the outer headers and the decap entry. -1 when the frame is the workers' (counted as
 * a miss or a punt), else what stage 2 needs, packed (vsdc_pack), with the inner key's words that
 * come from the outer headers in the scratch. A global function, checked once by the verifier
 * apart from the port-mode path. */
__attribute__((noinline)) __s64 vsdc_outer(struct xdp_md *ctx)
{
    if (!ctx)
        return -1;
    __u32 zero = 0;
    struct vswift_fc_control *control = bpf_map_lookup_elem(&vswift_fc_control, &zero);
    if (!control || !control->enabled)
        return -1;
    struct vswift_fc_scratch *s = bpf_map_lookup_elem(&vswift_fc_scratch, &zero);
    if (!s)
        return -1;
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u32 length = (__u32)(end - data);
    const __u8 *eth = vsk_at(data, end, 0, 14);
    if (!eth)
        return -1;

    struct vswift_fc_decap_key dk = {};
    dk.ifindex = ctx->ingress_ifindex;
    __u32 udp, udp_length, ip_end;
    __u8 outer_tos, outer_ttl;
    __u16 type = vsk_be16(eth + 12);
    if (type == 0x0800) {
        /* parseOuter: version 4, no options (punted), total length within the frame, not a
         * fragment, a valid header checksum. */
        const __u8 *ip = vsk_at(data, end, 14, 20);
        if (!ip || ip[0] != 0x45 || ip[9] != 17)
            goto miss;
        __u32 total = vsk_be16(ip + 2);
        if (total < 20 || total > length - 14 || (vsk_be16(ip + 6) & 0x3fff) || !vsdc_ipv4_header_ok(ip))
            goto miss;
        outer_tos = ip[1];
        outer_ttl = ip[8];
        dk.family = 4;
        __builtin_memcpy(dk.dst, ip + 16, 4);
        __builtin_memcpy(dk.src, ip + 12, 4);
        udp = 34;
        ip_end = 14 + total;
    } else if (type == 0x86dd) {
        /* An extension header (a Fragment header included) is punted. */
        const __u8 *ip6 = vsk_at(data, end, 14, 40);
        if (!ip6 || ip6[0] >> 4 != 6 || ip6[6] != 17)
            goto miss;
        __u32 payload = vsk_be16(ip6 + 4);
        if (payload < 8 || payload > length - 54)
            goto miss;
        outer_tos = (__u8)(vsk_be16(ip6) >> 4);
        outer_ttl = ip6[7];
        dk.family = 6;
        __builtin_memcpy(dk.dst, ip6 + 24, 16);
        __builtin_memcpy(dk.src, ip6 + 8, 16);
        udp = 54;
        ip_end = 54 + payload;
    } else {
        goto miss;
    }
    /* UDP and the LISP header (RFC 9300 §5.3): 16 bytes, then the inner packet's first 40 (an
     * inner IPv4 header is checked to be 20 bytes here; a shorter frame is punted). */
    const __u8 *uh = vsk_at(data, end, udp, 16);
    if (!uh || ip_end - udp < 8)
        goto miss;
    udp_length = vsk_be16(uh + 4);
    if (udp_length < 16 || udp_length > ip_end - udp)
        goto miss;
    __u8 flags = uh[8];
    if (flags & 0x03) /* KK: encrypted (RFC 8061), the worker counts it */
        goto miss;
    dk.udp_port = vsk_be16(uh + 2);
    dk.instance_id = (flags & 0x08) ? vsk_be32(uh + 12) >> 8 : 0;
    struct vswift_fc_decap *entry = bpf_map_lookup_elem(&vswift_fc_decap, &dk);
    if (!entry)
        goto miss;
    if (vsdc_udp_ok(ctx, &dk, udp, udp_length, vsk_be16(uh + 6)) != 1)
        goto punt;

    /* The inner packet (parseOuter's checks; its length trims what follows it). */
    __u32 inner = udp + 16;
    __u32 inner_room = udp_length - 16;
    const __u8 *in = vsk_at(data, end, inner, 20);
    if (!in)
        goto punt;
    __u32 packet_length;
    __u8 version = in[0] >> 4;
    __u8 tos, ttl;
    if (version == 4) {
        __u32 ihl = (__u32)(in[0] & 0x0f) << 2;
        if (inner_room < 20 || ihl < 20 || ihl > inner_room)
            goto punt;
        packet_length = vsk_be16(in + 2);
        if (packet_length < ihl)
            goto punt;
        tos = in[1];
        ttl = in[8];
    } else if (version == 6) {
        if (inner_room < 40 || !(in = vsk_at(data, end, inner, 40)))
            goto punt;
        packet_length = 40 + vsk_be16(in + 4);
        tos = (__u8)(vsk_be16(in) >> 4);
        ttl = in[7];
    } else {
        goto punt;
    }
    if (packet_length > inner_room)
        goto punt;

    /* RFC 6040 §4.2 and RFC 9300 §5.3 (LISP.applyOuterFields): the ECN field by the table, the
     * TTL / hop limit the lower of the two; the worker drops and counts CE over Not-ECT and 0. */
    __u8 ecn = (VSDC_ECN_TABLE >> ((((tos & 3) << 2) | (outer_tos & 3)) << 2)) & 0xf;
    __u8 new_ttl = ttl < outer_ttl ? ttl : outer_ttl;
    if (ecn > 3 || new_ttl == 0)
        goto punt;
    __u8 new_tos = (tos & 0xfc) | ecn;

    /* Stage 1 leaves the parts of the inner key that come from the outer headers in the scratch;
     * stage 2 (a function of its own, so the verifier sees the offsets as values, not as the
     * constants of each outer family) extracts the rest and looks it up. */
    struct vswift_flow_key *k = &s->key;
#pragma unroll
    for (int i = 0; i < VSK_WORDS; i++)
        k->w[i] = 0;
    k->w[0] = entry->in_port | (__u64)(version == 4 ? 0x0800 : 0x86dd) << 32;
    k->w[1] = 0x020000000000ULL; /* LISP.decapsulatedMAC, both ways */
    k->w[2] = 0x020000000000ULL;
    /* Tunnel metadata (FlowExtractor's w12, w13): tun_id, and the IPv4 RLOCs (0 over IPv6). */
    k->w[12] = dk.instance_id;
    if (dk.family == 4)
        k->w[13] = (__u64)vsk_be32(dk.dst) | (__u64)vsk_be32(dk.src) << 32;
    return vsdc_pack(inner, packet_length, (__u32)version << 16 | (__u32)new_ttl << 8 | new_tos, entry->slot);

punt:
    vsfc_count(VSWIFT_FC_STAT_PUNT);
    return -1;
miss:
    vsfc_count(VSWIFT_FC_STAT_MISS);
    return -1;
}

/* The decap stage's verdict: an XDP action when the frame was decapsulated and its inner frame's
 * entry ran, VSWIFT_FC_MISS otherwise (the frame untouched). Only for frames is_underlay_frame
 * admitted (UDP to a local (address, port), untagged). */
static __always_inline int vswift_decap(struct xdp_md *ctx)
{
    __s64 decap = vsdc_outer(ctx);
    if (decap < 0)
        return VSWIFT_FC_MISS;
    return vsdc_inner(ctx, (__u64)decap);
}

#endif
