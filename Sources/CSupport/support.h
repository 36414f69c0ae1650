/* CPU hints Swift has no spelling for. Header-only; nothing to link. */
#ifndef VSWIFT_CSUPPORT_H
#define VSWIFT_CSUPPORT_H

/* Start loading the cache line at p: the classifier probes several subtables per packet, and
 * issuing their loads together lets the memory system overlap the misses. */
static inline __attribute__((always_inline)) void vs_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
/* For a line about to be written (e.g. the headroom an encapsulation grows into). */
static inline __attribute__((always_inline)) void vs_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }

/* The time-stamp counter: constant rate, readable in user space for a few cycles, so the worker
 * can account where its time goes per round (as OVS's pmd-stats do) without a system call. */
static inline __attribute__((always_inline)) unsigned long long vs_rdtsc(void) { return __builtin_ia32_rdtsc(); }

/* Time-stamp-counter cycles taken by 4 * n dependent additions: 4 * n core cycles (one cycle of
 * latency each), so the ratio is the core clock over the TSC rate. */
static inline unsigned long long vs_tsc_for_dependent_adds(unsigned long long n) {
    unsigned long long x = 0, t0 = __builtin_ia32_rdtsc();
    for (unsigned long long i = 0; i < n; i++)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    return __builtin_ia32_rdtsc() - t0;
}

#endif
