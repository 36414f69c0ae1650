// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* vswift-bench's sink: counts every frame and its bytes per CPU, then drops it. The bench reads the
 * per-CPU values and sums them; these are the only counters its rates are computed from. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct vsb_sink_counter {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vsb_sink_counter);
} vsb_sink_stats SEC(".maps");

SEC("xdp")
int vswift_sink(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct vsb_sink_counter *counter = bpf_map_lookup_elem(&vsb_sink_stats, &zero);
    if (counter) {
        counter->packets += 1;
        counter->bytes += ctx->data_end - ctx->data;
    }
    return XDP_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
