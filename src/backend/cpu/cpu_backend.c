/* cpu_backend.c — the "cpu" backend: convolutions through oneDNN (cpu_conv.c), every other operation in C
 * with OpenMP.
 *
 * Every parallel region runs on be->threads threads with static schedules, and every reduction is summed
 * in a fixed order (per-block partial sums combined in block order, blocks fixed by be->threads), so a run
 * is bit-for-bit repeatable for a given thread count. Activations whose channel count is a multiple of the
 * vector block (8 with AVX2, 16 with AVX-512) live in oneDNN's blocked layout nChwBc, where its convolution
 * kernels are fastest; the rest stay NHWC (backend.h). Inner loops run over the contiguous channels of one
 * block (all channels in NHWC) so they vectorize, and each channel is summed in the same order in both
 * layouts, so the layout changes no result of an operation other than the convolutions. Batch-norm
 * statistics accumulate in double (runs of BN_RUN rows are summed in float first), and batch norm walks memory in
 * order (image by image, block by block: a block's pixels are contiguous). The fused batch norm also reads and
 * writes bf16-stored activations (backend.h ActTypes; bf16_store), widening them to fp32 in registers. relu, add,
 * axpy, max pool (values and argmax), global average pool, sgd_step, channel_scale_forward and sample_scale give
 * exactly the reference backend's results; the blur sums its nine taps in float (the reference in double).
 *
 * The backend keeps scratch memory (batch-norm partial sums here, the oneDNN workspace in cpu_conv.c), so
 * calls on one backend run one at a time, like work queued on one GPU stream. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_conv.h"
#include "backend/ref/ref_backend.h"

#define ALIGN 64
#define PAR_BYTES ((size_t)1 << 20) /* memory functions below this size run on one thread */
#define BN_CHUNK 512                /* channels a batch-norm pass handles at a time */
#define BN_RUN 16                   /* rows batch-norm sums in float before adding them into double */
#define POOL_CB 16                  /* channels per max-pool backward task */
#define AVG_CB 64                   /* channels per average-pool task */
#define FC_RB 4                     /* output rows per fully-connected task */
#define FC_KC 256                   /* output columns per fully-connected task */
_Static_assert(FC_RB == 4, "fc_block and matmul_rows unroll 4 rows");

typedef struct CpuImpl {
    CpuConv *conv;
    BackendOps ops;  /* CPU_OPS, with bf16 set when the CPU has native bf16 dot products */
    double *bn_work; /* [threads, 2, BN_CHUNK] per-block partial sums of batch norm */
} CpuImpl;

static CpuImpl *impl_of(Backend *be) { return be->impl; }

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* First index of block b when n items are split into nb nearly equal contiguous blocks. */
static int64_t block_start(int64_t n, int b, int nb) { return n / nb * b + min64(b, n % nb); }
static size_t byte_block(size_t bytes, int b, int nb) { return (size_t)block_start((int64_t)bytes, b, nb); }

/* ---------------------------------------------------------------- memory */

/* Zeroes bytes at p, on several threads when it is large. */
static void par_zero(int threads, void *p, size_t bytes) {
    if (bytes < PAR_BYTES || threads <= 1) {
        if (bytes) memset(p, 0, bytes);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        size_t a = byte_block(bytes, t, threads), b = byte_block(bytes, t + 1, threads);
        memset((char *)p + a, 0, b - a);
    }
}

static void *cpu_alloc(Backend *be, size_t bytes) {
    size_t sz = bytes ? (bytes + ALIGN - 1) / ALIGN * ALIGN : ALIGN;
    void *p = aligned_alloc(ALIGN, sz);
    if (p) par_zero(be->threads, p, sz);
    return p;
}

static void cpu_free(Backend *be, void *p) { free(p); }

static void cpu_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    const char *s = src;
    char *d = dst;
    uintptr_t ds = (uintptr_t)dst, ss = (uintptr_t)src;
    bool overlap = ds < ss + bytes && ss < ds + bytes;
    if (bytes < PAR_BYTES || be->threads <= 1 || overlap) {
        if (bytes) memmove(dst, src, bytes);
        return;
    }
    int threads = be->threads;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        size_t a = byte_block(bytes, t, threads), b = byte_block(bytes, t + 1, threads);
        memcpy(d + a, s + a, b - a);
    }
}

static void cpu_zero(Backend *be, void *p, size_t bytes) { par_zero(be->threads, p, bytes); }

static int cpu_sync(Backend *be, Error *err) { return 0; }

/* ---------------------------------------------------------------- convolution (cpu_conv.c) */

static int cpu_conv_plan_op(Backend *be, const ConvDesc *d, void **plan, Error *err) {
    return cpu_conv_plan(impl_of(be)->conv, d, be->bf16, be->act_block, be->winograd, plan, err);
}
static void cpu_conv_plan_free_op(Backend *be, void *plan) { cpu_conv_plan_free(plan); }
static int cpu_conv_forward_op(Backend *be, void *plan, const void *x, const float *w, void *y, Error *err) {
    return cpu_conv_forward(plan, x, w, y, err);
}
static int cpu_conv_backward_data_op(Backend *be, void *plan, const void *dy, const float *w, void *dx,
                                     Error *err) {
    return cpu_conv_backward_data(plan, dy, w, dx, err);
}
static int cpu_conv_backward_weights_op(Backend *be, void *plan, const void *x, const void *dy, float *dw,
                                        Error *err) {
    return cpu_conv_backward_weights(plan, x, dy, dw, err);
}

/* ---------------------------------------------------------------- activation layout */

/* Where the channels of an activation x [n, hw, c] lie: in blocks of b channels, [n, c/b, hw, b]. NHWC is the
 * case b = c (one block); nChwBc has b = be->act_block. */
typedef struct ActView {
    int64_t hw;
    int c, b;
} ActView;

static ActView act_view(Backend *be, int64_t hw, int c) {
    int b = act_block_of(be, c);
    return (ActView){.hw = hw, .c = c, .b = b ? b : c};
}

/* Offset of channel ch of row r (pixel r % hw of image r / hw) in view v; the same channel of the image's next
 * pixel lies v->b floats on. */
static inline size_t view_offset(const ActView *v, int64_t r, int ch) {
    int64_t i = r / v->hw, p = r % v->hw;
    return (size_t)i * v->hw * v->c + (size_t)(ch / v->b) * v->hw * v->b + (size_t)p * v->b + ch % v->b;
}

/* Channels of [c0, c0 + cn) that lie next to each other in a row: all of them in NHWC, one block in nChwBc. */
static int view_segment(const ActView *v, int cn) { return v->b < cn ? v->b : cn; }

/* A thread's share of channels [c0, c0 + cn) of rows / hw images of a view, in memory order: tiles (the hw
 * pixels of one image's segment of seg channels; in NHWC the one segment holds every channel) taken image by
 * image and segment by segment, split between threads by pixel. */
