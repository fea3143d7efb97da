/* cpu_bn.c — batch norm of the cpu backend: training forward (with the fused skip add and ReLU), evaluation
 * forward and backward, over activations in NHWC or nChwBc, each stored fp32 or bf16 (cpu_bn.h, BnIo).
 *
 * Compiled twice: as itself for the portable x86-64-v3 target (AVX2 code: the table cpu_bn_portable) and, through
 * cpu_bn_avx512.c, for x86-64-v4 (AVX-512 code: cpu_bn_avx512); cpu_bn_select picks the second on CPUs that
 * have AVX-512. Both compile the same C, which sums every channel in the same order at any vector width and
 * contracts no multiply-add (ISO C mode), so the two tables give the same bits (test_backend_ops checks it).
 * In bf16 the loops widen and narrow in registers, where AVX-512 code ran BN in the bf16 ResNet-50 step at
 * 224 px about 20% faster than AVX2 code (docs/performance.md); in fp32 BN is memory-bound and level.
 *
 * Statistics accumulate in double (runs of BN_RUN rows are summed in float first), per block of rows, and the
 * blocks' partial sums are combined in block order (blocks fixed by be->threads), so a run is bit-for-bit
 * repeatable for a given thread count; batch norm walks memory in order (image by image, block by block: a
 * block's pixels are contiguous), and each channel is summed in the same order in both layouts. */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/cpu_bn.h"
#include "backend/cpu/cpu_common.h"

#define BN_CHUNK 512 /* channels a batch-norm pass handles at a time */
#define BN_RUN 16    /* rows batch-norm sums in float before adding them into double */

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

/* ---------------------------------------------------------------- batch norm */

/* What the batch-norm sums add up: the moments of x, or the gradient sums of dy, or of dy * (y > 0) after a
 * ReLU whose output is y. The loops take it as a constant, one compiled loop each. */
typedef enum { SUM_MOMENTS, SUM_GRADS, SUM_GRADS_RELU } SumKind;

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
        int64_t stop = min64(b, r + BN_RUN - (r - start) % BN_RUN);
        if (seg <= 16) { /* the blocked layouts' segments: the run's sums in registers */
            float g1[16], g2[16];
            for (int j = 0; j < seg; j++) g1[j] = f1[j], g2[j] = f2[j];
            for (; r < stop; r++, at += (size_t)v->b) sum_row(seg, tm, kind, at, io, c, g1, g2);
            for (int j = 0; j < seg; j++) f1[j] = g1[j], f2[j] = g2[j];
        } else {
            for (; r < stop; r++, at += (size_t)v->b) sum_row(seg, tm, kind, at, io, c, f1, f2);
        }
        if ((r - start) % BN_RUN == 0 || r == end) {
#pragma omp simd
            for (int j = 0; j < seg; j++) {
                s1[j] += f1[j], s2[j] += f2[j];
                f1[j] = f2[j] = 0;
            }
        }
    }
}

/* ---------------------------------------------------------------- a thread's share of a pass */

/* What one thread does in a pass of batch norm over channels [c0, c0 + cn) of rows rows of view v: share t of
 * threads; kind says which loop (SumKind for the sums; relu for the forward and backward applies); p holds the
 * pass's per-channel arrays [cn] (sums: the shift c; forward: mean, mean_lo, scale, shift; backward: mean, a, b,
 * k) and part the sums' per-block results [threads, 2, BN_CHUNK]. */
typedef struct BnShare {
    const ActView *v;
    const BnIo *io;
    int64_t rows;
    int c0, cn, t, threads, kind;
    const float *p[4];
    double *part;
} BnShare;

/* name_by_tm[16]: for each combination tm of bf16 activations (BnIo) one function running fn(tm, share) with tm
 * a constant. They are separate functions (noinline) so that each one's few loops have the registers to
 * themselves: inlined all into one OpenMP function, the hundred-odd loops kept counters and vector halves on the
 * stack, and in the shared test machine's slow spells such a loop took up to nine times as long as in others
 * (docs/performance.md, "Batch norm's loops in functions of their own"). */
#define BN_TM_FN(name, fn, k) \
    static __attribute__((noinline)) void name##_##k(const BnShare *s) { fn(k, s); }
