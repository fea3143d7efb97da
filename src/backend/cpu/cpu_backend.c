/* cpu_backend.c — the "cpu" backend: convolutions through oneDNN (cpu_conv.c), the fully connected layer on
 * oneDNN's sgemm (cpu_fc.c), every other operation in C with OpenMP.
 *
 * Every parallel region runs on be->threads threads with static schedules, and every reduction is summed
 * in a fixed order (per-block partial sums combined in block order, blocks fixed by be->threads), so a run
 * is bit-for-bit repeatable for a given thread count. Activations whose channel count is a multiple of the
 * vector block (8 with AVX2, 16 with AVX-512) live in oneDNN's blocked layout nChwBc, where its convolution
 * kernels are fastest; the rest stay NHWC (backend.h). Inner loops run over the contiguous channels of one
 * block (all channels in NHWC) so they vectorize, and each channel is summed in the same order in both
 * layouts, so the layout changes no result of an operation other than the convolutions. Batch norm is in
 * cpu_bn.c (compiled for AVX2 and for AVX-512, chosen at creation); the fused batch norm also reads and writes
 * bf16-stored activations (backend.h ActTypes; bf16_store), widening them to fp32 in registers. relu, add,
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
#include "backend/cpu/cpu_bn.h"
#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_conv.h"
#include "backend/cpu/cpu_fc.h"
#include "backend/ref/ref_backend.h"

#define ALIGN 64
#define PAR_BYTES ((size_t)1 << 20) /* memory functions below this size run on one thread */
#define POOL_CB 16                  /* channels per max-pool backward task */
#define AVG_CB 64                   /* channels per average-pool task */

typedef struct CpuImpl {
    CpuConv *conv;
    BackendOps ops;  /* CPU_OPS, with bf16 set when the CPU has native bf16 dot products */
    const CpuBn *bn; /* batch norm for this CPU's instruction set (cpu_bn_select) */
    double *bn_work; /* its per-block partial sums, cpu_bn_work_bytes(threads) */
    float *fc_work;  /* the FC forward's transposed output [cout, n] (cpu_fc.c), grown to the largest asked for */
    size_t fc_work_n;
} CpuImpl;

static CpuImpl *impl_of(Backend *be) { return be->impl; }

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
static const char *cpu_conv_impl_op(Backend *be, const void *plan, int pass) {
    return cpu_conv_impl(plan, pass);
}

/* A pool descriptor for the NHWC kernels that covers d's tensors in be's layout: nChwBc [n, c/B, h, w, B] is
 * the NHWC tensor [n * c/B, h, w, B], and pooling, blur and per-channel scaling treat channels apart. */
static PoolDesc pool_view(Backend *be, const PoolDesc *d) {
    PoolDesc v = *d;
    int b = act_block_of(be, d->c);
    if (b) v.n = d->n * (d->c / b), v.c = b;
    return v;
}

/* ---------------------------------------------------------------- batch norm (cpu_bn.c) */

static void cpu_bn_forward_train(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                                 const float *beta, float *y, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, float momentum, float eps) {
    BnIo io = {.x = x, .out = y};
    impl_of(be)->bn->train(be, impl_of(be)->bn_work, n, hw, c, &io, gamma, beta, false, save_mean, save_invstd,
                           running_mean, running_var, momentum, eps);
}

static void cpu_bn_relu_forward_train(Backend *be, int n, int64_t hw, int c, ActTypes t, const void *x,
                                      const void *skip, const float *gamma, const float *beta, void *y,
                                      float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                                      float momentum, float eps) {
    BnIo io = {.x = x, .skip = skip, .out = y,
               .tm = (t.x == ACT_BF16 ? BN_X : 0) | (t.y == ACT_BF16 ? BN_OUT : 0) |
                     (skip && t.skip == ACT_BF16 ? BN_SKIP : 0)};
    impl_of(be)->bn->train(be, impl_of(be)->bn_work, n, hw, c, &io, gamma, beta, true, save_mean, save_invstd,
                           running_mean, running_var, momentum, eps);
}

static void cpu_bn_forward_eval(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                                const float *beta, const float *running_mean, const float *running_var,
                                float eps, float *y) {
    BnIo io = {.x = x, .out = y};
    impl_of(be)->bn->eval(be, n, hw, c, &io, gamma, beta, running_mean, running_var, eps);
}

