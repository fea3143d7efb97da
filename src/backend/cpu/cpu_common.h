/* cpu_common.h — small helpers the cpu backend's files share: splitting n items into blocks and the thread count
 * oneDNN runs on (bf16 values: backend.h). */
#ifndef CTRAIN_BACKEND_CPU_COMMON_H
#define CTRAIN_BACKEND_CPU_COMMON_H

#include <omp.h>
#include <stdint.h>

#include "backend/backend.h"

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

#endif