typedef struct TileWalk {
    int64_t u, end, hw;
    int nb, seg;
} TileWalk;

static TileWalk tiles_start(const ActView *v, int64_t rows, int cn, int t, int threads) {
    int seg = view_segment(v, cn), nb = cn / seg;
    int64_t total = rows * nb;
    return (TileWalk){.u = block_start(total, t, threads), .end = block_start(total, t + 1, threads), .hw = v->hw,
                      .nb = nb, .seg = seg};
}

/* The next piece of tw's share: rows [*start, *end) of the segment at channel offset *off; false when done. */
static bool tiles_next(TileWalk *tw, int *off, int64_t *start, int64_t *end) {
    if (tw->u >= tw->end) return false;
    int64_t tile = tw->u / tw->hw, p = tw->u % tw->hw, i = tile / tw->nb, len = min64(tw->hw - p, tw->end - tw->u);
    *off = (int)(tile % tw->nb) * tw->seg;
    *start = i * tw->hw + p;
    *end = *start + len;
    tw->u += len;
    return true;
}

/* The batch-norm loops over segments of channels are inlined into each caller, and SEG_DISPATCH calls them
 * with a constant 8 or 16 for the blocked layouts' segments, so those rows compile to fixed-width vector code
 * (a variable width of 8 made them 1.6x slower than NHWC's long rows). */
#define SEG_INLINE static inline __attribute__((always_inline))
#define SEG_DISPATCH(seg, fn, ...)                   \
    do {                                             \
        if ((seg) == 8) fn(8, __VA_ARGS__);          \
        else if ((seg) == 16) fn(16, __VA_ARGS__);   \
        else fn((seg), __VA_ARGS__);                 \
    } while (0)

/* A pool descriptor for the NHWC kernels that covers d's tensors in be's layout: nChwBc [n, c/B, h, w, B] is
 * the NHWC tensor [n * c/B, h, w, B], and pooling, blur and per-channel scaling treat channels apart. */
static PoolDesc pool_view(Backend *be, const PoolDesc *d) {
    PoolDesc v = *d;
    int b = act_block_of(be, d->c);
    if (b) v.n = d->n * (d->c / b), v.c = b;
    return v;
}

/* ---------------------------------------------------------------- batch norm */

/* What the batch-norm sums add up: the moments of x, or the gradient sums of dy, or of dy * (y > 0) after a
 * ReLU whose output is y. The loops take it as a constant, one compiled loop each. */
typedef enum { SUM_MOMENTS, SUM_GRADS, SUM_GRADS_RELU } SumKind;

/* The activations of one batch-norm call, each stored fp32 or bf16 (ActType): forward reads x (and skip) and
 * writes out = y; backward reads x, dy and, after a ReLU, y, and writes out = dx. tm says which are bf16
 * (BN_X | BN_DY | BN_Y | BN_OUT; forward reads no dy, so there BN_SKIP, the same bit, marks the skip). The loops
 * below take tm as a constant (BN_TM_DISPATCH), so each combination compiles to its own vector loop that widens
 * and narrows in registers. */
typedef struct BnIo {
    const void *x, *dy, *y, *skip;
    void *out;
    unsigned tm;
} BnIo;
enum { BN_X = 1, BN_DY = 2, BN_Y = 4, BN_OUT = 8, BN_SKIP = BN_DY };

/* Calls fn(seg, tm, ...) with tm as a constant (tm < 16), through SEG_DISPATCH. */
#define BN_TM_CASE(k, seg, fn, ...) \
    case k: SEG_DISPATCH(seg, fn, k, __VA_ARGS__); break;
#define BN_TM_DISPATCH(tm, seg, fn, ...)                                                                    \
    do {                                                                                                    \
        switch (tm) {                                                                                       \
            BN_TM_CASE(0, seg, fn, __VA_ARGS__) BN_TM_CASE(1, seg, fn, __VA_ARGS__)                         \
            BN_TM_CASE(2, seg, fn, __VA_ARGS__) BN_TM_CASE(3, seg, fn, __VA_ARGS__)                         \
            BN_TM_CASE(4, seg, fn, __VA_ARGS__) BN_TM_CASE(5, seg, fn, __VA_ARGS__)                         \
            BN_TM_CASE(6, seg, fn, __VA_ARGS__) BN_TM_CASE(7, seg, fn, __VA_ARGS__)                         \
            BN_TM_CASE(8, seg, fn, __VA_ARGS__) BN_TM_CASE(9, seg, fn, __VA_ARGS__)                         \
            BN_TM_CASE(10, seg, fn, __VA_ARGS__) BN_TM_CASE(11, seg, fn, __VA_ARGS__)                       \
            BN_TM_CASE(12, seg, fn, __VA_ARGS__) BN_TM_CASE(13, seg, fn, __VA_ARGS__)                       \
            BN_TM_CASE(14, seg, fn, __VA_ARGS__) default: SEG_DISPATCH(seg, fn, 15, __VA_ARGS__); break;     \
        }                                                                                                   \
    } while (0)

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

/* Where element at of the activation p lies, stored bf16 when bit is in tm. */
static inline const void *bn_at(const void *p, unsigned tm, unsigned bit, size_t at) {
    return (const char *)p + at * ((tm & bit) ? sizeof(uint16_t) : sizeof(float));
}

/* Element i of the activation at p, stored bf16 when bit is in tm. */
#define BN_LD(tm, bit, p, i) (((tm) & (bit)) ? bf16_widen(((const uint16_t *)(p))[i]) : ((const float *)(p))[i])
/* Stores v as element i of the output at p (bf16 when tm has BN_OUT). */
#define BN_ST(tm, p, i, v)                                             \
    do {                                                               \
        if ((tm) & BN_OUT) ((uint16_t *)(p))[i] = bf16_narrow(v);      \
        else ((float *)(p))[i] = (v);                                  \
    } while (0)

/* The gradient batch norm's backward sees: dy, or with relu dy * (y > 0) as relu_backward computes it (dy is
 * read in any case, so the loops vectorize without masked loads). */
static inline float bn_grad(float dy, float y, bool relu) { return relu ? (y > 0 ? dy : 0.0f) : dy; }

/* Adds one row of seg channels at offset at into the float sums f1, f2 [seg] of its run: the moments
 * t = x - c, f1 += t, f2 += t * t; the gradient sums f1 += g, f2 += g * (x - c) with g = bn_grad. */
