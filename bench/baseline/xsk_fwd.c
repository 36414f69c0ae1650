// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* xsk_fwd: the smallest AF_XDP port-to-port forwarder we know how to write, as vswift-bench's
 * baseline for the veth path. Everything received on interface A is sent out of B and vice versa.
 *
 * Same plumbing as vswift: vswift's own redirect program (vswift_redirect.bpf.o, port mode),
 * loaded once per device and attached through a bpf_link; one UMEM shared by both sockets
 * (XDP_SHARED_UMEM, each socket with its own fill and completion ring); copy mode with
 * need_wakeup; bursts of 64; the same UMEM, ring and fill-level sizes vswift uses by default; one
 * thread that busy-polls. Forwarding hands a frame address from A's rx ring to B's tx ring: no copy.
 *
 * Usage: xsk_fwd [-o vswift_redirect.bpf.o] [-q QUEUE] IF_A IF_B
 * Runs until SIGINT/SIGTERM. Prints "xsk_fwd: ready pid=N" on stdout once both sockets are bound
 * and steered, and its packet totals on stderr at exit. Nothing per packet. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_link.h>
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#define NUM_FRAMES 16384u
#define FRAME_SIZE 4096u
#define RX_RING 2048u
#define TX_RING 2048u
#define FILL_RING 4096u
#define COMP_RING 4096u
#define BATCH 64u
/* Frames each fill ring is kept topped up to (vswift: min(frames / 2 / sockets, fill / 2)). */
#define FILL_TARGET 2048u

struct port {
    const char *name;
    unsigned int ifindex;
    struct bpf_object *obj;
    int link_fd;
    int xsks_fd;
    struct xsk_socket *xsk;
    int fd;
    struct xsk_ring_cons rx;
    struct xsk_ring_prod tx;
    struct xsk_ring_prod fill;
    struct xsk_ring_cons comp;
    unsigned int fill_outstanding;
    unsigned int tx_outstanding;
    unsigned long long rx_packets;
    unsigned long long tx_packets;
    unsigned long long tx_dropped;
};

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

/* The free-frame stack. */
static unsigned long long free_frames[NUM_FRAMES];
static unsigned int free_count;

static inline unsigned long long frame_alloc(void) { return free_frames[--free_count]; }
static inline void frame_free(unsigned long long addr) { free_frames[free_count++] = addr; }