static void cpu_bn_backward(Backend *be, int n, int64_t hw, int c, const float *x, const float *dy,
                            const float *gamma, const float *save_mean, const float *save_invstd, float *dx,
                            float *dgamma, float *dbeta) {
    BnIo io = {.x = x, .dy = dy, .out = dx};
    impl_of(be)->bn->backward(be, impl_of(be)->bn_work, n, hw, c, &io, gamma, save_mean, save_invstd, dgamma,
                              dbeta);
}

static void cpu_bn_relu_backward(Backend *be, int n, int64_t hw, int c, ActTypes t, const void *x, const void *y,
                                 const void *dy, const float *gamma, const float *save_mean, const float *save_invstd,
                                 void *dx, float *dgamma, float *dbeta) {
    BnIo io = {.x = x, .dy = dy, .y = y, .out = dx,
               .tm = (t.x == ACT_BF16 ? BN_X : 0) | (t.dy == ACT_BF16 ? BN_DY : 0) | (t.y == ACT_BF16 ? BN_Y : 0) |
                     (t.dx == ACT_BF16 ? BN_OUT : 0)};
    impl_of(be)->bn->backward(be, impl_of(be)->bn_work, n, hw, c, &io, gamma, save_mean, save_invstd, dgamma,
                              dbeta);
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

/* (dy + dy2) with the bits of the elements where keep is false cleared: written as y > 0 ? d : 0, GCC (trapping
 * math) kept the add inside a branch and left the loop scalar, 6x slower. */
static inline float masked_sum(float dy, float dy2, bool keep) {
    float d = dy + dy2;
    uint32_t u;
    memcpy(&u, &d, sizeof u);
    u &= -(uint32_t)keep;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void cpu_relu_backward_add(Backend *be, int64_t n, ActType yt, const void *y, const float *dy,
                                  const float *dy2, float *dx) {
    if (yt == ACT_BF16) {
        const uint16_t *h = y;
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
        for (int64_t i = 0; i < n; i++) dx[i] = masked_sum(dy[i], dy2[i], bf16_widen(h[i]) > 0);
        return;
    }
    const float *f = y;
#pragma omp parallel for simd schedule(static) num_threads(be->threads)
    for (int64_t i = 0; i < n; i++) dx[i] = masked_sum(dy[i], dy2[i], f[i] > 0);
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

/* ---------------------------------------------------------------- fully connected (cpu_fc.c) */

/* The forward's scratch is allocated at the first call (the first training step) and when a larger FC comes. */
static int cpu_fc_forward_op(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *b,
                             float *y, Error *err) {
    CpuImpl *ci = impl_of(be);
    size_t need = (size_t)n * cout;
    if (need > ci->fc_work_n) {
        free(ci->fc_work);
        ci->fc_work = malloc(need * sizeof *ci->fc_work);
        ci->fc_work_n = ci->fc_work ? need : 0;
        if (!ci->fc_work)
            return error_set(err, "cpu backend: out of memory for the fully connected layer's %zu-float scratch",
                             need);
    }
    return cpu_fc_forward(be->threads, n, cin, cout, x, w, b, ci->fc_work, y, err);
}

static int cpu_fc_backward_op(Backend *be, int n, int cin, int cout, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, float *db, Error *err) {
    return cpu_fc_backward(be->threads, n, cin, cout, x, w, dy, dx, dw, db, err);
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
    .conv_impl = cpu_conv_impl_op,
    .bn_forward_train = cpu_bn_forward_train,
    .bn_forward_eval = cpu_bn_forward_eval,
    .bn_backward = cpu_bn_backward,
    .bn_relu_forward_train = cpu_bn_relu_forward_train,
    .bn_relu_backward = cpu_bn_relu_backward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .relu_backward_bf16 = cpu_relu_backward_bf16,
    .relu_backward_add = cpu_relu_backward_add,
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
    .fc_forward = cpu_fc_forward_op,
    .fc_backward = cpu_fc_backward_op,
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
    double *work = calloc(1, cpu_bn_work_bytes(threads));
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
    im->bn = cpu_bn_select();
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
        free(im->fc_work);
        free(im);
    }
    free(be);
}