SEG_INLINE void sum_row(int seg, unsigned tm, SumKind kind, size_t at, const BnIo *io, const float *restrict c,
                        float *restrict f1, float *restrict f2) {
    const void *restrict x = bn_at(io->x, tm, BN_X, at);
    if (kind == SUM_MOMENTS) {
#pragma omp simd
        for (int j = 0; j < seg; j++) {
            float t = BN_LD(tm, BN_X, x, j) - c[j];
            f1[j] += t;
            f2[j] += t * t;
        }
        return;
    }
    bool relu = kind == SUM_GRADS_RELU;
    const void *restrict dy = bn_at(io->dy, tm, BN_DY, at), *restrict y = relu ? bn_at(io->y, tm, BN_Y, at) : NULL;
#pragma omp simd
    for (int j = 0; j < seg; j++) {
        float g = bn_grad(BN_LD(tm, BN_DY, dy, j), relu ? BN_LD(tm, BN_Y, y, j) : 0.0f, relu);
        f1[j] += g;
        f2[j] += g * (BN_LD(tm, BN_X, x, j) - c[j]);
    }
}

/* The sums of sum_row over rows [a, b) (of one image) of the segment of seg channels at channel ch, in runs of
 * BN_RUN rows counted from the block's first row `start`: a run is summed in float into f1, f2 [seg] and added
 * into double s1, s2 [seg] when it ends (or the block does, at row `end`). A run can go on in the next image's
 * tile, so every channel is summed in the same order in every layout. */
SEG_INLINE void sums_tile(int seg, unsigned tm, SumKind kind, const ActView *v, int ch, int64_t start, int64_t end,
                          int64_t a, int64_t b, const BnIo *io, const float *restrict c, float *restrict f1,
                          float *restrict f2, double *restrict s1, double *restrict s2) {
    size_t at = view_offset(v, a, ch);
    for (int64_t r = a; r < b;) {
        for (int64_t stop = min64(b, r + BN_RUN - (r - start) % BN_RUN); r < stop; r++, at += (size_t)v->b)
            sum_row(seg, tm, kind, at, io, c, f1, f2);
        if ((r - start) % BN_RUN == 0 || r == end) {
#pragma omp simd
            for (int j = 0; j < seg; j++) {
                s1[j] += f1[j], s2[j] += f2[j];
                f1[j] = f2[j] = 0;
            }
        }
    }
}

/* Per-block sums over rows of channels [c0, c0+cn) of io->x [n, hw, c] (view v), each block a contiguous share
 * of the rows walked in memory order (image by image, segment by segment): kind SUM_MOMENTS gives
 * s1 = sum (x - c), s2 = sum (x - c)^2 shifted by c [cn] = the first row (keeps the one-pass variance
 * accurate); the others s1 = sum g, s2 = sum g * (x - c) with c = the mean and g = bn_grad(dy, y).
 * part [blocks, 2, BN_CHUNK]. */
static void bn_partial_sums(int blocks, int64_t rows, const ActView *v, int c0, int cn, SumKind kind,
                            const BnIo *io, const float *c, double *part) {
    int seg = view_segment(v, cn);
    unsigned tm = io->tm & (kind == SUM_MOMENTS ? BN_X : kind == SUM_GRADS ? BN_X | BN_DY : BN_X | BN_DY | BN_Y);
#pragma omp parallel for schedule(static) num_threads(blocks)
    for (int t = 0; t < blocks; t++) {
        double *restrict s1 = part + (size_t)t * 2 * BN_CHUNK, *restrict s2 = s1 + BN_CHUNK;
        float f1[cn], f2[cn];
        for (int j = 0; j < cn; j++) s1[j] = s2[j] = 0, f1[j] = f2[j] = 0;
        int64_t start = block_start(rows, t, blocks), end = block_start(rows, t + 1, blocks);
        for (int64_t a = start, b; a < end; a = b) {
            b = min64(end, (a / v->hw + 1) * v->hw);
            for (int q = 0; q < cn; q += seg) {
                if (kind == SUM_MOMENTS)
                    BN_TM_DISPATCH(tm, seg, sums_tile, SUM_MOMENTS, v, c0 + q, start, end, a, b, io, c + q, f1 + q,
                                   f2 + q, s1 + q, s2 + q);
                else if (kind == SUM_GRADS)
                    BN_TM_DISPATCH(tm, seg, sums_tile, SUM_GRADS, v, c0 + q, start, end, a, b, io, c + q, f1 + q,
                                   f2 + q, s1 + q, s2 + q);
                else
                    BN_TM_DISPATCH(tm, seg, sums_tile, SUM_GRADS_RELU, v, c0 + q, start, end, a, b, io, c + q,
                                   f1 + q, f2 + q, s1 + q, s2 + q);
            }
        }
    }
}

/* Sums slot j of the two partial rows of every block of part [blocks, 2, BN_CHUNK], in block order. */
static void bn_combine(int blocks, const double *part, int j, double *a, double *b) {
    double s1 = 0, s2 = 0;
    for (int t = 0; t < blocks; t++) {
        s1 += part[(size_t)t * 2 * BN_CHUNK + j];
        s2 += part[(size_t)t * 2 * BN_CHUNK + BN_CHUNK + j];
    }
    *a = s1;
    *b = s2;
}

/* Batch statistics of channels [c0, c0+cn) of io->x [n, hw, c] (view v): fills save_mean, save_invstd and
 * mean_lo [cn] (the part of the mean that save_mean's float cannot hold), and updates the running stats. */