#define BN_BY_TM(name, fn)                                                                                    \
    BN_TM_FN(name, fn, 0) BN_TM_FN(name, fn, 1) BN_TM_FN(name, fn, 2) BN_TM_FN(name, fn, 3)                   \
    BN_TM_FN(name, fn, 4) BN_TM_FN(name, fn, 5) BN_TM_FN(name, fn, 6) BN_TM_FN(name, fn, 7)                   \
    BN_TM_FN(name, fn, 8) BN_TM_FN(name, fn, 9) BN_TM_FN(name, fn, 10) BN_TM_FN(name, fn, 11)                 \
    BN_TM_FN(name, fn, 12) BN_TM_FN(name, fn, 13) BN_TM_FN(name, fn, 14) BN_TM_FN(name, fn, 15)               \
    static void (*const name##_by_tm[16])(const BnShare *) = {                                                \
        name##_0, name##_1, name##_2,  name##_3,  name##_4,  name##_5,  name##_6,  name##_7,                  \
        name##_8, name##_9, name##_10, name##_11, name##_12, name##_13, name##_14, name##_15};

/* Share s->t of the per-block sums of bn_partial_sums: the block's rows walked image by image, and in each
 * image segment by segment. */
SEG_INLINE void sums_share(unsigned tm, const BnShare *s) {
    const ActView *v = s->v;
    int cn = s->cn, seg = view_segment(v, cn);
    double *restrict s1 = s->part + (size_t)s->t * 2 * BN_CHUNK, *restrict s2 = s1 + BN_CHUNK;
    float f1[cn], f2[cn];
    for (int j = 0; j < cn; j++) s1[j] = s2[j] = 0, f1[j] = f2[j] = 0;
    int64_t start = block_start(s->rows, s->t, s->threads), end = block_start(s->rows, s->t + 1, s->threads);
    for (int64_t a = start, b; a < end; a = b) {
        b = min64(end, (a / v->hw + 1) * v->hw);
        for (int q = 0; q < cn; q += seg) {
            const float *c = s->p[0] + q;
            int ch = s->c0 + q;
            if (s->kind == SUM_MOMENTS)
                SEG_DISPATCH(seg, sums_tile, tm, SUM_MOMENTS, v, ch, start, end, a, b, s->io, c, f1 + q, f2 + q,
                             s1 + q, s2 + q);
            else if (s->kind == SUM_GRADS)
                SEG_DISPATCH(seg, sums_tile, tm, SUM_GRADS, v, ch, start, end, a, b, s->io, c, f1 + q, f2 + q,
                             s1 + q, s2 + q);
            else
                SEG_DISPATCH(seg, sums_tile, tm, SUM_GRADS_RELU, v, ch, start, end, a, b, s->io, c, f1 + q, f2 + q,
                             s1 + q, s2 + q);
        }
    }
}
BN_BY_TM(sums, sums_share)

/* Per-block sums over rows of channels [c0, c0+cn) of io->x [n, hw, c] (view v), each block a contiguous share
 * of the rows walked in memory order (image by image, segment by segment): kind SUM_MOMENTS gives
 * s1 = sum (x - c), s2 = sum (x - c)^2 shifted by c [cn] = the first row (keeps the one-pass variance
 * accurate); the others s1 = sum g, s2 = sum g * (x - c) with c = the mean and g = bn_grad(dy, y).
 * part [blocks, 2, BN_CHUNK]. */
static void bn_partial_sums(int blocks, int64_t rows, const ActView *v, int c0, int cn, SumKind kind,
                            const BnIo *io, const float *c, double *part) {
    unsigned tm = io->tm & (kind == SUM_MOMENTS ? BN_X : kind == SUM_GRADS ? BN_X | BN_DY : BN_X | BN_DY | BN_Y);
#pragma omp parallel for schedule(static) num_threads(blocks)
    for (int t = 0; t < blocks; t++) {
        BnShare s = {.v = v, .io = io, .rows = rows, .c0 = c0, .cn = cn, .t = t, .threads = blocks, .kind = kind,
                     .p = {c}, .part = part};
        sums_by_tm[tm](&s);
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
static void bn_stats_chunk(Backend *be, double *part, int64_t rows, const ActView *v, int c0, int cn, const BnIo *io,
                           float *save_mean, float *save_invstd, float *mean_lo, float *running_mean,
                           float *running_var, float momentum, float eps) {
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

/* Share s->t of bn_apply_chunk: its tiles in memory order; relu = s->kind. */
SEG_INLINE void apply_share(unsigned tm, const BnShare *s) {
    TileWalk tw = tiles_start(s->v, s->rows, s->cn, s->t, s->threads);
    int j;
    int64_t start, end;
    while (tiles_next(&tw, &j, &start, &end))
        SEG_DISPATCH(tw.seg, apply_segment, tm, s->v, s->c0 + j, start, end, s->io, s->p[0] + j, s->p[1] + j,
                     s->p[2] + j, s->p[3] + j, s->kind);
}
BN_BY_TM(apply, apply_share)

/* apply_segment over channels [c0, c0+cn) of every row, in memory order; the per-channel arrays are [cn]. */
static void bn_apply_chunk(int threads, int64_t rows, const ActView *v, int c0, int cn, const BnIo *io,
                           const float *mean, const float *mean_lo, const float *scale, const float *shift,
                           bool relu) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        BnShare s = {.v = v, .io = io, .rows = rows, .c0 = c0, .cn = cn, .t = t, .threads = threads, .kind = relu,
                     .p = {mean, mean_lo, scale, shift}};
        apply_by_tm[io->tm & (BN_X | BN_OUT | BN_SKIP)](&s);
    }
}

/* Training batch norm of io->x [n, hw, c] into io->out, followed by ReLU when relu, after adding io->skip
 * [n, hw, c] when not NULL. */
static void bn_train(Backend *be, double *work, int n, int64_t hw, int c, const BnIo *io, const float *gamma,
                     const float *beta, bool relu, float *save_mean, float *save_invstd, float *running_mean,
                     float *running_var, float momentum, float eps) {
    float scale[BN_CHUNK], mean_lo[BN_CHUNK];
    ActView v = act_view(be, hw, c);
    int64_t rows = (int64_t)n * hw;
    for (int c0 = 0; c0 < c; c0 += BN_CHUNK) {
        int cn = (int)min64(BN_CHUNK, c - c0);
        bn_stats_chunk(be, work, rows, &v, c0, cn, io, save_mean, save_invstd, mean_lo, running_mean, running_var,
                       momentum, eps);
        for (int j = 0; j < cn; j++) scale[j] = save_invstd[c0 + j] * gamma[c0 + j];
        bn_apply_chunk(be->threads, rows, &v, c0, cn, io, save_mean + c0, mean_lo, scale, beta + c0, relu);
    }
}

/* Evaluation batch norm of io->x [n, hw, c] into io->out with the running statistics. */
static void bn_eval(Backend *be, int n, int64_t hw, int c, const BnIo *io, const float *gamma, const float *beta,
                    const float *running_mean, const float *running_var, float eps) {
    float scale[BN_CHUNK], zero[BN_CHUNK] = {0};
    ActView v = act_view(be, hw, c);
    for (int c0 = 0; c0 < c; c0 += BN_CHUNK) {
        int cn = (int)min64(BN_CHUNK, c - c0);
        for (int j = 0; j < cn; j++)
            scale[j] = (float)(gamma[c0 + j] / sqrt((double)running_var[c0 + j] + eps));
        bn_apply_chunk(be->threads, (int64_t)n * hw, &v, c0, cn, io, running_mean + c0, zero, scale, beta + c0,
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

/* Share s->t of bn_backward_apply_chunk: its tiles in memory order; relu = s->kind. */
SEG_INLINE void backward_share(unsigned tm, const BnShare *s) {
    TileWalk tw = tiles_start(s->v, s->rows, s->cn, s->t, s->threads);
    int j;
    int64_t start, end;
    while (tiles_next(&tw, &j, &start, &end)) {
        if (s->kind)
            SEG_DISPATCH(tw.seg, backward_apply_segment, tm, true, s->v, s->c0 + j, start, end, s->io, s->p[0] + j,
                         s->p[1] + j, s->p[2] + j, s->p[3] + j);
        else
            SEG_DISPATCH(tw.seg, backward_apply_segment, tm, false, s->v, s->c0 + j, start, end, s->io, s->p[0] + j,
                         s->p[1] + j, s->p[2] + j, s->p[3] + j);
    }
}
BN_BY_TM(backward, backward_share)

/* backward_apply_segment over channels [c0, c0+cn) of every row, in memory order; mean, a, b, k [cn]. */
static void bn_backward_apply_chunk(int threads, int64_t rows, const ActView *v, int c0, int cn, const BnIo *io,
                                    const float *mean, const float *a, const float *b, const float *k) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; t++) {
        BnShare s = {.v = v, .io = io, .rows = rows, .c0 = c0, .cn = cn, .t = t, .threads = threads,
                     .kind = io->y != NULL, .p = {mean, a, b, k}};
        backward_by_tm[io->y ? io->tm : io->tm & ~(unsigned)BN_Y](&s);
    }
}

/* Batch-norm backward of io->dy, or (io->y not NULL) of dy * (y > 0), into io->out = dx; all [n, hw, c]. */
static void bn_backward(Backend *be, double *work, int n, int64_t hw, int c, const BnIo *io, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dgamma, float *dbeta) {
    double *part = work;
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

/* ---------------------------------------------------------------- the table */

#ifdef CPU_BN_AVX512
const CpuBn cpu_bn_avx512 = {"avx512", bn_train, bn_eval, bn_backward};
#else
const CpuBn cpu_bn_portable = {"avx2", bn_train, bn_eval, bn_backward};

/* The table for this CPU: cpu_bn_avx512 where the CPU runs x86-64-v4's AVX-512 subsets, else cpu_bn_portable. */
const CpuBn *cpu_bn_select(void) {
    __builtin_cpu_init();
    bool v4 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
              __builtin_cpu_supports("avx512cd");
    return v4 ? &cpu_bn_avx512 : &cpu_bn_portable;
}

/* Bytes of the partial-sum workspace the functions take for threads threads: [threads, 2, BN_CHUNK] doubles. */
size_t cpu_bn_work_bytes(int threads) { return (size_t)threads * 2 * BN_CHUNK * sizeof(double); }
#endif
