/* Thin C shims for vswift: headers Swift imports, and static-inline wrappers for what Swift cannot
 * call directly (variadic ioctl/fcntl, relaxed atomics on shared raw memory). No logic lives here. */
#ifndef VSWIFT_CXDP_SHIM_H
#define VSWIFT_CXDP_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/genetlink.h>
#include <linux/if_xdp.h>
#include <linux/if_link.h>
#include <linux/if_ether.h>
#include <linux/sockios.h>
#include <linux/ethtool.h>
#include <linux/perf_event.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <xdp/xsk.h>

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif

static const int vs_sol_xdp = SOL_XDP;
/* Socket types as plain ints: the same glibc enum reached through this module and through Glibc
 * can make Swift lose sight of SOCK_* (seen on clean builds), so modules importing CXDP use these. */
static const int vs_sock_stream = SOCK_STREAM;
static const int vs_sock_dgram = SOCK_DGRAM;
static const int vs_sock_raw = SOCK_RAW;
static const int vs_sock_cloexec = SOCK_CLOEXEC;
static const int vs_af_netlink = AF_NETLINK;
static const int vs_af_xdp = AF_XDP;

/* ---- relaxed atomics on raw memory (plain loads/stores on x86-64; they make cross-thread
 * counter reads well defined without a lock or fence on the packet path) ---- */
static inline unsigned long long vs_load_relaxed_u64(const unsigned long long *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
static inline void vs_store_relaxed_u64(unsigned long long *p, unsigned long long v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
static inline void vs_add_relaxed_u64(unsigned long long *p, unsigned long long v) {
    /* Single writer per counter: load+store, not a locked add. */
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/* Ring index publication with the kernel's memory ordering (the pipeline harness plays the kernel). */
static inline unsigned int vs_acquire_load_u32(const unsigned int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void vs_release_store_u32(unsigned int *p, unsigned int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/* Descriptors submitted to a producer ring that the kernel has not consumed yet. */
static inline unsigned int vs_ring_prod_unconsumed(const struct xsk_ring_prod *r) {
    return r->cached_prod - __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE);
}

/* ---- AF_XDP TX metadata (kernel 6.8+; 6.11+ for the UMEM flags). Debian's uapi headers predate
 * it, so the layouts are spelled out here, as in include/uapi/linux/if_xdp.h. ---- */
#define VS_XDP_UMEM_TX_SW_CSUM (1 << 1)      /* copy mode: the kernel computes requested checksums on the CPU */
#define VS_XDP_UMEM_TX_METADATA_LEN (1 << 2) /* tx_metadata_len below is meant (6.11+) */
#define VS_XDP_TX_METADATA (1 << 1)          /* xdp_desc.options: metadata precedes the frame */
#define VS_XDP_TXMD_FLAGS_CHECKSUM (1 << 1)  /* xsk_tx_metadata.flags: L4 checksum requested */

/* struct xdp_umem_reg as of 6.8: the old struct's padding became tx_metadata_len. */
struct vs_xdp_umem_reg {
    __u64 addr;
    __u64 len;
    __u32 chunk_size;
    __u32 headroom;
    __u32 flags;
    __u32 tx_metadata_len;
};

/* struct xsk_tx_metadata: lives tx_metadata_len bytes before xdp_desc.addr. */
struct vs_xsk_tx_metadata {
    __u64 flags;
    union {
        struct {
            __u16 csum_start;   /* from the frame start: where checksumming starts */
            __u16 csum_offset;  /* from csum_start: where the checksum is stored */
            __u64 launch_time;
        } request;
        struct {
            __u64 tx_timestamp;
        } completion;
    };
};
_Static_assert(sizeof(struct vs_xdp_umem_reg) == 32, "xdp_umem_reg layout");
_Static_assert(sizeof(struct vs_xsk_tx_metadata) == 24, "xsk_tx_metadata layout");
static const unsigned int vs_xsk_tx_metadata_len = sizeof(struct vs_xsk_tx_metadata);

/* ---- threads ---- */
static inline int vs_gettid(void) { return (int)syscall(SYS_gettid); }

/* Move the calling thread into the network namespace behind fd (tests, bench). Returns 0 or -errno. */
static inline int vs_enter_netns(int fd) {
    return syscall(SYS_setns, fd, 0x40000000 /* CLONE_NEWNET */) < 0 ? -errno : 0;
}

/* Pin the calling thread to one CPU. Returns 0 or -errno. */
static inline int vs_pin_to_cpu(int cpu) {
    unsigned long mask[16];
    memset(mask, 0, sizeof(mask));
    if (cpu < 0 || cpu >= (int)(sizeof(mask) * 8))
        return -EINVAL;
    mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    return syscall(SYS_sched_setaffinity, 0, sizeof(mask), mask) < 0 ? -errno : 0;
}

/* A counter of the CPU cycles thread `tid` spends (user mode only with user_only), as `perf stat -e
 * cycles` counts them; it counts from now. Returns the fd or -errno (ENOENT/EOPNOTSUPP where the
 * machine has no hardware counters, e.g. most VMs). */
static inline int vs_perf_cycles_open(int tid, int user_only) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_HARDWARE;
    attr.config = PERF_COUNT_HW_CPU_CYCLES;
    attr.exclude_kernel = user_only ? 1 : 0;
    attr.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    return fd < 0 ? -errno : (int)fd;
}

/* ---- tun/tap ---- */
/* Attach fd (opened on /dev/net/tun) to tap `name`; flags are IFF_* bits beyond IFF_TAP|IFF_NO_PI.
 * Returns 0 or -errno. */
static inline int vs_tap_attach(int fd, const char *name, short extra_flags) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | extra_flags;
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        return -errno;
    return 0;
}

static inline int vs_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Set or clear IFF_UP on an interface. Returns 0 or -errno. */
static inline int vs_if_set_up(const char *name, int up) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        if (up)
            ifr.ifr_flags |= IFF_UP;
        else
            ifr.ifr_flags &= ~IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int err = rc < 0 ? -errno : 0;
    close(s);
    return err;
}

/* Read the interface's Ethernet address into mac[6]. Returns 0 or -errno. */
static inline int vs_if_get_mac(const char *name, unsigned char *mac) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    int rc = ioctl(s, SIOCGIFHWADDR, &ifr);
    int err = rc < 0 ? -errno : 0;
    if (rc == 0)
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    close(s);
    return err;
}

