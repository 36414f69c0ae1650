// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Flow-key extraction in XDP: the same 16 words, byte for byte, as VSwiftPacket's FlowExtractor
 * produces for the same frame and in_port (Sources/VSwiftPacket/FlowExtractor.swift and FlowKey.swift
 * document the layout and every rule; this file follows them line by line and says only where BPF
 * forces a different shape). Words are host-order u64s, as Swift stores them.
 *
 * Every packet access goes through vsk_at(), which bounds the offset first (so the verifier sees a
 * bounded variable offset) and then checks the access against data_end. The only loop is the IPv6
 * extension-header walk, bounded by VSK_MAX_EXT_HEADERS as in FlowExtractor's IPv6Walk. */
#ifndef VSWIFT_FLOWKEY_H
#define VSWIFT_FLOWKEY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define VSK_WORDS 16
/* No header we parse starts beyond this offset (frames are at most a page). */
#define VSK_MAX_OFFSET 0x3fff
/* FlowExtractor's IPv6Walk.maxExtensionHeaders. */
#define VSK_MAX_EXT_HEADERS 8

struct vswift_flow_key {
    __u64 w[VSK_WORDS];
};

/* Where extraction found the headers, by the same rules (HeaderRewrite's IPLocation follows them
 * too), so the XDP flow cache's actions rewrite exactly the headers the key was taken from. */
struct vswift_flow_loc {
    __u16 l3;         /* the IP header, when ip_version != 0 */
    __u16 l4;         /* the transport header, when has_l4 */
    __u16 l4_len;     /* IP payload bytes from l4 (by the IP length fields) */
    __u8 ip_version;  /* 4 (a valid IPv4 header), 6 (a valid fixed IPv6 header), 0 (neither) */
    __u8 proto;       /* the transport protocol (after the IPv6 extension chain) */
    __u8 has_l4;      /* not a later fragment, and (IPv6) a valid extension chain */
    __u8 tags;        /* VLAN tags parsed (0..2) */
    __u8 more_tags;   /* the ethertype after the parsed tags is a tag too (not parsed) */
    __u8 pad;
};

/* `len` bytes at `off`, or NULL when they are not all inside the frame. */
static __always_inline const __u8 *vsk_at(void *data, void *data_end, __u32 off, __u32 len)
{
    if (off > VSK_MAX_OFFSET)
        return 0;
    const __u8 *p = (const __u8 *)data + off;
    if ((void *)(p + len) > data_end)
        return 0;
    return p;
}

static __always_inline __u16 vsk_be16(const __u8 *p) { return (__u16)p[0] << 8 | p[1]; }
static __always_inline __u32 vsk_be32(const __u8 *p) { return (__u32)vsk_be16(p) << 16 | vsk_be16(p + 2); }
static __always_inline __u64 vsk_be64(const __u8 *p) { return (__u64)vsk_be32(p) << 32 | vsk_be32(p + 4); }
/* A MAC as a 48-bit integer, first octet most significant. */
static __always_inline __u64 vsk_mac(const __u8 *p) { return (__u64)vsk_be16(p) << 32 | vsk_be32(p + 2); }

static __always_inline int vsk_is_vlan(__u16 type) { return type == 0x8100 || type == 0x88a8; }

/* TCP (20 bytes), UDP (8), SCTP (12), ICMP of this IP version (8): ports / type and code into w4. */
static __always_inline void vsk_parse_l4(void *data, void *end, __u32 off, __u32 size, __u8 proto, __u8 icmp,
                                         struct vswift_flow_key *k)
{
    const __u8 *p;
    if (proto == 6) {
        if (size < 20 || !(p = vsk_at(data, end, off, 20)))
            return;
        k->w[4] |= (__u64)vsk_be32(p) | (__u64)(vsk_be16(p + 12) & 0x0fff) << 32;
    } else if (proto == 17) {
        if (size < 8 || !(p = vsk_at(data, end, off, 8)))
            return;
        k->w[4] |= vsk_be32(p);
    } else if (proto == 132) {
        if (size < 12 || !(p = vsk_at(data, end, off, 12)))
            return;
        k->w[4] |= vsk_be32(p);
    } else if (proto == icmp) {
        if (size < 8 || !(p = vsk_at(data, end, off, 8)))
            return;
        k->w[4] |= (__u64)p[0] << 16 | p[1];
    }
}

static __always_inline void vsk_parse_ipv4(void *data, void *end, __u32 l3, __u32 length, struct vswift_flow_key *k,
                                           struct vswift_flow_loc *loc)
{
    const __u8 *ip = vsk_at(data, end, l3, 20);
    if (!ip)
        return;
    __u32 available = length - l3;
    if (ip[0] >> 4 != 4)
        return;
    __u32 ihl = (__u32)(ip[0] & 0x0f) << 2;
    if (ihl < 20 || ihl > available)
        return;
    __u32 total = vsk_be16(ip + 2);
    if (total < ihl || total > available)
        return;
    __u16 frag_field = vsk_be16(ip + 6);
    __u8 proto = ip[9];
    __u64 frag = 0;
    if (frag_field & 0x3fff) {
        frag = 1;
        if (frag_field & 0x1fff)
            frag |= 2;
    }
    k->w[1] |= (__u64)proto << 48 | (__u64)ip[1] << 56;
    k->w[2] |= (__u64)ip[8] << 48 | frag << 56;
    k->w[3] = vsk_be64(ip + 12);
    loc->ip_version = 4;
    loc->l3 = l3;
    loc->l4 = l3 + ihl;
    loc->l4_len = total - ihl;
    loc->proto = proto;
    if (frag & 2)
        return;
    loc->has_l4 = 1;
    vsk_parse_l4(data, end, l3 + ihl, total - ihl, proto, 1, k);
}

