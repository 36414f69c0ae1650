// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* vswift-bench's traffic generators (see Sources/vswift-bench/TrafficGenerator.swift).
 *
 * vswift_trafficgen: run through BPF_PROG_RUN in live-frames mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES). The bench passes one template frame (Ethernet/IPv4/UDP, UDP
 * checksum 0) as data_in; the kernel runs this program over a page-pool copy of it `repeat` times
 * and really transmits what it returns.
 *
 * Each frame gets the UDP source port base_port + (n mod flows), n counting the frames generated
 * on this CPU. The port is written, not incremented, because live mode recycles its pages without
 * copying the template in again. With the UDP checksum 0 (allowed over IPv4) and the IPv4 header
 * untouched, no checksum needs updating.
 *
 * Action: XDP_TX (live mode turns it into a redirect out of the ingress device, ctx
 * ingress_ifindex: on a veth the frame arrives at the peer).
 *
 * Live mode's pages come back to the generator with whatever the receiver wrote into them: the
 * kernel resets only the frame's pointers (net/bpf/test_run.c, reset_ctx), never its bytes. A
 * switch that rewrites the frame in XDP (LISP encapsulation grows the head and writes the outer
 * UDP/LISP headers over the original Ethernet header; decapsulation writes an Ethernet header over
 * the outer IP/UDP/LISP) hands back pages that no longer hold the template, and the generator then
 * found only "bad" frames and stopped generating. So vswift_trafficgen first copies the template's
 * head (vsb_gen_header, the first VSB_GEN_HEADER_MAX bytes at most) back into every frame. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct vsb_gen_config {
    __u32 flows;             /* 1.. : distinct UDP source ports */
    __u32 reserved[2];
    __u16 base_port;         /* first UDP source port (host order) */
    __u16 running;           /* vswift_loopgen only: 0 drops the circulating frames */
};

enum { VSB_GEN_FRAMES = 0, VSB_GEN_BAD = 1, VSB_GEN_STAT_MAX = 2 };

/* Every rewrite a switch does in XDP (outer headers pushed or popped, MAC/IP/port rewrites, a
 * VLAN tag) lies within the first 128 bytes of the frame it was given. */
#define VSB_GEN_HEADER_MAX 128

/* The template's head, restored into every live frame. length: bytes to restore, a multiple of 8,
 * at most VSB_GEN_HEADER_MAX and at most the frame's length (0: restore nothing). */
struct vsb_gen_header {
    __u32 length;
    __u32 reserved;
    __u8 bytes[VSB_GEN_HEADER_MAX];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vsb_gen_header);
} vsb_gen_header SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vsb_gen_config);
} vsb_gen_config SEC(".maps");

/* Frames generated (this CPU) and frames that were not a usable template. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, VSB_GEN_STAT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} vsb_gen_stats SEC(".maps");

/* Checks the frame is the template (Ethernet/IPv4 with a 20-byte header/UDP, checked in user
 * space too), counts it and writes its UDP source port: base_port + (n mod flows). Returns 0, or
 * -1 for a frame that is not a usable template (counted as bad). */
static __always_inline int stamp_frame(struct xdp_md *ctx, struct vsb_gen_config *config, __u64 *frames)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct udphdr *udp = (void *)(ip + 1);
    __u32 bad = VSB_GEN_BAD;

    if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5) {
        __u64 *count = bpf_map_lookup_elem(&vsb_gen_stats, &bad);
        if (count)
            *count += 1;
        return -1;
    }
    __u64 n = *frames;
    *frames = n + 1;
    __u32 flows = config->flows;
    __u32 flow = flows > 1 ? (__u32)(n % flows) : 0;
    udp->source = bpf_htons((__u16)(config->base_port + flow));
    return 0;
}

/* Copies header->length bytes of the template back over the frame's start, 8 at a time. */
static __always_inline void restore_header(struct xdp_md *ctx, const struct vsb_gen_header *header)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 length = header->length;

#pragma unroll
    for (int i = 0; i < VSB_GEN_HEADER_MAX / 8; i++) {
        if ((__u32)(i + 1) * 8 > length || data + (i + 1) * 8 > data_end)
            break;
        ((__u64 *)data)[i] = ((const __u64 *)header->bytes)[i];
    }
}

SEC("xdp")
int vswift_trafficgen(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct vsb_gen_config *config = bpf_map_lookup_elem(&vsb_gen_config, &zero);
    __u64 *frames = bpf_map_lookup_elem(&vsb_gen_stats, &zero);
    struct vsb_gen_header *header = bpf_map_lookup_elem(&vsb_gen_header, &zero);
    if (!config || !frames || !header)
        return XDP_ABORTED;
    restore_header(ctx, header);
    if (stamp_frame(ctx, config, frames) < 0)
        return XDP_DROP;
    return XDP_TX;
}

/* vswift_loopgen: the generator for kernels that refuse live frames. Attached (native XDP) to one
 * end of a veth pair of its own in the generator namespace; a few dozen template frames are sent
 * into the other end once, and from then on each frame circulates: every time one arrives, the
 * program writes its UDP source port and redirects it with BPF_F_BROADCAST to every device in
 * vsb_loop_ports, the loop's other end (slot 0: the frame comes back) and g0 (slot 1: the copy
 * enters s0's XDP receive path, as a live frame does). The kernel clones the frame for all but
 * the last destination, so each pass costs one page and one copy, and all of it runs in the NAPI
 * softirq of the CPU that sent the seed frames (the generator CPU), as does s0's receive. With
 * `running` 0 the frames are dropped and the loop empties within microseconds. */
struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} vsb_loop_ports SEC(".maps");

SEC("xdp")
int vswift_loopgen(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct vsb_gen_config *config = bpf_map_lookup_elem(&vsb_gen_config, &zero);
    __u64 *frames = bpf_map_lookup_elem(&vsb_gen_stats, &zero);
    if (!config || !frames)
        return XDP_ABORTED;
    if (!config->running || stamp_frame(ctx, config, frames) < 0)
        return XDP_DROP;
    return bpf_redirect_map(&vsb_loop_ports, 0, BPF_F_BROADCAST);
}

char _license[] SEC("license") = "Dual BSD/GPL";