/* Rx queues the device uses now (ethtool channels: rx + combined), or -errno when the driver does
 * not report channels. Differs from IFLA_NUM_RX_QUEUES, which counts queues allocated (veth
 * allocates one per CPU but uses one unless told otherwise). */
static inline int vs_if_rx_channels(const char *name) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    struct ethtool_channels channels;
    memset(&channels, 0, sizeof(channels));
    channels.cmd = ETHTOOL_GCHANNELS;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_data = (void *)&channels;
    int rc = ioctl(s, SIOCETHTOOL, &ifr);
    int err = rc < 0 ? -errno : 0;
    close(s);
    return err < 0 ? err : (int)(channels.rx_count + channels.combined_count);
}

/* ---- libbpf options structs (LIBBPF_OPTS is a macro Swift cannot expand) ---- */
static inline int vs_xdp_link_create(int prog_fd, int ifindex, unsigned int xdp_flags) {
    struct bpf_link_create_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.flags = xdp_flags;
    int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
    return fd < 0 ? -errno : fd;
}

/* BPF_PROG_RUN with live frames (xdp-trafficgen's technique) for the bench generator. */
static inline int vs_xdp_prog_run_live(int prog_fd, void *data, unsigned int size, unsigned int repeat,
                                       unsigned int ifindex, unsigned int batch_size) {
    struct xdp_md ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.data_end = size;
    ctx.ingress_ifindex = ifindex;
    struct bpf_test_run_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.data_in = data;
    opts.data_size_in = size;
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
    opts.repeat = repeat;
    opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
    opts.batch_size = batch_size;
    int rc = bpf_prog_test_run_opts(prog_fd, &opts);
    return rc < 0 ? -errno : rc;
}

/* BPF_PROG_RUN without live frames: runs the XDP program `repeat` times on a copy of `data`; the
 * (last) run's frame goes to `out` (`*out_size` in: capacity, out: length). Returns the program's
 * return code (>= 0) or -errno; `*duration_ns` is the kernel's mean time per run. */
static inline int vs_xdp_prog_run(int prog_fd, const void *data, unsigned int size, void *out,
                                  unsigned int *out_size, unsigned int repeat, unsigned int *duration_ns) {
    struct bpf_test_run_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.data_in = data;
    opts.data_size_in = size;
    opts.data_out = out;
    opts.data_size_out = *out_size;
    opts.repeat = repeat;
    int rc = bpf_prog_test_run_opts(prog_fd, &opts);
    if (rc < 0)
        return -errno;
    *out_size = opts.data_size_out;
    *duration_ns = opts.duration;
    return (int)opts.retval;
}

/* A BPF map created from user space (the XDP flow cache's shared maps), with map flags. */
static inline int vs_bpf_map_create(unsigned int type, const char *name, unsigned int key_size,
                                    unsigned int value_size, unsigned int max_entries, unsigned int flags) {
    struct bpf_map_create_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.map_flags = flags;
    int fd = bpf_map_create((enum bpf_map_type)type, name, key_size, value_size, max_entries, &opts);
    return fd < 0 ? -errno : fd;
}

#endif
