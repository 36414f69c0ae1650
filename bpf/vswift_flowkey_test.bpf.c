// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Test harness for vswift_flowkey.h, run only through BPF_PROG_RUN: extracts the frame's flow key
 * with the in_port in vswift_test_port and stores it in vswift_test_key, so a test can compare it
 * with FlowExtractor's key byte for byte. Never attached to a device. */
#include "vswift_flowkey.h"

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vswift_flow_key);
} vswift_test_key SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} vswift_test_port SEC(".maps");

SEC("xdp")
int vswift_flowkey_test(struct xdp_md *ctx)
{
    __u32 zero = 0;
    struct vswift_flow_key *key = bpf_map_lookup_elem(&vswift_test_key, &zero);
    __u32 *port = bpf_map_lookup_elem(&vswift_test_port, &zero);
    if (!key || !port)
        return XDP_ABORTED;
    struct vswift_flow_loc loc;
    vswift_extract_key(ctx, *port, key, &loc);
    return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