static __always_inline int vsk_is_ipv6_ext(__u8 proto)
{
    return proto == 0 || proto == 43 || proto == 60 || proto == 51 || proto == 44;
}

static __always_inline void vsk_parse_ipv6(void *data, void *end, __u32 l3, __u32 length, struct vswift_flow_key *k,
                                           struct vswift_flow_loc *loc)
{
    const __u8 *ip6 = vsk_at(data, end, l3, 40);
    if (!ip6)
        return;
    __u32 first = vsk_be32(ip6);
    if (first >> 28 != 6)
        return;
    __u32 pend = l3 + 40 + vsk_be16(ip6 + 4);
    if (pend > length)
        return;
    k->w[6] = vsk_be64(ip6 + 8);
    k->w[7] = vsk_be64(ip6 + 16);
    k->w[8] = vsk_be64(ip6 + 24);
    k->w[9] = vsk_be64(ip6 + 32);
    loc->ip_version = 6;
    loc->l3 = l3;
    __u8 hop_limit = ip6[7];
    __u8 proto = ip6[6];
    __u32 off = l3 + 40;
    __u64 frag = 0;
    int valid = 0;
    /* IPv6Walk: at most VSK_MAX_EXT_HEADERS extension headers; one more is a malformed chain. */
    for (int i = 0; i <= VSK_MAX_EXT_HEADERS; i++) {
        if (!vsk_is_ipv6_ext(proto)) {
            valid = 1;
            break;
        }
        if (i == VSK_MAX_EXT_HEADERS || pend - off < 8)
            break;
        const __u8 *h = vsk_at(data, end, off, 8);
        if (!h)
            break;
        __u8 next = h[0];
        __u32 length_field = h[1];
        if (proto == 44) {
            __u16 offset_flags = vsk_be16(h + 2);
            off += 8;
            proto = next;
            if (offset_flags) {
                frag = 1;
                if (offset_flags & 0xfff8) {
                    frag |= 2;
                    proto = 44;
                    valid = 1;
                    break;
                }
            }
            continue;
        }
        __u32 header_length = proto == 51 ? (length_field + 2) << 2 : (length_field + 1) << 3;
        if (header_length > pend - off)
            break;
        off += header_length;
        proto = next;
    }
    if (!valid)
        return;
    k->w[5] = first & 0xfffff;
    k->w[1] |= (__u64)proto << 48 | (__u64)((first >> 20) & 0xff) << 56;
    k->w[2] |= (__u64)hop_limit << 48 | frag << 56;
    loc->l4 = off;
    loc->l4_len = pend - off;
    loc->proto = proto;
    if (frag & 2)
        return;
    loc->has_l4 = 1;
    vsk_parse_l4(data, end, off, pend - off, proto, 58, k);
}

static __always_inline void vsk_parse_arp(void *data, void *end, __u32 l3, struct vswift_flow_key *k)
{
    const __u8 *a = vsk_at(data, end, l3, 28);
    if (!a)
        return;
    /* htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4. */
    __u64 head = vsk_be64(a);
    if (head >> 16 != 0x000108000604ULL)
        return;
    __u64 op = head & 0xffff;
    k->w[3] = (__u64)vsk_be32(a + 24) | (__u64)vsk_be32(a + 14) << 32;
    if (op <= 0xff)
        k->w[1] |= op << 48;
    k->w[10] = vsk_mac(a + 8);
    k->w[11] = vsk_mac(a + 18);
}

/* The flow key of the frame in `ctx` received on `in_port`; `k` is fully overwritten (tunnel words
 * zero, as FlowExtractor.extract), and `loc` says where its headers are. */
static __always_inline void vswift_extract_key(struct xdp_md *ctx, __u32 in_port, struct vswift_flow_key *k,
                                               struct vswift_flow_loc *loc)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    __u32 length = (__u32)(end - data);

#pragma unroll
    for (int i = 0; i < VSK_WORDS; i++)
        k->w[i] = 0;
    k->w[0] = in_port;
    *loc = (struct vswift_flow_loc){};
    const __u8 *eth = vsk_at(data, end, 0, 14);
    if (!eth)
        return;
    k->w[1] = vsk_mac(eth + 6);
    k->w[2] = vsk_mac(eth);
    /* L2.parse: a tag only if it and the ethertype after it fit; at most two. */
    __u16 type = vsk_be16(eth + 12);
    __u32 l3 = 14;
    __u16 tci = 0, outer = 0;
    const __u8 *tag;
    if (vsk_is_vlan(type) && (tag = vsk_at(data, end, 14, 4))) {
        tci = vsk_be16(tag) | 0x1000;
        type = vsk_be16(tag + 2);
        l3 = 18;
        loc->tags = 1;
        if (vsk_is_vlan(type) && (tag = vsk_at(data, end, 18, 4))) {
            outer = tci;
            tci = vsk_be16(tag) | 0x1000;
            type = vsk_be16(tag + 2);
            l3 = 22;
            loc->tags = 2;
        }
    }
    loc->more_tags = vsk_is_vlan(type);
    k->w[0] |= (__u64)tci << 48;
    k->w[4] = (__u64)outer << 48;
    if (type < 0x600) {
        k->w[0] |= 0x05ffULL << 32; /* OVS's FLOW_DL_TYPE_NONE */
        return;
    }
    k->w[0] |= (__u64)type << 32;
    if (type == 0x0800)
        vsk_parse_ipv4(data, end, l3, length, k, loc);
    else if (type == 0x86dd)
        vsk_parse_ipv6(data, end, l3, length, k, loc);
    else if (type == 0x0806 || type == 0x8035)
        vsk_parse_arp(data, end, l3, k);
}

#endif