static void die(const char *what, int err)
{
    fprintf(stderr, "xsk_fwd: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

static char *default_object(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("VSWIFT_BPF_DIR");
    if (env) {
        snprintf(path, sizeof(path), "%s/vswift_redirect.bpf.o", env);
        if (access(path, R_OK) == 0)
            return path;
    }
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
    if (n <= 0)
        return "vswift_redirect.bpf.o";
    path[n] = 0;
    char *slash = strrchr(path, '/');
    strcpy(slash ? slash + 1 : path, "vswift_redirect.bpf.o");
    return path;
}

/* Loads a private copy of vswift's redirect program for this device (each device needs its own
 * XSKMAP, keyed by rx queue) and attaches it through a link: native mode, generic as fallback. */
static void attach_program(struct port *p, const char *object_path)
{
    p->obj = bpf_object__open_file(object_path, NULL);
    if (!p->obj)
        die(object_path, errno);
    int err = bpf_object__load(p->obj);
    if (err)
        die("load BPF object", err);
    struct bpf_program *prog = bpf_object__find_program_by_name(p->obj, "vswift_redirect");
    int mode_fd = bpf_object__find_map_fd_by_name(p->obj, "vswift_mode");
    p->xsks_fd = bpf_object__find_map_fd_by_name(p->obj, "vswift_xsks");
    if (!prog || mode_fd < 0 || p->xsks_fd < 0)
        die("BPF object lacks vswift_redirect or its maps", EINVAL);
    __u32 zero = 0;
    if (bpf_map_update_elem(mode_fd, &zero, &zero, 0))
        die("set vswift_mode", errno);
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = XDP_FLAGS_DRV_MODE);
    p->link_fd = bpf_link_create(bpf_program__fd(prog), p->ifindex, BPF_XDP, &opts);
    if (p->link_fd < 0) {
        opts.flags = XDP_FLAGS_SKB_MODE;
        p->link_fd = bpf_link_create(bpf_program__fd(prog), p->ifindex, BPF_XDP, &opts);
    }
    if (p->link_fd < 0)
        die("attach XDP program", errno);
}

static void open_socket(struct port *p, struct xsk_umem *umem, unsigned int queue, int first,
                        struct xsk_ring_prod *umem_fill, struct xsk_ring_cons *umem_comp)
{
    struct xsk_socket_config cfg = {
        .rx_size = RX_RING,
        .tx_size = TX_RING,
        .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
        .xdp_flags = 0,
        .bind_flags = XDP_USE_NEED_WAKEUP | XDP_COPY,
    };
    /* The UMEM's first socket uses the rings made with the UMEM; the other gets its own pair. */
    struct xsk_ring_prod *fill = first ? umem_fill : &p->fill;
    struct xsk_ring_cons *comp = first ? umem_comp : &p->comp;
    int err = 0;
    /* A queue whose last socket closed a moment ago (the previous bench run) stays busy briefly. */
    for (int attempt = 0; attempt < 40; attempt++) {
        err = xsk_socket__create_shared(&p->xsk, p->name, queue, umem, &p->rx, &p->tx, fill, comp, &cfg);
        if (err != -EBUSY)
            break;
        usleep(100000);
    }
    if (err)
        die("create AF_XDP socket", err);
    if (first) {
        p->fill = *umem_fill;
        p->comp = *umem_comp;
    }
    p->fd = xsk_socket__fd(p->xsk);
    if (bpf_map_update_elem(p->xsks_fd, &queue, &p->fd, 0))
        die("insert socket into XSKMAP", errno);
}

/* Time-stamp-counter cycles outside system calls in rounds that received frames (busy) or none
 * (idle), and inside the system calls: the same accounting as vswift's workers (WorkerCycles),
 * so the bench compares user-space cycles per packet measured the same way. */
static unsigned long long tsc_busy, tsc_idle, tsc_syscalls, tsc_round_syscalls;

static inline unsigned long long rdtsc(void) { return __builtin_ia32_rdtsc(); }

/* Tops the fill ring up to FILL_TARGET once a burst's worth is missing. */
static inline void refill(struct port *p)
{
    unsigned int deficit = FILL_TARGET - p->fill_outstanding;
    if (deficit < BATCH)
        return;
    unsigned int n = deficit < free_count ? deficit : free_count;
    if (!n)
        return;
    __u32 idx;
    unsigned int reserved = xsk_ring_prod__reserve(&p->fill, n, &idx);
    for (unsigned int i = 0; i < reserved; i++)
        *xsk_ring_prod__fill_addr(&p->fill, idx + i) = frame_alloc();
    xsk_ring_prod__submit(&p->fill, reserved);
    p->fill_outstanding += reserved;
    if (xsk_ring_prod__needs_wakeup(&p->fill)) {
        unsigned long long t0 = rdtsc();
        recvfrom(p->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        tsc_round_syscalls += rdtsc() - t0;
    }
}

static inline unsigned int tx_unconsumed(const struct port *p)
{
    return p->tx.cached_prod - __atomic_load_n(p->tx.consumer, __ATOMIC_ACQUIRE);
}

/* Copy mode transmits a bounded batch per sendto and answers EAGAIN while more remains. */
static inline void kick(struct port *p)
{
    unsigned long long t0 = rdtsc();
    for (int attempt = 0; attempt < 8; attempt++) {
        if (sendto(p->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
            break;
        if ((errno != EAGAIN && errno != EBUSY) || tx_unconsumed(p) == 0)
            break;
    }
    tsc_round_syscalls += rdtsc() - t0;
}

static inline void complete(struct port *p)
{
    if (!p->tx_outstanding)
        return;
    __u32 idx;
    unsigned int n = xsk_ring_cons__peek(&p->comp, COMP_RING, &idx);
    if (!n)
        return;
    for (unsigned int i = 0; i < n; i++)
        frame_free(*xsk_ring_cons__comp_addr(&p->comp, idx + i));
    xsk_ring_cons__release(&p->comp, n);
    p->tx_outstanding -= n;
}

/* One burst from in's rx ring to out's tx ring; returns the frames received. */
static inline unsigned int forward(struct port *in, struct port *out)
{
    __u32 rx_idx, tx_idx = 0;
    unsigned int n = xsk_ring_cons__peek(&in->rx, BATCH, &rx_idx);
    if (!n) {
        refill(in);
        return 0;
    }
    unsigned int room = xsk_prod_nb_free(&out->tx, n);
    if (room < n) {
        kick(out);
        complete(out);
        room = xsk_prod_nb_free(&out->tx, n);
    }
    unsigned int m = n < room ? n : room;
    if (m) {
        xsk_ring_prod__reserve(&out->tx, m, &tx_idx);
        for (unsigned int i = 0; i < m; i++) {
            const struct xdp_desc *rx = xsk_ring_cons__rx_desc(&in->rx, rx_idx + i);
            struct xdp_desc *tx = xsk_ring_prod__tx_desc(&out->tx, tx_idx + i);
            tx->addr = rx->addr;
            tx->len = rx->len;
            tx->options = 0;
        }
    }
    for (unsigned int i = m; i < n; i++)
        frame_free(xsk_ring_cons__rx_desc(&in->rx, rx_idx + i)->addr);
    xsk_ring_cons__release(&in->rx, n);
    in->fill_outstanding -= n;
    in->rx_packets += n;
    if (m) {
        xsk_ring_prod__submit(&out->tx, m);
        out->tx_outstanding += m;
        out->tx_packets += m;
        if (xsk_ring_prod__needs_wakeup(&out->tx))
            kick(out);
    }
    out->tx_dropped += n - m;
    refill(in);
    return n;
}

int main(int argc, char **argv)
{
    const char *object_path = NULL;
    unsigned int queue = 0;
    int opt;
    while ((opt = getopt(argc, argv, "o:q:h")) != -1) {
        switch (opt) {
        case 'o': object_path = optarg; break;
        case 'q': queue = (unsigned int)strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: %s [-o vswift_redirect.bpf.o] [-q QUEUE] IF_A IF_B\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: %s [-o vswift_redirect.bpf.o] [-q QUEUE] IF_A IF_B\n", argv[0]);
        return 2;
    }
    if (!object_path)
        object_path = default_object();

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct port ports[2];
    memset(ports, 0, sizeof(ports));
    for (int i = 0; i < 2; i++) {
        ports[i].name = argv[optind + i];
        ports[i].ifindex = if_nametoindex(ports[i].name);
        if (!ports[i].ifindex)
            die(ports[i].name, errno);
    }

    size_t umem_bytes = (size_t)NUM_FRAMES * FRAME_SIZE;
    void *area = mmap(NULL, umem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (area == MAP_FAILED)
        die("mmap UMEM", errno);
    struct xsk_umem *umem;
    /* Zeroed: xsk_umem__create leaves cached_prod unset, and a garbage cached_prod makes every
     * refill write its addresses at the wrong ring index (the kernel then reads stale ones). */
    struct xsk_ring_prod umem_fill = {0};
    struct xsk_ring_cons umem_comp = {0};
    struct xsk_umem_config ucfg = {
        .fill_size = FILL_RING,
        .comp_size = COMP_RING,
        .frame_size = FRAME_SIZE,
        .frame_headroom = 0,
        .flags = 0,
    };
    int err = xsk_umem__create(&umem, area, umem_bytes, &umem_fill, &umem_comp, &ucfg);
    if (err)
        die("create UMEM", err);
    for (unsigned int i = 0; i < NUM_FRAMES; i++)
        frame_free((unsigned long long)(NUM_FRAMES - 1 - i) * FRAME_SIZE);

    for (int i = 0; i < 2; i++) {
        attach_program(&ports[i], object_path);
        open_socket(&ports[i], umem, queue, i == 0, &umem_fill, &umem_comp);
        refill(&ports[i]);
    }
    printf("xsk_fwd: ready pid=%d\n", (int)getpid());
    fflush(stdout);

    while (!stop_requested) {
        tsc_round_syscalls = 0;
        unsigned long long t0 = rdtsc();
        unsigned int received = forward(&ports[0], &ports[1]);
        received += forward(&ports[1], &ports[0]);
        for (int i = 0; i < 2; i++) {
            complete(&ports[i]);
            if (ports[i].tx_outstanding && tx_unconsumed(&ports[i]))
                kick(&ports[i]);
        }
        unsigned long long user = rdtsc() - t0 - tsc_round_syscalls;
        tsc_syscalls += tsc_round_syscalls;
        if (received)
            tsc_busy += user;
        else
            tsc_idle += user;
    }

    fprintf(stderr, "xsk_fwd: %s->%s %llu packets, %s->%s %llu packets, tx dropped %llu\n",
            ports[0].name, ports[1].name, ports[1].tx_packets, ports[1].name, ports[0].name,
            ports[0].tx_packets, ports[0].tx_dropped + ports[1].tx_dropped);
    fprintf(stderr, "xsk_fwd: tsc cycles busy %llu idle %llu syscalls %llu\n", tsc_busy, tsc_idle, tsc_syscalls);
    for (int i = 0; i < 2; i++) {
        struct xdp_statistics st;
        socklen_t len = sizeof(st);
        if (getsockopt(ports[i].fd, SOL_XDP, XDP_STATISTICS, &st, &len) == 0)
            fprintf(stderr, "xsk_fwd: %s socket: rx_dropped %llu rx_ring_full %llu rx_fill_ring_empty %llu "
                    "tx_ring_empty %llu; fill %u tx %u free %u\n", ports[i].name,
                    (unsigned long long)st.rx_dropped, (unsigned long long)st.rx_ring_full,
                    (unsigned long long)st.rx_fill_ring_empty_descs,
                    (unsigned long long)st.tx_ring_empty_descs, ports[i].fill_outstanding,
                    ports[i].tx_outstanding, free_count);
    }
    for (int i = 1; i >= 0; i--) {
        close(ports[i].link_fd);
        xsk_socket__delete(ports[i].xsk);
        bpf_object__close(ports[i].obj);
    }
    xsk_umem__delete(umem);
    munmap(area, umem_bytes);
    return 0;
}