static void bn_stats_chunk(Backend *be, int64_t rows, const ActView *v, int c0, int cn, const BnIo *io,
                           float *save_mean, float *save_invstd, float *mean_lo, float *running_mean,
                           float *running_var, float momentum, float eps) {
    double *part = impl_of(be)->bn_work;
    float k[BN_CHUNK];
    int seg = view_segment(v, cn);
    for (int q = 0; q < cn; q += seg) {
        size_t at = view_offset(v, 0, c0 + q);
        for (int j = 0; j < seg; j++) k[q + j] = BN_LD(io->tm, BN_X, io->x, at + j);
    }
    bn_partial_sums(be->threads, rows, v, c0, cn, SUM_MOMENTS, io, k, part);
    for (int j = 0; j < cn; j++) {
        int ch = c0 + j;
        double s1, s2;
        bn_combine(be->threads, part, j, &s1, &s2);
        double dm = s1 / (double)rows, var_sum = s2 - s1 * dm;
        if (var_sum < 0) var_sum = 0;
        double mean = k[j] + dm, var = var_sum / (double)rows;
        save_mean[ch] = (float)mean;
        mean_lo[j] = (float)(mean - save_mean[ch]);
        save_invstd[ch] = (float)(1.0 / sqrt(var + eps));
        double unbiased = rows > 1 ? var_sum / (double)(rows - 1) : var;
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
}

/* y = ((x - mean) - mean_lo) * scale + shift on rows [start, end) (of one image) of the segment of seg channels
 * at channel ch of io->x, io->out = y [n, hw, c] (view v), then with relu y = max(y (+ io->skip when not NULL),
 * 0) as add and relu_forward compute it; the per-channel arrays are [seg]. mean + mean_lo is the mean to twice
 * float precision: x - mean is exact for x near it. */
SEG_INLINE void apply_segment(int seg, unsigned tm, const ActView *v, int ch, int64_t start, int64_t end,
                              const BnIo *io, const float *restrict mean, const float *restrict mean_lo,
                              const float *restrict scale, const float *restrict shift, bool relu) {
    size_t at = view_offset(v, start, ch);
    for (int64_t r = start; r < end; r++, at += (size_t)v->b) {
        const void *restrict xr = bn_at(io->x, tm, BN_X, at);
        void *restrict yr = (void *)bn_at(io->out, tm, BN_OUT, at);
        if (relu && io->skip) {
            const void *restrict sr = bn_at(io->skip, tm, BN_SKIP, at);
#pragma omp simd
            for (int j = 0; j < seg; j++) {
                float o = ((BN_LD(tm, BN_X, xr, j) - mean[j]) - mean_lo[j]) * scale[j] + shift[j];
                o = o + BN_LD(tm, BN_SKIP, sr, j);
                BN_ST(tm, yr, j, o > 0 ? o : 0.0f);
            }
        } else if (relu) {
#pragma omp simd
            for (int j = 0; j < seg; j++) {
                float o = ((BN_LD(tm, BN_X, xr, j) - mean[j]) - mean_lo[j]) * scale[j] + shift[j];
                BN_ST(tm, yr, j, o > 0 ? o : 0.0f);
            }
        } else {
#pragma omp simd
            for (int j = 0; j < seg; j++)
                BN_ST(tm, yr, j, ((BN_LD(tm, BN_X, xr, j) - mean[j]) - mean_lo[j]) * scale[j] + shift[j]);
        }
    }
}

/* apply_segment over channels [c0, c0+cn) of every row, in memory order; the per-channel arrays are [cn]. */
static void bn_apply_chunk(int threads, int64_t rows, const ActView *v, int c0, int cn, const BnIo *io,
                           const float *mean, const float *mean_lo, const float *scale, const float *shift,
                           bool relu) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        TileWalk tw = tiles_start(v, rows, cn, t, threads);
        int j;
        int64_t start, end;
        while (tiles_next(&tw, &j, &start, &end))
            BN_TM_DISPATCH(io->tm & (BN_X | BN_OUT | BN_SKIP), tw.seg, apply_segment, v, c0 + j, start, end, io,
                           mean + j, mean_lo + j, scale + j, shift + j, relu);
    }
}

/* Training batch norm of io->x [n, hw, c] into io->out, followed by ReLU when relu, after adding io->skip
 * [n, hw, c] when not NULL. */
static void bn_train(Backend *be, int n, int64_t hw, int c, const BnIo *io, const float *gamma, const float *beta,
                     bool relu, float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                     float momentum, float eps) {
    float scale[BN_CHUNK], mean_lo[BN_CHUNK];
    ActView v = act_view(be, hw, c);
    int64_t rows = (int64_t)n * hw;
    for (int c0 = 0; c0 < c; c0 += BN_CHUNK) {
        int cn = (int)min64(BN_CHUNK, c - c0);
        bn_stats_chunk(be, rows, &v, c0, cn, io, save_mean, save_invstd, mean_lo, running_mean, running_var,
                       momentum, eps);
        for (int j = 0; j < cn; j++) scale[j] = save_invstd[c0 + j] * gamma[c0 + j];
        bn_apply_chunk(be->threads, rows, &v, c0, cn, io, save_mean + c0, mean_lo, scale, beta + c0, relu);
    }
}

static void cpu_bn_forward_train(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                                 const float *beta, float *y, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, float momentum, float eps) {
    BnIo io = {.x = x, .out = y};
    bn_train(be, n, hw, c, &io, gamma, beta, false, save_mean, save_invstd, running_mean, running_var, momentum,
             eps);
}

static void cpu_bn_relu_forward_train(Backend *be, int n, int64_t hw, int c, ActTypes t, const void *x,
                                      const void *skip, const float *gamma, const float *beta, void *y,
                                      float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                                      float momentum, float eps) {
    BnIo io = {.x = x, .skip = skip, .out = y,
               .tm = (t.x == ACT_BF16 ? BN_X : 0) | (t.y == ACT_BF16 ? BN_OUT : 0) |
                     (skip && t.skip == ACT_BF16 ? BN_SKIP : 0)};
    bn_train(be, n, hw, c, &io, gamma, beta, true, save_mean, save_invstd, running_mean, running_var, momentum,
             eps);
}

static void cpu_bn_forward_eval(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                                const float *beta, const float *running_mean, const float *running_var,
                                float eps, float *y) {
    float scale[BN_CHUNK], zero[BN_CHUNK] = {0};
    ActView v = act_view(be, hw, c);
    BnIo io = {.x = x, .out = y};
    for (int c0 = 0; c0 < c; c0 += BN_CHUNK) {
        int cn = (int)min64(BN_CHUNK, c - c0);
        for (int j = 0; j < cn; j++)
            scale[j] = (float)(gamma[c0 + j] / sqrt((double)running_var[c0 + j] + eps));
        bn_apply_chunk(be->threads, (int64_t)n * hw, &v, c0, cn, &io, running_mean + c0, zero, scale, beta + c0,
                       false);
    }
}

/* dx = a * (g - b - (x - mean) * k) with g = bn_grad (dy * (y > 0) with relu) on rows [start, end) (of one
 * image) of the segment of seg channels at channel ch of io's x, dy, y and out = dx (view v); mean, a, b, k
 * [seg]. */
SEG_INLINE void backward_apply_segment(int seg, unsigned tm, bool relu, const ActView *v, int ch, int64_t start,
                                       int64_t end, const BnIo *io, const float *restrict mean,
                                       const float *restrict a, const float *restrict b, const float *restrict k) {
    size_t at = view_offset(v, start, ch);
    for (int64_t r = start; r < end; r++, at += (size_t)v->b) {
        const void *restrict xr = bn_at(io->x, tm, BN_X, at), *restrict dyr = bn_at(io->dy, tm, BN_DY, at);
        const void *restrict yr = relu ? bn_at(io->y, tm, BN_Y, at) : NULL;
        void *restrict dr = (void *)bn_at(io->out, tm, BN_OUT, at);
#pragma omp simd
        for (int j = 0; j < seg; j++) {
            float g = bn_grad(BN_LD(tm, BN_DY, dyr, j), relu ? BN_LD(tm, BN_Y, yr, j) : 0.0f, relu);
            BN_ST(tm, dr, j, a[j] * (g - b[j] - (BN_LD(tm, BN_X, xr, j) - mean[j]) * k[j]));
        }
    }
}

