/* cpu_common.h — small helpers the cpu backend's files share: splitting n items into blocks, the thread count
 * oneDNN runs on, and bf16 values. */
#ifndef CTRAIN_BACKEND_CPU_COMMON_H
#define CTRAIN_BACKEND_CPU_COMMON_H

#include <omp.h>
#include <stdint.h>
#include <string.h>

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* First index of block b when n items are split into nb nearly equal contiguous blocks. */
static inline int64_t block_start(int64_t n, int b, int nb) { return n / nb * b + min64(b, n % nb); }

/* Sets the OpenMP thread count that oneDNN's calls (primitives, dnnl_sgemm) run on to threads; returns the
 * caller's, for cpu_threads_leave. */
static inline int cpu_threads_enter(int threads) {
    int saved = omp_get_max_threads();
    if (saved != threads) omp_set_num_threads(threads);
    return saved;
}
static inline void cpu_threads_leave(int threads, int saved) {
    if (saved != threads) omp_set_num_threads(saved);
}

/* A bf16 value (the upper half of an fp32) as float. */
static inline float bf16_widen(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f rounded to the nearest bf16, ties to even (as oneDNN's reorders round); NaN stays NaN. */
static inline uint16_t bf16_narrow(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#endif
