// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* vswift's XDP program: steer frames into the AF_XDP socket bound to the receiving rx queue.
 *
 * Port mode (a device attached to a vswift bridge): every frame goes to vswift; a frame arriving on
 * a queue without a socket is dropped, never leaked into the host stack of an enslaved device.
 * Underlay mode (a device shared with the host's own traffic): only UDP to one of the configured
 * local (address, port) pairs goes to vswift; everything else passes to the kernel untouched.
 * Fragments of those datagrams too: a first fragment (offset 0, more fragments) is steered by its
 * UDP header and leaves its (source, destination, identification, protocol, family) in an LRU map;
 * a later fragment, which has no UDP header, follows it if its key is there and younger than the
 * worker's reassembly timeout. A later fragment that arrives before its first goes to the kernel
 * (a known limit: the worker's copy of that datagram then times out, counted). For IPv6 only a
 * Fragment header directly after the IPv6 header is recognised (RFC 8200 §4.5).
 * With the XDP flow cache on, an underlay frame that is LISP for a port with a decap entry is
 * decapsulated and forwarded here when its inner frame hits the cache (vswift_decap.h).
 * Per-CPU counters record what happened to each frame; userspace sums them on read. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "vswift_flowcache.h"
#include "vswift_decap.h"

#define VSWIFT_MAX_QUEUES 256
#define VSWIFT_MAX_UNDERLAY_ADDRS 64

enum vswift_stat { VSWIFT_STAT_REDIRECTED, VSWIFT_STAT_PASSED, VSWIFT_STAT_DROPPED, VSWIFT_STAT_MAX };
enum vswift_mode { VSWIFT_MODE_PORT = 0, VSWIFT_MODE_UNDERLAY = 1 };

/* Key of the underlay address set: an IPv4 address is stored as ::ffff:a.b.c.d. */
struct vswift_underlay_key {
    __u8 addr[16];
    __be16 port;
    __u16 pad;
};

/* Fragmented datagrams whose first fragment went to vswift (see the top). */
#define VSWIFT_FRAG_ENTRIES 1024
/* FragmentReassembler.Limits.timeout: later fragments are no use to the worker after it. */
#define VSWIFT_FRAG_TIMEOUT_NS (3ULL * 1000000000ULL)
#define VSWIFT_IPV6_FRAGMENT 44

struct vswift_frag_key {
    __u8 src[16];
    __u8 dst[16];
    __u32 id;
    __u8 proto;
    __u8 family;
    __u16 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, VSWIFT_MAX_QUEUES);
    __type(key, __u32);
    __type(value, __u32);
} vswift_xsks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, VSWIFT_STAT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} vswift_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} vswift_mode SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, VSWIFT_MAX_UNDERLAY_ADDRS);
    __type(key, struct vswift_underlay_key);
    __type(value, __u8);
} vswift_underlay SEC(".maps");

/* Bounded: LRU, so first fragments with ever new identifications only evict older entries. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, VSWIFT_FRAG_ENTRIES);
    __type(key, struct vswift_frag_key);
    __type(value, __u64);
} vswift_fragments SEC(".maps");

static __always_inline void count(__u32 stat)
{
    __u64 *value = bpf_map_lookup_elem(&vswift_stats, &stat);
    if (value)
        *value += 1;
}

/* A later fragment (no UDP header): does it belong to a datagram whose first fragment went to
 * vswift within the timeout? */
static __always_inline int follows_first_fragment(struct vswift_frag_key *frag)
{
    __u64 *seen = bpf_map_lookup_elem(&vswift_fragments, frag);
    return seen && bpf_ktime_get_ns() - *seen < VSWIFT_FRAG_TIMEOUT_NS;
}

/* Is this frame UDP to one of the configured local (address, port) pairs, or a later fragment of
 * such a datagram? */