/* backward_apply_segment over channels [c0, c0+cn) of every row, in memory order; mean, a, b, k [cn]. */
static void bn_backward_apply_chunk(int threads, int64_t rows, const ActView *v, int c0, int cn, const BnIo *io,
                                    const float *mean, const float *a, const float *b, const float *k) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        TileWalk tw = tiles_start(v, rows, cn, t, threads);
        int j;
        int64_t start, end;
        while (tiles_next(&tw, &j, &start, &end)) {
            if (io->y)
                BN_TM_DISPATCH(io->tm, tw.seg, backward_apply_segment, true, v, c0 + j, start, end, io, mean + j,
                               a + j, b + j, k + j);
            else
                BN_TM_DISPATCH(io->tm & ~(unsigned)BN_Y, tw.seg, backward_apply_segment, false, v, c0 + j, start,
                               end, io, mean + j, a + j, b + j, k + j);
        }
    }
}

/* Batch-norm backward of io->dy, or (io->y not NULL) of dy * (y > 0), into io->out = dx; all [n, hw, c]. */
static void bn_backward(Backend *be, int n, int64_t hw, int c, const BnIo *io, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dgamma, float *dbeta) {
    double *part = impl_of(be)->bn_work;
    float a[BN_CHUNK], b[BN_CHUNK], k[BN_CHUNK];
    ActView v = act_view(be, hw, c);
    int64_t rows = (int64_t)n * hw;
    for (int c0 = 0; c0 < c; c0 += BN_CHUNK) {
        int cn = (int)min64(BN_CHUNK, c - c0);
        bn_partial_sums(be->threads, rows, &v, c0, cn, io->y ? SUM_GRADS_RELU : SUM_GRADS, io, save_mean + c0,
                        part);
        for (int j = 0; j < cn; j++) {
            int ch = c0 + j;
            double sdy, sdyx;
            bn_combine(be->threads, part, j, &sdy, &sdyx);
            double invstd = save_invstd[ch], dg = sdyx * invstd;
            dgamma[ch] = (float)dg;
            dbeta[ch] = (float)sdy;
            a[j] = (float)(gamma[ch] * invstd);
            b[j] = (float)(sdy / (double)rows);
            k[j] = (float)(dg * invstd / (double)rows);
        }
        bn_backward_apply_chunk(be->threads, rows, &v, c0, cn, io, save_mean + c0, a, b, k);
    }
}

static void cpu_bn_backward(Backend *be, int n, int64_t hw, int c, const float *x, const float *dy,
                            const float *gamma, const float *save_mean, const float *save_invstd, float *dx,
                            float *dgamma, float *dbeta) {
    BnIo io = {.x = x, .dy = dy, .out = dx};
    bn_backward(be, n, hw, c, &io, gamma, save_mean, save_invstd, dgamma, dbeta);
}

static void cpu_bn_relu_backward(Backend *be, int n, int64_t hw, int c, ActTypes t, const void *x, const void *y,
                                 const void *dy, const float *gamma, const float *save_mean, const float *save_invstd,
                                 void *dx, float *dgamma, float *dbeta) {
    BnIo io = {.x = x, .dy = dy, .y = y, .out = dx,
               .tm = (t.x == ACT_BF16 ? BN_X : 0) | (t.dy == ACT_BF16 ? BN_DY : 0) | (t.y == ACT_BF16 ? BN_Y : 0) |
                     (t.dx == ACT_BF16 ? BN_OUT : 0)};
    bn_backward(be, n, hw, c, &io, gamma, save_mean, save_invstd, dgamma, dbeta);
}

/* ---------------------------------------------------------------- elementwise */

static void cpu_relu_forward(Backend *be, int64_t n, const float *x, float *y) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

static void cpu_relu_backward_bf16(Backend *be, int64_t n, const void *y, const float *dy, float *dx) {
    const uint16_t *h = y;
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) {
        float d = dy[i]; /* as in cpu_relu_backward */
        dx[i] = bf16_widen(h[i]) > 0 ? d : 0.0f;
    }
}

static void cpu_relu_backward(Backend *be, int64_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) {
        float d = dy[i]; /* read in any case: a conditional read compiles to slow masked loads */
        dx[i] = y[i] > 0 ? d : 0.0f;
    }
}

static void cpu_add(Backend *be, int64_t n, const float *a, const float *b, float *y) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void cpu_add_relu(Backend *be, int64_t n, const float *a, const float *b, float *y) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) {
        float v = a[i] + b[i];
        y[i] = v > 0 ? v : 0.0f;
    }
}

static void cpu_axpy(Backend *be, int64_t n, float alpha, const float *x, float *y) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* ---------------------------------------------------------------- pooling */

/* Max over one window for all channels: y, argmax [c] of output (oy, ox) from image x [h, w, c]. The first
 * maximum in scan order wins; a NaN wins and ends the scan for its channel (as the reference does). */
static void maxpool_pixel(const PoolDesc *d, const float *x, int oy, int ox, float *restrict y,
                          int32_t *restrict argmax) {
    int y0 = oy * d->stride - d->pad, x0 = ox * d->stride - d->pad, c = d->c;
    int ky0 = y0 < 0 ? -y0 : 0, ky1 = d->h - y0 < d->k ? d->h - y0 : d->k;
    int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->w - x0 < d->k ? d->w - x0 : d->k;
    if (ky0 >= ky1 || kx0 >= kx1) {
        for (int j = 0; j < c; j++) y[j] = -INFINITY, argmax[j] = -1;
        return;
    }
    int32_t at = (y0 + ky0) * d->w + x0 + kx0;
    const float *first = x + (size_t)at * c;
    for (int j = 0; j < c; j++) y[j] = first[j], argmax[j] = at;
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = ky == ky0 ? kx0 + 1 : kx0; kx < kx1; kx++) {
            int32_t idx = (y0 + ky) * d->w + x0 + kx;
            const float *xp = x + (size_t)idx * c;
#pragma omp simd
            for (int j = 0; j < c; j++) {
                float v = xp[j], b = y[j];
                int take = (b == b) & !(v <= b); /* best is not NaN, and v is larger or NaN */
                y[j] = take ? v : b;
                argmax[j] = take ? idx : argmax[j];
            }
        }
}

static void cpu_maxpool_forward(Backend *be, const PoolDesc *pd, const float *x, float *y, int32_t *argmax) {
    PoolDesc view = pool_view(be, pd);
    const PoolDesc *d = &view;
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++) {
                size_t o = (((size_t)n * d->oh + oy) * d->ow + ox) * d->c;
                maxpool_pixel(d, x + (size_t)n * d->h * d->w * d->c, oy, ox, y + o, argmax + o);
            }
}

