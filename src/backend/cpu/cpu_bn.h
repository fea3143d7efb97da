/* cpu_bn.h — batch norm of the cpu backend (cpu_bn.c), as a table of functions compiled once per instruction
 * set: cpu_bn_portable (AVX2, runs on every x86-64-v3 CPU) and cpu_bn_avx512 (AVX-512); cpu_bn_select picks. */
#ifndef CTRAIN_BACKEND_CPU_BN_H
#define CTRAIN_BACKEND_CPU_BN_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"

/* The activations of one batch-norm call, each stored fp32 or bf16 (ActType): forward reads x (and skip) and
 * writes out = y; backward reads x, dy and, after a ReLU, y, and writes out = dx. tm says which are bf16
 * (BN_X | BN_DY | BN_Y | BN_OUT; forward reads no dy, so there BN_SKIP, the same bit, marks the skip). The loops
 * take tm as a constant, so each combination compiles to its own vector loop that widens and narrows in
 * registers. */
typedef struct BnIo {
    const void *x, *dy, *y, *skip;
    void *out;
    unsigned tm;
} BnIo;
enum { BN_X = 1, BN_DY = 2, BN_Y = 4, BN_OUT = 8, BN_SKIP = BN_DY };

/* The batch-norm functions; activations [n, hw, c] in be's layout (act_block_of), per-channel arrays [c];
 * work: cpu_bn_work_bytes(be->threads) bytes of scratch. */
typedef struct CpuBn {
    const char *isa; /* "avx2" or "avx512" */
    /* Training forward of io->x into io->out: batch statistics into save_mean and save_invstd [c], running
     * statistics updated; with relu, y = max(BN(x) (+ io->skip when not NULL), 0). */
    void (*train)(Backend *be, double *work, int n, int64_t hw, int c, const BnIo *io, const float *gamma,
                  const float *beta, bool relu, float *save_mean, float *save_invstd, float *running_mean,
                  float *running_var, float momentum, float eps);
    /* Evaluation forward of io->x into io->out with the running statistics. */
    void (*eval)(Backend *be, int n, int64_t hw, int c, const BnIo *io, const float *gamma, const float *beta,
                 const float *running_mean, const float *running_var, float eps);
    /* Backward of io->dy, or (io->y not NULL) of dy * (y > 0), into io->out = dx, and dgamma, dbeta [c]. */
    void (*backward)(Backend *be, double *work, int n, int64_t hw, int c, const BnIo *io, const float *gamma,
                     const float *save_mean, const float *save_invstd, float *dgamma, float *dbeta);
} CpuBn;

extern const CpuBn cpu_bn_portable, cpu_bn_avx512;

/* The table for this CPU: cpu_bn_avx512 where the CPU has AVX-512 (x86-64-v4), else cpu_bn_portable. */
const CpuBn *cpu_bn_select(void);
/* Bytes of the work buffer the functions take for threads threads. */
size_t cpu_bn_work_bytes(int threads);

#endif