static __always_inline int is_underlay_frame(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct vswift_underlay_key key = {};
    struct vswift_frag_key frag = {};
    struct udphdr *udp;
    int first_of_many = 0;

    if ((void *)(eth + 1) > data_end)
        return 0;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
            return 0;
        if (ip->frag_off & bpf_htons(0x3fff)) {
            frag.family = 4;
            frag.proto = ip->protocol;
            frag.id = ip->id;
            __builtin_memcpy(frag.src, &ip->saddr, 4);
            __builtin_memcpy(frag.dst, &ip->daddr, 4);
            /* Fragments other than the first carry no UDP header. */
            if (ip->frag_off & bpf_htons(0x1fff))
                return follows_first_fragment(&frag);
            first_of_many = 1;
        }
        udp = (void *)ip + ip->ihl * 4;
        key.addr[10] = 0xff;
        key.addr[11] = 0xff;
        __builtin_memcpy(&key.addr[12], &ip->daddr, 4);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            return 0;
        udp = (void *)(ip6 + 1);
        if (ip6->nexthdr == VSWIFT_IPV6_FRAGMENT) {
            /* Next header, reserved, offset << 3 | M, identification (RFC 8200 §4.5). */
            __u8 *fh = (void *)(ip6 + 1);
            if ((void *)(fh + 8) > data_end || fh[0] != IPPROTO_UDP)
                return 0;
            frag.family = 6;
            frag.proto = fh[0];
            __builtin_memcpy(&frag.id, fh + 4, 4);
            __builtin_memcpy(frag.src, &ip6->saddr, 16);
            __builtin_memcpy(frag.dst, &ip6->daddr, 16);
            if ((fh[2] << 8 | fh[3]) & 0xfff8)
                return follows_first_fragment(&frag);
            /* An atomic fragment (M clear) is a whole packet (RFC 6946): nothing follows it. */
            first_of_many = fh[3] & 1;
            udp = (void *)(fh + 8);
        } else if (ip6->nexthdr != IPPROTO_UDP) {
            return 0;
        }
        __builtin_memcpy(key.addr, &ip6->daddr, 16);
    } else {
        return 0;
    }
    if ((void *)(udp + 1) > data_end)
        return 0;
    key.port = udp->dest;
    if (!bpf_map_lookup_elem(&vswift_underlay, &key))
        return 0;
    if (first_of_many) {
        __u64 now = bpf_ktime_get_ns();
        bpf_map_update_elem(&vswift_fragments, &frag, &now, BPF_ANY);
    }
    return 1;
}

SEC("xdp")
int vswift_redirect(struct xdp_md *ctx)
{
    __u32 zero = 0;
    __u32 *mode = bpf_map_lookup_elem(&vswift_mode, &zero);
    __u32 fallback = XDP_DROP;

    if (mode && *mode == VSWIFT_MODE_UNDERLAY) {
        if (!is_underlay_frame(ctx)) {
            count(VSWIFT_STAT_PASSED);
            return XDP_PASS;
        }
        /* LISP for a port with a decap entry whose inner frame hits the cache is done here
         * (vswift_decap.h); everything else goes on to vswift untouched. */
        int verdict = vswift_decap(ctx);
        if (verdict != VSWIFT_FC_MISS)
            return verdict;
        fallback = XDP_PASS;
    } else {
        /* Port mode: a hit in the XDP flow cache is forwarded here; a miss goes on to vswift. */
        int verdict = vswift_flowcache(ctx);
        if (verdict != VSWIFT_FC_MISS)
            return verdict;
    }
    int action = bpf_redirect_map(&vswift_xsks, ctx->rx_queue_index, fallback);
    if (action == XDP_REDIRECT)
        count(VSWIFT_STAT_REDIRECTED);
    else if (action == XDP_PASS)
        count(VSWIFT_STAT_PASSED);
    else
        count(VSWIFT_STAT_DROPPED);
    return action;
}

char _license[] SEC("license") = "Dual BSD/GPL";