/* Scatters dy through argmax for image n and channels [c0, c0+cn), in output order as the reference. */
static void maxpool_backward_block(const PoolDesc *d, int n, int c0, int cn, const float *dy,
                                   const int32_t *argmax, float *dx) {
    size_t hw = (size_t)d->h * d->w, ohw = (size_t)d->oh * d->ow, c = (size_t)d->c;
    float *dxn = dx + n * hw * c + c0;
    for (size_t p = 0; p < hw; p++)
        for (int j = 0; j < cn; j++) dxn[p * c + j] = 0.0f;
    for (size_t o = 0; o < ohw; o++) {
        size_t oi = (n * ohw + o) * c + c0;
        for (int j = 0; j < cn; j++) dxn[(size_t)argmax[oi + j] * c + j] += dy[oi + j];
    }
}

static void cpu_maxpool_backward(Backend *be, const PoolDesc *pd, const float *dy, const int32_t *argmax,
                                 float *dx) {
    PoolDesc view = pool_view(be, pd);
    const PoolDesc *d = &view;
    int blocks = (d->c + POOL_CB - 1) / POOL_CB;
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int n = 0; n < d->n; n++)
        for (int b = 0; b < blocks; b++) {
            int c0 = b * POOL_CB;
            maxpool_backward_block(d, n, c0, (int)min64(POOL_CB, d->c - c0), dy, argmax, dx);
        }
}

/* nChwBc [n, c/B, hw, B] is NHWC [n * c/B, hw, B] for operations that treat channels apart, and their
 * per-sample vectors [n * c/B, B] are [n, c]: rewrites n and c for be's layout. */
static void sample_view(Backend *be, int *n, int *c) {
    int b = act_block_of(be, *c);
    if (b) *n *= *c / b, *c = b;
}

static void cpu_avgpool_forward(Backend *be, int n, int hw, int c, const float *x, float *y) {
    sample_view(be, &n, &c);
    int blocks = (c + AVG_CB - 1) / AVG_CB;
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int i = 0; i < n; i++)
        for (int b = 0; b < blocks; b++) {
            int c0 = b * AVG_CB, cn = (int)min64(AVG_CB, c - c0);
            double s[AVG_CB] = {0};
            for (int p = 0; p < hw; p++) {
                const float *xp = x + ((size_t)i * hw + p) * c + c0;
#pragma omp simd
                for (int j = 0; j < cn; j++) s[j] += xp[j];
            }
            for (int j = 0; j < cn; j++) y[(size_t)i * c + c0 + j] = (float)(s[j] / hw);
        }
}

static void cpu_avgpool_backward(Backend *be, int n, int hw, int c, const float *dy, float *dx) {
    sample_view(be, &n, &c);
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++) {
            const float *g = dy + (size_t)i * c;
            float *dp = dx + ((size_t)i * hw + p) * c;
#pragma omp simd
            for (int j = 0; j < c; j++) dp[j] = g[j] / (float)hw;
        }
}

/* ---------------------------------------------------------------- model surgery */

/* BlurPool's [1,2,1] / 4 per axis; the 2-D taps (products) are exact in float. */
static const float BLUR_TAP[3] = {0.25f, 0.5f, 0.25f};

/* One output pixel of the blur for all channels: y [c] at (oy, ox) from image x [h, w, c]; taps summed in
 * scan order in float, vectorized over channels. */
static void blur_pixel(const PoolDesc *d, const float *x, int oy, int ox, float *restrict y) {
    int y0 = oy * d->stride - 1, x0 = ox * d->stride - 1, c = d->c;
    int ky0 = y0 < 0 ? -y0 : 0, ky1 = d->h - y0 < 3 ? d->h - y0 : 3;
    int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->w - x0 < 3 ? d->w - x0 : 3;
    for (int j = 0; j < c; j++) y[j] = 0.0f;
    for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++) {
            const float *xp = x + ((size_t)(y0 + ky) * d->w + x0 + kx) * c;
            float t = BLUR_TAP[ky] * BLUR_TAP[kx];
#pragma omp simd
            for (int j = 0; j < c; j++) y[j] += t * xp[j];
        }
}

static void cpu_blur_forward(Backend *be, const PoolDesc *pd, const float *x, float *y) {
    PoolDesc view = pool_view(be, pd);
    const PoolDesc *d = &view;
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                blur_pixel(d, x + (size_t)n * d->h * d->w * d->c, oy, ox,
                           y + (((size_t)n * d->oh + oy) * d->ow + ox) * d->c);
}

/* One input pixel's gradient for all channels: dx [c] at (iy, ix) gathers the outputs whose window covered it
 * from dy [oh, ow, c] (no scatter, so threads never share an output). */
static void blur_backward_pixel(const PoolDesc *d, const float *dy, int iy, int ix, float *restrict dx) {
    int c = d->c, s = d->stride;
    for (int j = 0; j < c; j++) dx[j] = 0.0f;
    for (int ky = 0; ky < 3; ky++) {
        int ty = iy + 1 - ky; /* = oy * stride */
        if (ty < 0 || ty % s || ty / s >= d->oh) continue;
        for (int kx = 0; kx < 3; kx++) {
            int tx = ix + 1 - kx;
            if (tx < 0 || tx % s || tx / s >= d->ow) continue;
            const float *gp = dy + ((size_t)(ty / s) * d->ow + tx / s) * c;
            float t = BLUR_TAP[ky] * BLUR_TAP[kx];
#pragma omp simd
            for (int j = 0; j < c; j++) dx[j] += t * gp[j];
        }
    }
}

static void cpu_blur_backward(Backend *be, const PoolDesc *pd, const float *dy, float *dx) {
    PoolDesc view = pool_view(be, pd);
    const PoolDesc *d = &view;
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int n = 0; n < d->n; n++)
        for (int iy = 0; iy < d->h; iy++)
            for (int ix = 0; ix < d->w; ix++)
                blur_backward_pixel(d, dy + (size_t)n * d->oh * d->ow * d->c, iy, ix,
                                    dx + (((size_t)n * d->h + iy) * d->w + ix) * d->c);
}

static void cpu_sigmoid_forward(Backend *be, int64_t n, const float *x, float *y) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads) if (n > (1 << 14))
    for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i]));
}

static void cpu_sigmoid_backward(Backend *be, int64_t n, const float *y, const float *dy, float *dx) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads) if (n > (1 << 14))
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
}

/* y = x * s on tensors already in NHWC form (see sample_view). */
static void channel_scale_nhwc(Backend *be, int n, int hw, int c, const float *x, const float *s, float *y) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++) {
            const float *xp = x + ((size_t)i * hw + p) * c, *sp = s + (size_t)i * c;
            float *yp = y + ((size_t)i * hw + p) * c;
#pragma omp simd
            for (int j = 0; j < c; j++) yp[j] = xp[j] * sp[j];
        }
}

