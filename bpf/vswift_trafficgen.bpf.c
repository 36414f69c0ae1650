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
 * ingress_ifindex: on a veth the frame arrives at the peer). */
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

SEC("xdp")
int vswift_trafficgen(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct vsb_gen_config *config = bpf_map_lookup_elem(&vsb_gen_config, &zero);
    __u64 *frames = bpf_map_lookup_elem(&vsb_gen_stats, &zero);
    if (!config || !frames)
        return XDP_ABORTED;
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