static void cpu_channel_scale_forward(Backend *be, int n, int hw, int c, const float *x, const float *s, float *y) {
    sample_view(be, &n, &c);
    channel_scale_nhwc(be, n, hw, c, x, s, y);
}

static void cpu_channel_scale_backward(Backend *be, int n, int hw, int c, const float *x, const float *s,
                                       const float *dy, float *dx, float *ds) {
    sample_view(be, &n, &c);
    if (dx) channel_scale_nhwc(be, n, hw, c, dy, s, dx); /* dx = dy * s */
    if (!ds) return;
    int blocks = (c + AVG_CB - 1) / AVG_CB;
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int i = 0; i < n; i++)
        for (int b = 0; b < blocks; b++) {
            int c0 = b * AVG_CB, cn = (int)min64(AVG_CB, c - c0);
            double acc[AVG_CB] = {0};
            for (int p = 0; p < hw; p++) {
                const float *xp = x + ((size_t)i * hw + p) * c + c0, *gp = dy + ((size_t)i * hw + p) * c + c0;
#pragma omp simd
                for (int j = 0; j < cn; j++) acc[j] += (double)gp[j] * xp[j];
            }
            for (int j = 0; j < cn; j++) ds[(size_t)i * c + c0 + j] = (float)acc[j];
        }
}

#define SCALE_CHUNK 4096 /* floats per sample_scale task */

static void cpu_sample_scale(Backend *be, int n, int64_t inner, const float *s, const float *x, float *y) {
    int64_t chunks = (inner + SCALE_CHUNK - 1) / SCALE_CHUNK;
#pragma omp parallel for collapse(2) schedule(static) num_threads(be->threads)
    for (int i = 0; i < n; i++)
        for (int64_t b = 0; b < chunks; b++) {
            int64_t j0 = b * SCALE_CHUNK, j1 = min64(j0 + SCALE_CHUNK, inner);
            const float *xp = x + (size_t)i * inner;
            float *yp = y + (size_t)i * inner, si = s[i];
#pragma omp simd
            for (int64_t j = j0; j < j1; j++) yp[j] = xp[j] * si;
        }
}

/* ---------------------------------------------------------------- fully connected */

/* y [n, cout] at samples i0..i0+ni and outputs o0..o0+no (ni, no <= 4) = b [cout] + dot(x [n, cin] row i,
 * w [cout, cin] row o), summed in double: 4 x 4 dot products at a time, so that every value loaded (and widened
 * to double) serves four of them. A block short of 4 repeats its last row and drops the extra sums. */
static void fc_block(int cin, int i0, int ni, int o0, int no, const float *x, const float *w, const float *b,
                     int cout, float *y) {
    const float *xr[4], *wr[4];
    for (int r = 0; r < 4; r++) {
        xr[r] = x + (size_t)(i0 + (r < ni ? r : ni - 1)) * cin;
        wr[r] = w + (size_t)(o0 + (r < no ? r : no - 1)) * cin;
    }
    const float *restrict x0 = xr[0], *restrict x1 = xr[1], *restrict x2 = xr[2], *restrict x3 = xr[3];
    const float *restrict w0 = wr[0], *restrict w1 = wr[1], *restrict w2 = wr[2], *restrict w3 = wr[3];
    double s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
    double s20 = 0, s21 = 0, s22 = 0, s23 = 0, s30 = 0, s31 = 0, s32 = 0, s33 = 0;
#pragma omp simd reduction(+ : s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33)
    for (int k = 0; k < cin; k++) {
        double a0 = x0[k], a1 = x1[k], a2 = x2[k], a3 = x3[k], c0 = w0[k], c1 = w1[k], c2 = w2[k], c3 = w3[k];
        s00 += a0 * c0, s01 += a0 * c1, s02 += a0 * c2, s03 += a0 * c3;
        s10 += a1 * c0, s11 += a1 * c1, s12 += a1 * c2, s13 += a1 * c3;
        s20 += a2 * c0, s21 += a2 * c1, s22 += a2 * c2, s23 += a2 * c3;
        s30 += a3 * c0, s31 += a3 * c1, s32 += a3 * c2, s33 += a3 * c3;
    }
    const double s[4][4] = {{s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23}, {s30, s31, s32, s33}};
    for (int r = 0; r < ni; r++)
        for (int q = 0; q < no; q++)
            y[(size_t)(i0 + r) * cout + o0 + q] = (float)((b ? b[o0 + q] : 0.0) + s[r][q]);
}

static void cpu_fc_forward(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *b,
                           float *y) {
    int blocks = (cout + FC_RB - 1) / FC_RB;
    /* a task is FC_RB rows of w (read from memory once) against every sample (x stays in cache) */
#pragma omp parallel for schedule(static) num_threads(be->threads)
    for (int ob = 0; ob < blocks; ob++) {
        int o0 = ob * FC_RB, no = (int)min64(FC_RB, cout - o0);
        for (int i0 = 0; i0 < n; i0 += 4) fc_block(cin, i0, (int)min64(4, n - i0), o0, no, x, w, b, cout, y);
    }
}

/* out [rows, cols] = sum_j a(r, j) * bm [inner, cols], with a(r, j) = a[r * a_rs + j * a_js]; accumulates in
 * double, in order of j, over tasks of FC_RB rows x FC_KC columns: each value of bm is widened once for the
 * task's FC_RB rows (a block short of FC_RB rows multiplies by 0 for the missing ones). */
static void matmul_rows(int threads, int rows, int inner, int cols, const float *a, size_t a_rs, size_t a_js,
                        const float *bm, float *out) {
    int rblocks = (rows + FC_RB - 1) / FC_RB, kblocks = (cols + FC_KC - 1) / FC_KC;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int rbk = 0; rbk < rblocks; rbk++)
        for (int kb = 0; kb < kblocks; kb++) {
            int r0 = rbk * FC_RB, rb = (int)min64(FC_RB, rows - r0);
            int k0 = kb * FC_KC, kn = (int)min64(FC_KC, cols - k0);
            double acc[FC_RB][FC_KC] = {{0}};
            for (int j = 0; j < inner; j++) {
                const float *restrict bj = bm + (size_t)j * cols + k0;
                double av[FC_RB];
                for (int r = 0; r < FC_RB; r++) av[r] = r < rb ? a[(size_t)(r0 + r) * a_rs + (size_t)j * a_js] : 0.0;
                double *restrict c0 = acc[0], *restrict c1 = acc[1], *restrict c2 = acc[2], *restrict c3 = acc[3];
#pragma omp simd
                for (int k = 0; k < kn; k++) {
                    double v = bj[k];
                    c0[k] += av[0] * v, c1[k] += av[1] * v, c2[k] += av[2] * v, c3[k] += av[3] * v;
                }
            }
            for (int r = 0; r < rb; r++)
                for (int k = 0; k < kn; k++) out[(size_t)(r0 + r) * cols + k0 + k] = (float)acc[r][k];
        }
}

static void cpu_fc_backward(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *dy,
                            float *dx, float *dw, float *db) {
    if (dx) matmul_rows(be->threads, n, cout, cin, dy, (size_t)cout, 1, w, dx);   /* dx = dy w */
    matmul_rows(be->threads, cout, n, cin, dy, 1, (size_t)cout, x, dw);           /* dw = dy^T x */
    if (!db) return;
#pragma omp parallel for schedule(static) num_threads(be->threads)
    for (int o = 0; o < cout; o++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += dy[(size_t)i * cout + o];
        db[o] = (float)s;
    }
}

/* ---------------------------------------------------------------- loss */

/* The reference loss, run on blocks of rows in parallel: the loss is a few thousand numbers per step, so
 * the reference's double-precision loop is fast enough and needs no second implementation. */
static void cpu_loss_forward_backward(Backend *be, LossKind kind, int n, int c, const float *logits,
                                      const float *target, float grad_scale, float *loss, float *dlogits) {
    const BackendOps *ref = ref_backend_ops();
    int blocks = be->threads < n ? be->threads : (n > 0 ? n : 1);
#pragma omp parallel for schedule(static) num_threads(blocks)
    for (int b = 0; b < blocks; b++) {
        int64_t r0 = block_start(n, b, blocks), r1 = block_start(n, b + 1, blocks);
        size_t off = (size_t)r0 * c;
        ref->loss_forward_backward(be, kind, (int)(r1 - r0), c, logits + off, target + off, grad_scale, loss + r0,
                                   dlogits ? dlogits + off : NULL);
    }
}

/* ---------------------------------------------------------------- optimizer */

/* The same float operations in the same order as the reference, so the result is identical. */
static void cpu_sgd_step(Backend *be, const SgdStep *s, int64_t n, float *p, const float *g, float *buf) {
    const float mom = (float)s->momentum, damp1 = (float)(1.0 - s->dampening), wd = (float)s->weight_decay;
    const float neg_lr = (float)-s->lr, decay = (float)(1.0 - s->decay_factor * s->weight_decay);
    const bool coupled_wd = !s->decoupled && wd != 0, decoupled_wd = s->decoupled && wd != 0;
    const bool first = s->first_step, nesterov = s->nesterov, use_mom = mom != 0;
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) {
        float d = g[i], pi = p[i];
        if (coupled_wd) d = d + wd * pi;
        if (use_mom) {
            float bi = first ? d : buf[i] * mom + damp1 * d;
            buf[i] = bi;
            d = nesterov ? d + mom * bi : bi;
        }
        if (decoupled_wd) pi = pi * decay;
        p[i] = pi + neg_lr * d;
    }
}

/* ---------------------------------------------------------------- table */

/* ---------------------------------------------------------------- whole-vector helpers */

static void cpu_scale(Backend *be, int64_t n, float alpha, float *x) {
#pragma omp parallel for simd schedule(static) num_threads(be->threads) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * alpha;
}

/* Per-thread partial sums over fixed blocks, added in block order: the same result for a given thread count. */
static double cpu_sum_squares(Backend *be, int64_t n, const float *x) {
    int blocks = be->threads > 0 ? be->threads : 1;
    double part[256] = {0};
    if (blocks > 256) blocks = 256;
#pragma omp parallel for schedule(static) num_threads(blocks)
    for (int b = 0; b < blocks; b++) {
        double s = 0;
        for (int64_t i = block_start(n, b, blocks); i < block_start(n, b + 1, blocks); i++) s += (double)x[i] * x[i];
        part[b] = s;
    }
    double s = 0;
    for (int b = 0; b < blocks; b++) s += part[b];
    return s;
}

static const BackendOps CPU_OPS = {
    .name = "cpu",
    .bf16_store = true,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .conv_plan = cpu_conv_plan_op,
    .conv_plan_free = cpu_conv_plan_free_op,
    .conv_forward = cpu_conv_forward_op,
    .conv_backward_data = cpu_conv_backward_data_op,
    .conv_backward_weights = cpu_conv_backward_weights_op,
    .bn_forward_train = cpu_bn_forward_train,
    .bn_forward_eval = cpu_bn_forward_eval,
    .bn_backward = cpu_bn_backward,
    .bn_relu_forward_train = cpu_bn_relu_forward_train,
    .bn_relu_backward = cpu_bn_relu_backward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .relu_backward_bf16 = cpu_relu_backward_bf16,
    .add = cpu_add,
    .add_relu = cpu_add_relu,
    .axpy = cpu_axpy,
    .maxpool_forward = cpu_maxpool_forward,
    .maxpool_backward = cpu_maxpool_backward,
    .avgpool_forward = cpu_avgpool_forward,
    .avgpool_backward = cpu_avgpool_backward,
    .blur_forward = cpu_blur_forward,
    .blur_backward = cpu_blur_backward,
    .sigmoid_forward = cpu_sigmoid_forward,
    .sigmoid_backward = cpu_sigmoid_backward,
    .channel_scale_forward = cpu_channel_scale_forward,
    .channel_scale_backward = cpu_channel_scale_backward,
    .sample_scale = cpu_sample_scale,
    .fc_forward = cpu_fc_forward,
    .fc_backward = cpu_fc_backward,
    .loss_forward_backward = cpu_loss_forward_backward,
    .sgd_step = cpu_sgd_step,
    .scale = cpu_scale,
    .sum_squares = cpu_sum_squares,
};

/* Creates the cpu backend: the operation table, batch-norm scratch for threads blocks, the oneDNN context. */
int cpu_backend_create(int threads, Backend **out, Error *err) {
    *out = NULL;
    if (threads <= 0) threads = omp_get_num_procs();
    Backend *be = calloc(1, sizeof *be);
    CpuImpl *im = calloc(1, sizeof *im);
    double *work = calloc((size_t)threads * 2 * BN_CHUNK, sizeof *work);
    if (!be || !im || !work) {
        free(be);
        free(im);
        free(work);
        return error_set(err, "out of memory creating the cpu backend");
    }
    im->ops = CPU_OPS;
    im->ops.bf16 = cpu_conv_bf16_native();
    be->ops = &im->ops;
    be->threads = threads;
    be->act_block = cpu_conv_vector_block();
    be->winograd = true;
    be->impl = im;
    im->bn_work = work;
    if (cpu_conv_create(threads, &im->conv, err) != 0) {
        cpu_backend_destroy(be);
        return -1;
    }
    *out = be;
    return 0;
}

/* Frees the backend; the caller has freed its convolution plans. */
void cpu_backend_destroy(Backend *be) {
    if (!be) return;
    CpuImpl *im = be->impl;
    if (im) {
        cpu_conv_destroy(im->conv);
        free(im->bn_work);
        free(im);
    }
    free(be);
}
