/* test_backend_ops.c — every operation of the cpu backend against the ref backend on odd shapes, exactness
 * where the cpu backend promises it (relu, add, axpy, pools, sgd_step), finite-difference gradient checks of
 * the ref operations themselves, and bit-for-bit repeatability of the cpu backend for a fixed thread count;
 * likewise for the model-surgery operations (blur, sigmoid, channel scale, per-sample scale). The cpu backend
 * runs here twice: with all activations NHWC (act_block 0), and in its own blocked layout, where the
 * convolutions match the reference and every other operation matches the NHWC run bit for bit. */
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_bn.h"
#include "backend/cpu/cpu_conv.h"
#include "backend/cpu/winograd.h"
#include "backend/cpu/winograd_bf16.h"
#include "testutil.h"

#define CPU_THREADS 2

/* The backends the tests use (cmocka group state): cpu keeps every activation NHWC, blk is a cpu backend in
 * its own blocked layout (nChw8c or nChw16c). */
static const ActTypes F32 = {0}; /* every activation fp32 */

typedef struct Backends {
    Backend *ref, *cpu, *blk;
} Backends;

static int group_setup(void **state) {
    Backends *b = calloc(1, sizeof *b);
    Error err = {{0}};
    if (!b || backend_create("ref", 1, &b->ref, &err) != 0 || backend_create("cpu", CPU_THREADS, &b->cpu, &err) != 0 ||
        backend_create("cpu", CPU_THREADS, &b->blk, &err) != 0) {
        fprintf(stderr, "backend_create: %s\n", err.msg);
        return -1;
    }
    b->cpu->act_block = 0;
    *state = b;
    return 0;
}

static int group_teardown(void **state) {
    Backends *b = *state;
    backend_destroy(b->ref);
    backend_destroy(b->cpu);
    backend_destroy(b->blk);
    free(b);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

/* n zeroed floats, 64-byte aligned (host memory is backend memory on both CPU backends). */
static float *fz(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64);
    assert_non_null(p);
    memset(p, 0, n * sizeof(float));
    return p;
}

/* n floats uniform in [lo, hi). */
static float *frand(size_t n, float lo, float hi, uint64_t seed) {
    float *p = fz(n);
    tu_fill_uniform(p, n, lo, hi, seed);
    return p;
}

static float *fdup(const float *src, size_t n) {
    float *p = fz(n);
    memcpy(p, src, n * sizeof *p);
    return p;
}

/* True when a and b [n] hold the same bits; prints the first difference otherwise. */
static bool same_bits(const char *name, const void *a, const void *b, size_t n, size_t elem) {
    if (memcmp(a, b, n * elem) == 0) return true;
    for (size_t i = 0; i < n; i++)
        if (memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0) {
            if (elem == sizeof(float))
                fprintf(stderr, "%s: element %zu of %zu differs: %.9g vs %.9g\n", name, i, n,
                        (double)((const float *)a)[i], (double)((const float *)b)[i]);
            else if (elem == sizeof(uint16_t))
                fprintf(stderr, "%s: element %zu of %zu differs: 0x%04x vs 0x%04x\n", name, i, n,
                        ((const uint16_t *)a)[i], ((const uint16_t *)b)[i]);
            else
                fprintf(stderr, "%s: element %zu of %zu differs: %d vs %d\n", name, i, n,
                        ((const int32_t *)a)[i], ((const int32_t *)b)[i]);
            break;
        }
    return false;
}

#define assert_same_floats(name, a, b, n) assert_true(same_bits((name), (a), (b), (n), sizeof(float)))
#define assert_same_ints(name, a, b, n) assert_true(same_bits((name), (a), (b), (n), sizeof(int32_t)))

/* sum r[i] * y[i] in double: the random linear functional the gradient checks differentiate. */
static double dot_d(const float *r, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

/* ---------------------------------------------------------------- memory */

static void test_memory(void **state) {
    Backend *be = ((Backends *)*state)->cpu;
    const BackendOps *o = be->ops;
    size_t sizes[] = {1, 13, 4096, (size_t)3 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        unsigned char *a = o->alloc(be, n), *b = o->alloc(be, n), *h = malloc(n);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(h);
        assert_int_equal((uintptr_t)a % 64, 0);
        for (size_t i = 0; i < n; i++) assert_int_equal(a[i], 0);
        for (size_t i = 0; i < n; i++) h[i] = (unsigned char)(i * 7 + 3);
        o->upload(be, a, h, n);
        o->copy(be, b, a, n);
        memset(h, 0, n);
        o->download(be, h, b, n);
        for (size_t i = 0; i < n; i++) assert_int_equal(h[i], (unsigned char)(i * 7 + 3));
        if (n > 8) { /* overlapping copy behaves like memmove */
            o->copy(be, b + 1, b, n - 1);
            for (size_t i = 1; i < n; i++) assert_int_equal(b[i], (unsigned char)((i - 1) * 7 + 3));
        }
        o->zero(be, b, n);
        for (size_t i = 0; i < n; i++) assert_int_equal(b[i], 0);
        assert_int_equal(o->sync(be, NULL), 0);
        o->free(be, a);
        o->free(be, b);
        free(h);
    }
    be->ops->free(be, NULL);
}

/* ---------------------------------------------------------------- convolution */

typedef struct ConvCase {
    int n, h, w, cin, cout, k, stride, pad;
} ConvCase;

static const ConvCase CONV_CASES[] = {
    {3, 7, 5, 3, 5, 7, 2, 3},    {3, 9, 11, 17, 6, 3, 1, 1}, {3, 9, 11, 5, 17, 1, 2, 0},
    {3, 7, 5, 6, 3, 3, 2, 0},    {3, 9, 11, 17, 17, 3, 2, 2}, {3, 7, 5, 5, 6, 1, 1, 1},
    {3, 9, 11, 3, 6, 7, 1, 3},   {2, 7, 5, 16, 32, 1, 1, 0}, {1, 12, 10, 32, 64, 3, 1, 1},
    {3, 11, 9, 64, 16, 1, 2, 0}, {3, 9, 11, 6, 5, 3, 1, 3},  {3, 8, 8, 17, 5, 7, 2, 2},
    {6, 16, 16, 16, 32, 1, 2, 0}, {8, 16, 16, 4, 8, 1, 2, 0}, {5, 12, 12, 4, 8, 1, 2, 0},
    {2, 11, 11, 64, 128, 1, 2, 0}, {2, 7, 7, 24, 256, 3, 2, 1}, {2, 16, 16, 3, 16, 7, 2, 3},
    {2, 6, 6, 16, 3, 3, 1, 1},   {2, 2, 2, 256, 256, 3, 1, 1}, {3, 9, 7, 32, 48, 3, 1, 1},
    {2, 6, 5, 64, 32, 3, 1, 1},  {2, 1, 3, 32, 32, 3, 1, 1}, {2, 3, 3, 512, 512, 3, 1, 1},
    {2, 8, 8, 64, 256, 1, 1, 0}, {2, 8, 8, 256, 64, 1, 1, 0},
};
#define N_CONV (sizeof CONV_CASES / sizeof *CONV_CASES)

/* How much larger than a direct convolution's rounding error F(4x4, 3x3)'s may be (measured: up to about 4x
 * on these cases; docs/performance.md). */
#define WINO_F4_ERROR 8.0

static void conv_desc_of(const ConvCase *c, ConvDesc *d) {
    Error err;
    assert_int_equal(conv_desc_init(d, c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad, &err), 0);
}

/* The absolute tolerance of a fp32 convolution against the reference: float sums of k*k*cin (forward),
 * k*k*cout (data) or n*oh*ow (weights) terms of size <= 0.5, whose error grows like the square root of the
 * length. F(4x4, 3x3)'s transforms (coefficients up to 8 in A, 5 in B, 1/24 in G) amplify the rounding of the
 * transformed values: wino_f4 allows WINO_F4_ERROR times that. */
static double conv_atol(const ConvDesc *d, bool wino_f4) {
    double atol = 5e-7 * sqrt((double)d->k * d->k * (d->cin + d->cout) + (double)d->n * d->oh * d->ow);
    return wino_f4 ? atol * WINO_F4_ERROR : atol;
}

/* Runs the three convolution passes of d on be with the given plan. */
static void conv_run(Backend *be, void *plan, const float *x, const float *w, const float *dy, float *y,
                     float *dx, float *dw) {
    Error err = {{0}};
    assert_int_equal(be->ops->conv_forward(be, plan, x, w, y, &err), 0);
    assert_int_equal(be->ops->conv_backward_data(be, plan, dy, w, dx, &err), 0);
    assert_int_equal(be->ops->conv_backward_weights(be, plan, x, dy, dw, &err), 0);
}

/* The three passes' outputs (y, dx, dw) against expected ones (…0), named "conv case i <what> forward" etc. */
static void conv_compare(size_t i, const char *what, const ConvDesc *d, const float *y1, const float *y0,
                         const float *dx1, const float *dx0, const float *dw1, const float *dw0, double atol,
                         double rtol) {
    size_t nx = (size_t)d->n * d->h * d->w * d->cin, ny = (size_t)d->n * d->oh * d->ow * d->cout;
    size_t nw = (size_t)d->cout * d->cin * d->k * d->k;
    char name[128];
    snprintf(name, sizeof name, "conv case %zu %sforward", i, what);
    assert_close(name, y1, y0, ny, atol, rtol);
    snprintf(name, sizeof name, "conv case %zu %sbackward data", i, what);
    assert_close(name, dx1, dx0, nx, atol, rtol);
    snprintf(name, sizeof name, "conv case %zu %sbackward weights", i, what);
    assert_close(name, dw1, dw0, nw, atol, rtol);
}

/* x [n, hw, c] NHWC in be's layout (a new buffer), and back. */
static float *packed(const Backend *be, int n, int64_t hw, int c, const float *x) {
    float *p = fz((size_t)n * hw * c);
    act_layout_pack(be, n, hw, c, x, p);
    return p;
}
static float *unpacked(const Backend *be, int n, int64_t hw, int c, const float *x) {
    float *p = fz((size_t)n * hw * c);
    act_layout_unpack(be, n, hw, c, x, p);
    return p;
}

/* The three passes on be, with x, dy given and y, dx returned in NHWC whatever be's layout. */
static void conv_run_nhwc(Backend *be, void *plan, const ConvDesc *d, const float *x, const float *w,
                          const float *dy, float *y, float *dx, float *dw) {
    int64_t hw = (int64_t)d->h * d->w, ohw = (int64_t)d->oh * d->ow;
    float *bx = packed(be, d->n, hw, d->cin, x), *bdy = packed(be, d->n, ohw, d->cout, dy);
    float *by = fz((size_t)d->n * ohw * d->cout), *bdx = fz((size_t)d->n * hw * d->cin);
    conv_run(be, plan, bx, w, bdy, by, bdx, dw);
    act_layout_unpack(be, d->n, ohw, d->cout, by, y);
    act_layout_unpack(be, d->n, hw, d->cin, bdx, dx);
    free(bx), free(bdy), free(by), free(bdx);
}

/* Every case on cpu (NHWC) and on blk (blocked layout, and mixed plans where one side is not blocked), with
 * the 3x3 stride-1 cases of 32 to 256 channels on Winograd (winograd.c) and on oneDNN. */
static void test_conv_matches_ref(void **state) {
    Backends *b = *state;
    for (int run = 0; run < 4; run++) {
    int layout = run % 2;
    Backend *cpu = layout ? b->blk : b->cpu;
    static const char *whats[4] = {"", "blocked ", "oneDNN ", "blocked oneDNN "};
    const char *what = whats[run];
    cpu->winograd = run < 2;
    Error err = {{0}};
    void *plans[N_CONV];
    /* All cpu plans first: later plans grow the workspace the earlier ones share. */
    for (size_t i = 0; i < N_CONV; i++) {
        ConvDesc d;
        conv_desc_of(&CONV_CASES[i], &d);
        if (cpu->ops->conv_plan(cpu, &d, &plans[i], &err) != 0) fprintf(stderr, "%s\n", err.msg);
        assert_non_null(plans[i]);
    }
    for (size_t i = 0; i < N_CONV; i++) {
        ConvDesc d;
        conv_desc_of(&CONV_CASES[i], &d);
        size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
        size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
        float *x = frand(nx, -1, 1, 100 + i), *w = frand(nw, -0.5f, 0.5f, 200 + i), *dy = frand(ny, -1, 1, 300 + i);
        float *y0 = fz(ny), *dx0 = fz(nx), *dw0 = fz(nw), *y1 = fz(ny), *dx1 = fz(nx), *dw1 = fz(nw);
        void *rplan;
        assert_int_equal(b->ref->ops->conv_plan(b->ref, &d, &rplan, &err), 0);
        conv_run(b->ref, rplan, x, w, dy, y0, dx0, dw0);
        conv_run_nhwc(cpu, plans[i], &d, x, w, dy, y1, dx1, dw1);
        double atol = conv_atol(&d, strstr(cpu_conv_impl(plans[i], 0), "f4x4") != NULL);
        conv_compare(i, what, &d, y1, y0, dx1, dx0, dw1, dw0, atol, 1e-4);
        b->ref->ops->conv_plan_free(b->ref, rplan);
        free(x), free(w), free(dy), free(y0), free(dx0), free(dw0), free(y1), free(dx1), free(dw1);
    }
    for (size_t i = 0; i < N_CONV; i++) cpu->ops->conv_plan_free(cpu, plans[i]);
    cpu->ops->conv_plan_free(cpu, NULL);
    cpu->winograd = true;
    }
}

/* winograd.c itself against the reference, F(2x2) and F(4x4) on NHWC, on the shapes that cpu_conv.c's rule
 * may give to oneDNN on some machines (1 to 9 pixels per side, partial tiles, 512 channels) and on one with
 * more than a chunk of tiles per thread (40x40), where backward weights splits the tiles between the threads
 * instead of dU's positions. */
static void test_winograd_matches_ref(void **state) {
    Backends *b = *state;
    static const ConvCase cases[] = {{2, 3, 3, 512, 512, 3, 1, 1}, {2, 1, 3, 32, 32, 3, 1, 1},
                                     {2, 2, 2, 256, 256, 3, 1, 1}, {3, 9, 7, 32, 48, 3, 1, 1},
                                     {2, 6, 5, 64, 32, 3, 1, 1},   {2, 40, 40, 32, 32, 3, 1, 1}};
    Error err = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ConvDesc d;
        conv_desc_of(&cases[i], &d);
        size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
        size_t nw = (size_t)d.cout * d.cin * 9;
        float *x = frand(nx, -1, 1, 500 + i), *w = frand(nw, -0.5f, 0.5f, 600 + i), *dy = frand(ny, -1, 1, 700 + i);
        float *y0 = fz(ny), *dx0 = fz(nx), *dw0 = fz(nw), *y1 = fz(ny), *dx1 = fz(nx), *dw1 = fz(nw);
        void *rplan;
        assert_int_equal(b->ref->ops->conv_plan(b->ref, &d, &rplan, &err), 0);
        conv_run(b->ref, rplan, x, w, dy, y0, dx0, dw0);
        for (int m = 2; m <= 4; m += 2) {
            assert_true(wino_supported(&d, m, d.cin, d.cout));
            size_t bytes = (wino_work_bytes(&d, m, CPU_THREADS) + 63) / 64 * 64;
            void *work = aligned_alloc(64, bytes);
            assert_non_null(work);
            wino_forward(&d, m, d.cin, d.cout, x, w, y1, work, CPU_THREADS);
            wino_backward_data(&d, m, d.cin, d.cout, dy, w, dx1, work, CPU_THREADS);
            wino_backward_weights(&d, m, d.cin, d.cout, x, dy, dw1, work, CPU_THREADS);
            double atol = conv_atol(&d, m == 4);
            conv_compare(i, m == 2 ? "winograd.c F(2x2) " : "winograd.c F(4x4) ", &d, y1, y0, dx1, dx0, dw1, dw0,
                         atol, 1e-4);
            free(work);
        }
        b->ref->ops->conv_plan_free(b->ref, rplan);
        free(x), free(w), free(dy), free(y0), free(dx0), free(dw0), free(y1), free(dx1), free(dw1);
    }
}

/* winograd.c's backward weights where it splits dU's positions between the threads (few tiles): every element is
 * one chain of products over all tiles in order, so 1, 2 and 3 threads give the same bits (1 thread splits the
 * tiles, trivially). F(2x2) and F(4x4), 7x7x64 at batch 2: 32 and 8 tiles. */
static void test_winograd_dw_threads(void **state) {
    (void)state;
    ConvDesc d;
    conv_desc_of(&(ConvCase){2, 7, 7, 64, 64, 3, 1, 1}, &d);
    size_t nx = (size_t)d.n * d.h * d.w * d.cin, nw = (size_t)d.cout * d.cin * 9;
    float *x = frand(nx, -1, 1, 900), *dy = frand(nx, -1, 1, 901), *dw[3] = {fz(nw), fz(nw), fz(nw)};
    for (int m = 2; m <= 4; m += 2) {
        for (int t = 1; t <= 3; t++) {
            void *work = aligned_alloc(64, (wino_work_bytes(&d, m, t) + 63) / 64 * 64);
            assert_non_null(work);
            wino_backward_weights(&d, m, d.cin, d.cout, x, dy, dw[t - 1], work, t);
            free(work);
        }
        for (int t = 2; t <= 3; t++)
            if (memcmp(dw[0], dw[t - 1], nw * sizeof(float)) != 0)
                fail_msg("F(%dx%d) backward weights on %d threads differs from 1 thread", m, m, t);
    }
    free(x), free(dy), free(dw[0]), free(dw[1]), free(dw[2]);
}

/* x rounded to the nearest bf16, ties to even (what oneDNN's fp32 -> bf16 reorder does). */
static float *bf16_round(const float *x, size_t n) {
    float *r = fz(n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
        memcpy(&r[i], &u, 4);
    }
    return r;
}

/* x [n] stored as bf16 (ACT_BF16): the upper halves of bf16_round(x). */
static uint16_t *bf16_store(const float *x, size_t n) {
    float *r = bf16_round(x, n);
    uint16_t *h = malloc(n * sizeof *h + 64);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &r[i], 4);
        h[i] = (uint16_t)(u >> 16);
    }
    free(r);
    return h;
}

/* The floats that bf16 storage h [n] holds. */
static float *bf16_load(const uint16_t *h, size_t n) {
    float *r = fz(n);
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)h[i] << 16;
        memcpy(&r[i], &u, 4);
    }
    return r;
}

/* How much larger than a direct bf16 convolution's error (inputs and weights rounded to bf16, exact sums)
 * bf16 F(2x2, 3x3)'s may be: its transforms add and halve, so V, U and Z round sums of a few inputs (in the
 * 2-norm, tools/winograd_bf16_error.py's model gives 1.5x on ReLU inputs and 1.9x on the uniform inputs used
 * here, where winograd_bf16.c measures 1.9 to 2.2; rounding V and U by truncation instead gives 3.4). */
#define WINO16_ERROR 2.5

/* got and base [n] both approximate exact [n]: got's error no more than factor times base's, in the 2-norm
 * relative to exact's and in the largest element (which catches a wrong tile at an edge). */
static void assert_error_within(const char *name, const float *got, const float *base, const float *exact,
                                size_t n, double factor) {
    double eg = 0, eb = 0, ref = 0, mg = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double g = (double)got[i] - exact[i], b = (double)base[i] - exact[i];
        eg += g * g, eb += b * b, ref += (double)exact[i] * exact[i];
        mg = fmax(mg, fabs(g)), mb = fmax(mb, fabs(b));
    }
    double rg = sqrt(eg / ref), rb = sqrt(eb / ref);
    if (rg > factor * rb || mg > 2 * factor * mb)
        fail_msg("%s: relative error %.3g (largest %.3g) against a direct bf16 convolution's %.3g (%.3g)", name, rg,
                 mg, rb, mb);
}

/* bf16 convolutions (Backend.bf16, on CPUs with AVX512_BF16): the same as the fp32 reference run on the
 * bf16-rounded inputs up to fp32 summation order (a pass that runs winograd_bf16.c instead: no further from the
 * exact result than WINO16_ERROR times that direct bf16 convolution), and within bf16 rounding of the fp32
 * reference, in NHWC and in the blocked layout (whose plans take other weight layouts, some written by
 * cpu_conv.c's weights_pair16). Backward weights reuses the bf16 copy of dy made by backward data only for the
 * same dy. */
static void test_conv_bf16_matches_ref(void **state) {
    Backends *b = *state;
    if (!b->cpu->ops->bf16) {
        fprintf(stderr, "note: this CPU has no AVX512_BF16: the cpu backend computes bf16 requests in fp32\n");
        skip();
    }
    Error err = {{0}};
    for (int l = 0; l < 2; l++) {
        Backend *be = l ? b->blk : b->cpu;
        be->bf16 = true;
        for (size_t i = 0; i < N_CONV; i++) {
            ConvDesc d;
            conv_desc_of(&CONV_CASES[i], &d);
            void *plan, *rplan;
            if (be->ops->conv_plan(be, &d, &plan, &err) != 0) fprintf(stderr, "%s\n", err.msg);
            assert_non_null(plan);
            assert_int_equal(b->ref->ops->conv_plan(b->ref, &d, &rplan, &err), 0);
            size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
            size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
            float *x = frand(nx, -1, 1, 100 + i), *w = frand(nw, -0.5f, 0.5f, 200 + i);
            float *dy = frand(ny, -1, 1, 300 + i), *dy2 = frand(ny, -1, 1, 400 + i);
            float *xr = bf16_round(x, nx), *wr = bf16_round(w, nw), *dyr = bf16_round(dy, ny);
            float *dy2r = bf16_round(dy2, ny);
            float *y0 = fz(ny), *dx0 = fz(nx), *dw0 = fz(nw), *y1 = fz(ny), *dx1 = fz(nx), *dw1 = fz(nw);
            float *yr = fz(ny), *dxr = fz(nx), *dwr = fz(nw), *dw2 = fz(nw), *dw2r = fz(nw);
            conv_run(b->ref, rplan, x, w, dy, y0, dx0, dw0);
            conv_run(b->ref, rplan, xr, wr, dyr, yr, dxr, dwr);
            conv_run_nhwc(be, plan, &d, x, w, dy, y1, dx1, dw1);
            double terms = (double)d.k * d.k * (d.cin + d.cout) + (double)d.n * d.oh * d.ow;
            double tight = 5e-7 * sqrt(terms), loose = 4e-3 * sqrt(terms);
            const float *got[3] = {y1, dx1, dw1}, *rounded[3] = {yr, dxr, dwr}, *exact[3] = {y0, dx0, dw0};
            size_t len[3] = {ny, nx, nw};
            for (int pass = 0; pass < 3; pass++) {
                char name[128];
                snprintf(name, sizeof name, "conv case %zu %sbf16 vs rounded inputs, pass %d (%s)", i,
                         l ? "blocked " : "", pass, cpu_conv_impl(plan, pass));
                if (strstr(cpu_conv_impl(plan, pass), "winograd_f2x2_3x3_bf16"))
                    assert_error_within(name, got[pass], rounded[pass], exact[pass], len[pass], WINO16_ERROR);
                else
                    assert_close(name, got[pass], rounded[pass], len[pass], tight, 1e-4);
            }
            conv_compare(i, l ? "blocked bf16 vs fp32, " : "bf16 vs fp32, ", &d, y1, y0, dx1, dx0, dw1, dw0, loose,
                         1e-2);
            if (l == 0) { /* backward data with dy, then backward weights with another dy: no cached copy used */
                assert_int_equal(be->ops->conv_backward_data(be, plan, dy, w, dx1, &err), 0);
                assert_int_equal(be->ops->conv_backward_weights(be, plan, x, dy2, dw2, &err), 0);
                assert_int_equal(b->ref->ops->conv_backward_weights(b->ref, rplan, xr, dy2r, dw2r, &err), 0);
                if (strstr(cpu_conv_impl(plan, 2), "winograd_f2x2_3x3_bf16")) {
                    float *dw2e = fz(nw);
                    assert_int_equal(b->ref->ops->conv_backward_weights(b->ref, rplan, x, dy2, dw2e, &err), 0);
                    assert_error_within("conv bf16 backward weights, second dy", dw2, dw2r, dw2e, nw, WINO16_ERROR);
                    free(dw2e);
                } else {
                    assert_close("conv bf16 backward weights, second dy", dw2, dw2r, nw, tight, 1e-4);
                }
            }
            be->ops->conv_plan_free(be, plan);
            b->ref->ops->conv_plan_free(b->ref, rplan);
            float *all[] = {x, w, dy, dy2, xr, wr, dyr, dy2r, y0, dx0, dw0, y1, dx1, dw1, yr, dxr, dwr, dw2, dw2r};
            for (size_t j = 0; j < sizeof all / sizeof *all; j++) free(all[j]);
        }
        be->bf16 = false;
    }
}

/* How far a bf16-stored output h [n] is from the fp32 one r [n], in units of a bf16 rounding step of r
 * (2^-8 |r|, or 2^-8 of the largest |r| near zero); prints the worst element when above max_ulps. */
static bool within_bf16(const char *name, const uint16_t *h, const float *r, size_t n, double max_ulps) {
    float *got = bf16_load(h, n);
    double big = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs(r[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - r[i]) / (ldexp(fmax(fabs(r[i]), 1e-3 * big), -8) + 1e-30);
        if (e > worst) worst = e, at = i;
    }
    if (worst > max_ulps)
        fprintf(stderr, "%s: element %zu of %zu is %.3g bf16 steps off: %.9g vs %.9g\n", name, at, n, worst,
                (double)got[at], (double)r[at]);
    free(got);
    return worst <= max_ulps;
}

/* bf16 storage of a bf16 convolution's activations (ConvDesc.t, the cpu backend's bf16_store): with x and dy
 * stored bf16 the primitives read them as they are, and y and dx come out rounded to bf16. Against the same bf16
 * plan on fp32 storage of the same values: dw bit for bit, y and dx within one bf16 rounding step, in NHWC and
 * blocked layouts (the shapes include the plans that run on NHWC and reorder, whose reorders then cast). An
 * fp32 plan refuses bf16 storage. */
static void test_conv_bf16_storage(void **state) {
    Backends *b = *state;
    Error err = {{0}};
    ConvDesc d;
    void *plan = NULL;
    conv_desc_of(&CONV_CASES[1], &d);
    d.t.x = ACT_BF16;
    assert_int_not_equal(b->cpu->ops->conv_plan(b->cpu, &d, &plan, &err), 0);
    assert_null(plan);
    assert_non_null(strstr(err.msg, "bf16"));
    if (!b->cpu->ops->bf16) {
        fprintf(stderr, "note: this CPU has no AVX512_BF16: the cpu backend computes bf16 requests in fp32\n");
        skip();
    }
    Backend *bes[2] = {b->cpu, b->blk};
    for (int k = 0; k < 2; k++) {
        Backend *be = bes[k];
        be->bf16 = true;
        for (size_t i = 0; i < N_CONV; i++) {
            void *p32, *p16;
            conv_desc_of(&CONV_CASES[i], &d);
            assert_int_equal(be->ops->conv_plan(be, &d, &p32, &err), 0);
            d.t = (ActTypes){.x = ACT_BF16, .y = ACT_BF16, .dx = ACT_BF16, .dy = ACT_BF16};
            if (be->ops->conv_plan(be, &d, &p16, &err) != 0) fprintf(stderr, "%s\n", err.msg);
            assert_non_null(p16);
            size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
            size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
            float *x0 = frand(nx, -1, 1, 700 + i), *w = frand(nw, -0.5f, 0.5f, 800 + i);
            float *dy0 = frand(ny, -1, 1, 900 + i);
            uint16_t *x16 = bf16_store(x0, nx), *dy16 = bf16_store(dy0, ny);
            uint16_t *y16 = malloc(ny * sizeof *y16 + 64), *dx16 = malloc(nx * sizeof *dx16 + 64);
            float *x = bf16_load(x16, nx), *dy = bf16_load(dy16, ny);
            float *y = fz(ny), *dx = fz(nx), *dw = fz(nw), *dw16 = fz(nw);
            conv_run(be, p32, x, w, dy, y, dx, dw);
            assert_int_equal(be->ops->conv_forward(be, p16, x16, w, y16, &err), 0);
            assert_int_equal(be->ops->conv_backward_data(be, p16, dy16, w, dx16, &err), 0);
            assert_int_equal(be->ops->conv_backward_weights(be, p16, x16, dy16, dw16, &err), 0);
            char name[96];
            snprintf(name, sizeof name, "conv case %zu (%s) bf16-stored", i, k ? "blocked" : "nhwc");
            assert_true(within_bf16(name, y16, y, ny, 1.0));
            assert_true(within_bf16(name, dx16, dx, nx, 1.0));
            assert_same_floats(name, dw16, dw, nw);
            be->ops->conv_plan_free(be, p32);
            be->ops->conv_plan_free(be, p16);
            free(x0), free(w), free(dy0), free(x16), free(dy16), free(y16), free(dx16);
            free(x), free(dy), free(y), free(dx), free(dw), free(dw16);
        }
        be->bf16 = false;
    }
}

/* assert_error_within for the three passes of a convolution d: got y1, dx1, dw1, a direct bf16 convolution's yb,
 * dxb, dwb, the exact y0, dx0, dw0; what begins each pass's name. */
static void conv_error_within(const char *what, const ConvDesc *d, const float *y1, const float *yb,
                              const float *y0, const float *dx1, const float *dxb, const float *dx0,
                              const float *dw1, const float *dwb, const float *dw0) {
    size_t nx = (size_t)d->n * d->h * d->w * d->cin, ny = (size_t)d->n * d->oh * d->ow * d->cout;
    size_t nw = (size_t)d->cout * d->cin * d->k * d->k;
    static const char *passes[3] = {"forward", "backward data", "backward weights"};
    const float *got[3] = {y1, dx1, dw1}, *base[3] = {yb, dxb, dwb}, *exact[3] = {y0, dx0, dw0};
    size_t n[3] = {ny, nx, nw};
    for (int pass = 0; pass < 3; pass++) {
        char name[128];
        snprintf(name, sizeof name, "%s %s", what, passes[pass]);
        assert_error_within(name, got[pass], base[pass], exact[pass], n[pass], WINO16_ERROR);
    }
}

/* A convolution's result stored as t says: v itself, or v rounded to bf16 (a new buffer either way). */
static float *as_stored(const float *v, size_t n, ActType t) {
    if (t == ACT_BF16) return bf16_round(v, n);
    float *c = fz(n);
    memcpy(c, v, n * sizeof *c);
    return c;
}

/* The buffer a convolution reads for v stored as t: v's bf16 halves, or a copy of v. */
static void *stored_in(const float *v, size_t n, ActType t) {
    return t == ACT_BF16 ? (void *)bf16_store(v, n) : as_stored(v, n, t);
}

/* The floats of an output buffer o [n] stored as t. */
static float *stored_out(const void *o, size_t n, ActType t) {
    return t == ACT_BF16 ? bf16_load(o, n) : as_stored(o, n, t);
}

/* Whether a bf16 plan for d (a shape winograd_bf16.c computes) should run pass (0 forward, 1 backward data, 2
 * backward weights) there, as cpu_conv.c's rule says: at least 4x4 output tiles per image; forward and backward
 * data with 64 or more channels in and out, backward weights (32 or more) up to 256; none on a CPU with AMX. */
static bool wino16_expected(const ConvDesc *d, int pass) {
    if (cpu_conv_amx()) return false;
    if (((d->oh + 1) / 2) * ((d->ow + 1) / 2) < 16) return false;
    if (pass < 2) return d->cin >= 64 && d->cout >= 64;
    return d->cin <= 256 && d->cout <= 256;
}

/* winograd_bf16.c's three passes against the fp32 reference, on NHWC with every mix of fp32 and bf16 storage,
 * partial tiles, a thread's odd last tile (paired with zeros in backward weights) and several chunks a thread:
 * no further from the exact result than WINO16_ERROR times a direct bf16 convolution (the reference on
 * bf16-rounded inputs and weights, its output rounded where it is stored bf16). Then through the
 * cpu backend's bf16 plans, NHWC and blocked, which pick it pass by pass where cpu_conv.c's rule says
 * (wino16_expected; the 32-channel case runs only backward weights there, its other passes on oneDNN). */
static void test_winograd_bf16_matches_ref(void **state) {
    Backends *b = *state;
    if (!cpu_conv_bf16_native()) {
        fprintf(stderr, "note: this CPU has no AVX512_BF16: winograd_bf16.c does not run on it\n");
        skip();
    }
    static const ConvCase cases[] = {{2, 8, 8, 64, 64, 3, 1, 1}, {3, 9, 7, 64, 96, 3, 1, 1},
                                     {2, 5, 6, 128, 64, 3, 1, 1}, {1, 3, 3, 32, 64, 3, 1, 1},
                                     {2, 7, 7, 512, 256, 3, 1, 1}, {5, 14, 14, 64, 64, 3, 1, 1},
                                     {3, 9, 9, 32, 32, 3, 1, 1}};
    static const ActTypes types[] = {{0}, {ACT_BF16, ACT_BF16, ACT_BF16, ACT_BF16, ACT_BF16},
                                     {.x = ACT_BF16, .dx = ACT_BF16}, {.y = ACT_BF16, .dy = ACT_BF16}};
    Error err = {{0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ConvDesc d;
        conv_desc_of(&cases[i], &d);
        assert_true(wino16_supported(&d, d.cin, d.cout));
        size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
        size_t nw = (size_t)d.cout * d.cin * 9;
        float *x = frand(nx, -1, 1, 510 + i), *w = frand(nw, -0.5f, 0.5f, 610 + i), *dy = frand(ny, -1, 1, 710 + i);
        float *xr = bf16_round(x, nx), *wr = bf16_round(w, nw), *dyr = bf16_round(dy, ny);
        float *y0 = fz(ny), *dx0 = fz(nx), *dw0 = fz(nw), *yr = fz(ny), *dxr = fz(nx), *dwr = fz(nw);
        void *rplan;
        assert_int_equal(b->ref->ops->conv_plan(b->ref, &d, &rplan, &err), 0);
        conv_run(b->ref, rplan, x, w, dy, y0, dx0, dw0);
        conv_run(b->ref, rplan, xr, wr, dyr, yr, dxr, dwr);
        size_t bytes = (wino16_work_bytes(&d, true, CPU_THREADS) + 63) / 64 * 64;
        void *work = aligned_alloc(64, bytes);
        assert_non_null(work);
        for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
            d.t = types[k];
            void *xin = stored_in(x, nx, d.t.x), *dyin = stored_in(dy, ny, d.t.dy);
            void *yout = fz(ny), *dxout = fz(nx);
            float *dw1 = fz(nw);
            wino16_forward(&d, d.cin, d.cout, xin, w, yout, work, CPU_THREADS);
            wino16_backward_data(&d, d.cin, d.cout, dyin, w, dxout, work, CPU_THREADS);
            wino16_backward_weights(&d, d.cin, d.cout, xin, dyin, dw1, work, CPU_THREADS);
            float *y1 = stored_out(yout, ny, d.t.y), *dx1 = stored_out(dxout, nx, d.t.dx);
            float *yb = as_stored(yr, ny, d.t.y), *dxb = as_stored(dxr, nx, d.t.dx);
            char name[96];
            snprintf(name, sizeof name, "winograd_bf16 case %zu types %zu", i, k);
            conv_error_within(name, &d, y1, yb, y0, dx1, dxb, dx0, dw1, dwr, dw0);
            free(xin), free(dyin), free(yout), free(dxout), free(dw1), free(y1), free(dx1), free(yb), free(dxb);
        }
        d.t = F32;
        /* through the backend's bf16 plans, both layouts */
        Backend *bes[2] = {b->cpu, b->blk};
        for (int l = 0; l < 2; l++) {
            Backend *be = bes[l];
            be->bf16 = true;
            void *plan;
            if (be->ops->conv_plan(be, &d, &plan, &err) != 0) fprintf(stderr, "%s\n", err.msg);
            assert_non_null(plan);
            for (int pass = 0; pass < 3; pass++) {
                bool on = wino16_expected(&d, pass);
                if ((strstr(cpu_conv_impl(plan, pass), "winograd_f2x2_3x3_bf16") != NULL) != on)
                    fail_msg("case %zu pass %d (%s) runs %s", i, pass, l ? "blocked" : "nhwc",
                             cpu_conv_impl(plan, pass));
            }
            float *y1 = fz(ny), *dx1 = fz(nx), *dw1 = fz(nw);
            conv_run_nhwc(be, plan, &d, x, w, dy, y1, dx1, dw1);
            char name[96];
            snprintf(name, sizeof name, "bf16 plan case %zu (%s)", i, l ? "blocked" : "nhwc");
            conv_error_within(name, &d, y1, yr, y0, dx1, dxr, dx0, dw1, dwr, dw0);
            be->ops->conv_plan_free(be, plan);
            be->bf16 = false;
            free(y1), free(dx1), free(dw1);
        }
        free(work);
        b->ref->ops->conv_plan_free(b->ref, rplan);
        float *all[] = {x, w, dy, xr, wr, dyr, y0, dx0, dw0, yr, dxr, dwr};
        for (size_t j = 0; j < sizeof all / sizeof *all; j++) free(all[j]);
    }
}

/* The implementations the CPU plan takes over oneDNN's first choice (cpu_conv.c, impl_rank), with Winograd
 * off: a strided 1x1 convolution on an odd input (ResNet-50's 11x11 -> 6x6 downsample at 176 px) does not run
 * on the generic direct kernel in any pass, the one shape that oneDNN 2.6.3's jit_1x1 backward weights gets
 * wrong does not use that kernel, and the backward weights of a 3x3 convolution with 256 output channels does
 * not run on the AVX2 direct kernel, while with 64 it does where oneDNN lists it first, and forward keeps
 * oneDNN's choice; with Winograd on, the 3x3 stride-1 layers of 32 to cpu_conv_wino_widest() channels run
 * winograd.c with the tile size of cpu_conv.c's rule. All stay equal to the reference in test_conv_matches_ref. */
static void test_conv_impl_choice(void **state) {
    (void)state;
    Error err = {{0}};
    CpuConv *cc;
    assert_int_equal(cpu_conv_create(CPU_THREADS, &cc, &err), 0);
    const ConvCase odd = {2, 11, 11, 64, 128, 1, 2, 0}, bug = {5, 12, 12, 4, 8, 1, 2, 0};
    const ConvCase even = {2, 12, 12, 64, 128, 1, 2, 0}, k3 = {2, 7, 7, 64, 256, 3, 1, 1},
                   k3_narrow = {2, 7, 7, 64, 64, 3, 1, 1};
    ConvDesc d;
    void *plan;
    conv_desc_of(&odd, &d);
    assert_int_equal(cpu_conv_plan(cc, &d, false, 0, false, &plan, &err), 0);
    for (int pass = 0; pass < 3; pass++) {
        const char *impl = cpu_conv_impl(plan, pass);
        if (strncmp(impl, "jit:", 4) == 0) fail_msg("1x1 stride 2 on 11x11, pass %d runs %s", pass, impl);
    }
    cpu_conv_plan_free(plan);
    conv_desc_of(&bug, &d);
    assert_int_equal(cpu_conv_plan(cc, &d, false, 0, false, &plan, &err), 0);
    if (strncmp(cpu_conv_impl(plan, 2), "jit_1x1", 7) == 0)
        fail_msg("backward weights of n5 12x12 4->8 s2 on jit_1x1");
    cpu_conv_plan_free(plan);
    /* oneDNN's own choice stands where its 1x1 kernel takes the shape */
    conv_desc_of(&even, &d);
    assert_int_equal(cpu_conv_plan(cc, &d, false, 0, false, &plan, &err), 0);
    assert_non_null(strstr(cpu_conv_impl(plan, 0), "1x1")); /* jit_1x1 or, on AVX-512, brgconv_1x1 */
    cpu_conv_plan_free(plan);
    conv_desc_of(&k3, &d);
    assert_int_equal(cpu_conv_plan(cc, &d, false, 0, false, &plan, &err), 0);
    if (strcmp(cpu_conv_impl(plan, 2), "jit:avx2") == 0) fail_msg("3x3 64->256 backward weights runs jit:avx2");
    const char *fwd = cpu_conv_impl(plan, 0); /* oneDNN's direct kernel: jit, or brgconv on AVX-512 */
    assert_true(strncmp(fwd, "jit:", 4) == 0 || strncmp(fwd, "brgconv:", 8) == 0);
    cpu_conv_plan_free(plan);
    conv_desc_of(&k3_narrow, &d);
    assert_int_equal(cpu_conv_plan(cc, &d, false, 0, false, &plan, &err), 0);
    if (strstr(cpu_conv_impl(plan, 0), "avx2"))
        assert_string_equal(cpu_conv_impl(plan, 2), "jit:avx2");
    cpu_conv_plan_free(plan);
    /* In the blocked layout (no GEMM convolution there) no pass falls back to oneDNN's reference loops: not
     * the stem (mixed: 3 channels in), not a 1x1 that its 1x1 kernel cannot take, not the wide 3x3, not a 3x3
     * on a 2x2 image (whose weight gradient only the GEMM convolution takes: the plan runs on NHWC); and the
     * 1x1 that its 1x1 kernel cannot take does not run a generic direct kernel either (NHWC, GEMM). */
    const ConvCase stem = {2, 32, 32, 3, 64, 7, 2, 3}, tiny = {2, 2, 2, 256, 256, 3, 1, 1};
    const ConvCase blocked[] = {stem, odd, k3, k3_narrow, bug, tiny};
    for (size_t i = 0; i < sizeof blocked / sizeof *blocked; i++) {
        conv_desc_of(&blocked[i], &d);
        assert_int_equal(cpu_conv_plan(cc, &d, false, cpu_conv_vector_block(), false, &plan, &err), 0);
        for (int pass = 0; pass < 3; pass++)
            if (strncmp(cpu_conv_impl(plan, pass), "ref", 3) == 0 ||
                (blocked[i].k == 1 && strncmp(cpu_conv_impl(plan, pass), "jit:", 4) == 0))
                fail_msg("blocked case %zu pass %d runs %s", i, pass, cpu_conv_impl(plan, pass));
        cpu_conv_plan_free(plan);
    }
    /* Winograd where asked for and chosen: 3x3 stride 1 with 32 to 512 channels (on an Intel CPU with AVX-512,
     * to 128: cpu_conv_wino_widest), fp32, either layout; not with 16 or 1024 channels, not strided. The tile:
     * F(4x4) up to 256 channels; at 512, F(2x2) on AVX2 and F(4x4) on AVX-512. On AVX-512, not where the
     * output has a single 4x4 tile per image. In bf16 (with AVX512_BF16) winograd_bf16.c's F(2x2) where
     * wino16_expected says: forward and backward data from 64 channels, backward weights from 32 up to 256, all
     * with 4x4 tiles per image or more. */
    bool avx512 = cpu_conv_vector_block() == 16;
    const ConvCase big = {2, 8, 8, 512, 512, 3, 1, 1}, small512 = {2, 3, 3, 512, 512, 3, 1, 1};
    const ConvCase wino[] = {k3, k3_narrow, {2, 9, 7, 32, 48, 3, 1, 1}, {2, 9, 9, 32, 64, 3, 1, 1}, big, tiny,
                             small512};
    const size_t n_wino = avx512 ? 5 : 7; /* the last two are direct on AVX-512 */
    const ConvCase direct[] = {{2, 7, 7, 16, 16, 3, 1, 1}, {2, 3, 3, 512, 1024, 3, 1, 1}, {2, 8, 8, 64, 64, 3, 2, 1},
                               tiny, small512};
    const size_t n_direct = avx512 ? 5 : 3;
    for (int block = 0; block <= cpu_conv_vector_block(); block += cpu_conv_vector_block()) {
        for (size_t i = 0; i < n_wino; i++) {
            conv_desc_of(&wino[i], &d);
            assert_int_equal(cpu_conv_plan(cc, &d, false, block, true, &plan, &err), 0);
            const char *tile = (d.cin <= 256 && d.cout <= 256) || avx512 ? "winograd_f4x4_3x3:avx2"
                                                                          : "winograd_f2x2_3x3:avx2";
            bool wide = d.cin > cpu_conv_wino_widest() || d.cout > cpu_conv_wino_widest();
            for (int pass = 0; pass < 3; pass++) {
                if (wide) assert_null(strstr(cpu_conv_impl(plan, pass), "winograd"));
                else assert_string_equal(cpu_conv_impl(plan, pass), tile);
            }
            cpu_conv_plan_free(plan);
            if (!cpu_conv_bf16_native()) continue;
            assert_int_equal(cpu_conv_plan(cc, &d, true, block, true, &plan, &err), 0);
            for (int pass = 0; pass < 3; pass++) {
                bool on = wino16_supported(&d, block ? block : d.cin, block ? block : d.cout) &&
                          wino16_expected(&d, pass);
                const char *impl = cpu_conv_impl(plan, pass);
                if (on) assert_string_equal(impl, "winograd_f2x2_3x3_bf16:avx512");
                else assert_null(strstr(impl, "winograd"));
            }
            cpu_conv_plan_free(plan);
        }
        for (size_t i = 0; i < n_direct; i++) {
            conv_desc_of(&direct[i], &d);
            assert_int_equal(cpu_conv_plan(cc, &d, false, block, true, &plan, &err), 0);
            assert_null(strstr(cpu_conv_impl(plan, 0), "winograd"));
            cpu_conv_plan_free(plan);
        }
    }
    cpu_conv_destroy(cc);
}

/* A plan without backward data (ConvDesc.no_dx: the network's first layer) on two ResNet-like stems (3
 * channels in, 7x7 stride 2) and a 1x1 convolution of 3 channels, in NHWC and blocked layouts, fp32 and (on
 * CPUs with AVX512_BF16) bf16: forward and backward weights as the reference (bf16: within bf16 rounding of
 * it), backward data refused with a message naming no_dx. With 16-channel blocks (AVX-512) the blocked stems
 * run on an NCHW copy of the input (cpu_conv_layouts), which is what takes the output reorders away. */
static void test_conv_first_layer(void **state) {
    Backends *b = *state;
    static const ConvCase cases[] = {{2, 16, 16, 3, 16, 7, 2, 3}, {3, 9, 11, 3, 32, 7, 2, 3},
                                     {2, 8, 8, 3, 16, 1, 1, 0}};
    Error err = {{0}};
    for (int run = 0; run < 4; run++) {
        Backend *be = run % 2 ? b->blk : b->cpu;
        bool bf16 = run >= 2;
        if (bf16 && !be->ops->bf16) {
            fprintf(stderr, "note: this CPU has no AVX512_BF16: bf16 first-layer plans not checked\n");
            continue;
        }
        be->bf16 = bf16;
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            ConvDesc d;
            conv_desc_of(&cases[i], &d);
            d.no_dx = true;
            void *plan, *rplan;
            if (be->ops->conv_plan(be, &d, &plan, &err) != 0) fprintf(stderr, "%s\n", err.msg);
            assert_non_null(plan);
            assert_int_equal(b->ref->ops->conv_plan(b->ref, &d, &rplan, &err), 0);
            int64_t hw = (int64_t)d.h * d.w, ohw = (int64_t)d.oh * d.ow;
            size_t nx = (size_t)d.n * hw * d.cin, ny = (size_t)d.n * ohw * d.cout;
            size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
            float *x = frand(nx, -1, 1, 800 + i), *w = frand(nw, -0.5f, 0.5f, 810 + i), *dy = frand(ny, -1, 1, 820 + i);
            float *y0 = fz(ny), *dw0 = fz(nw), *y1 = fz(ny), *dw1 = fz(nw), *by = fz(ny), *bdx = fz(nx);
            assert_int_equal(b->ref->ops->conv_forward(b->ref, rplan, x, w, y0, &err), 0);
            assert_int_equal(b->ref->ops->conv_backward_weights(b->ref, rplan, x, dy, dw0, &err), 0);
            float *bx = packed(be, d.n, hw, d.cin, x), *bdy = packed(be, d.n, ohw, d.cout, dy);
            assert_int_equal(be->ops->conv_forward(be, plan, bx, w, by, &err), 0);
            assert_int_equal(be->ops->conv_backward_weights(be, plan, bx, bdy, dw1, &err), 0);
            act_layout_unpack(be, d.n, ohw, d.cout, by, y1);
            double terms = (double)d.k * d.k * (d.cin + d.cout) + (double)d.n * d.oh * d.ow;
            double atol = (bf16 ? 4e-3 : 5e-7) * sqrt(terms), rtol = bf16 ? 1e-2 : 1e-4;
            char name[96];
            snprintf(name, sizeof name, "first-layer case %zu run %d forward", i, run);
            assert_close(name, y1, y0, ny, atol, rtol);
            snprintf(name, sizeof name, "first-layer case %zu run %d backward weights", i, run);
            assert_close(name, dw1, dw0, nw, atol, rtol);
            err.msg[0] = 0;
            assert_int_not_equal(be->ops->conv_backward_data(be, plan, bdy, w, bdx, &err), 0);
            assert_non_null(strstr(err.msg, "no_dx"));
            if (run % 2 && cpu_conv_vector_block() == 16 && d.k == 7)
                assert_string_equal(cpu_conv_layouts(plan), "NCHW input");
            be->ops->conv_plan_free(be, plan);
            b->ref->ops->conv_plan_free(b->ref, rplan);
            float *all[] = {x, w, dy, y0, dw0, y1, dw1, by, bdx, bx, bdy};
            for (size_t j = 0; j < sizeof all / sizeof *all; j++) free(all[j]);
        }
        be->bf16 = false;
    }
}

static void test_conv_plan_error(void **state) {
    Backend *be = ((Backends *)*state)->cpu;
    ConvDesc d;
    Error err = {{0}};
    assert_int_equal(conv_desc_init(&d, 2, 9, 9, 3, 4, 3, 1, 1, &err), 0);
    d.oh = 5; /* inconsistent with the input size: oneDNN must refuse it */
    void *plan = (void *)&d;
    assert_int_equal(be->ops->conv_plan(be, &d, &plan, &err), -1);
    assert_null(plan);
    assert_non_null(strstr(err.msg, "oneDNN"));
    assert_non_null(strstr(err.msg, "x[2,9,9,3]"));
    assert_non_null(strstr(err.msg, "invalid"));
}

/* ---------------------------------------------------------------- batch norm */

typedef struct BnCase {
    int64_t rows;
    int c;
    float lo, hi;
} BnCase;

static const BnCase BN_CASES[] = {
    {105, 5, -1, 1}, {1001, 17, 2, 4}, {37, 600, -3, 5}, {2, 3, 0, 1}, {1, 4, -1, 1}, {4099, 64, 100, 101},
};
#define N_BN (sizeof BN_CASES / sizeof *BN_CASES)

static void test_bn_train_matches_ref(void **state) {
    Backends *b = *state;
    for (size_t i = 0; i < N_BN; i++) {
        const BnCase *bc = &BN_CASES[i];
        size_t n = (size_t)bc->rows * bc->c, c = (size_t)bc->c;
        float *x = frand(n, bc->lo, bc->hi, 10 + i), *g = frand(c, 0.5f, 1.5f, 20 + i), *be_ = frand(c, -1, 1, 30 + i);
        float *rm0 = frand(c, -1, 1, 40 + i), *rv0 = frand(c, 0.5f, 2, 50 + i);
        float *rm1 = fdup(rm0, c), *rv1 = fdup(rv0, c);
        float *y0 = fz(n), *y1 = fz(n), *m0 = fz(c), *m1 = fz(c), *s0 = fz(c), *s1 = fz(c);
        b->ref->ops->bn_forward_train(b->ref, (int)bc->rows, 1, bc->c, x, g, be_, y0, m0, s0, rm0, rv0, 0.1f, 1e-5f);
        b->cpu->ops->bn_forward_train(b->cpu, (int)bc->rows, 1, bc->c, x, g, be_, y1, m1, s1, rm1, rv1, 0.1f, 1e-5f);
        /* rows of 1 normalize to 0 with invstd 1/sqrt(eps) ~ 316 */
        double rtol = bc->rows == 1 ? 1e-4 : 2e-5;
        assert_close("bn train y", y1, y0, n, 1e-5, 1e-4);
        assert_close("bn train save_mean", m1, m0, c, 1e-6, 1e-6);
        assert_close("bn train save_invstd", s1, s0, c, 1e-6, rtol);
        assert_close("bn train running_mean", rm1, rm0, c, 1e-6, 1e-6);
        assert_close("bn train running_var", rv1, rv0, c, 1e-6, 2e-5);
        free(x), free(g), free(be_), free(rm0), free(rv0), free(rm1), free(rv1);
        free(y0), free(y1), free(m0), free(m1), free(s0), free(s1);
    }
}

static void test_bn_eval_matches_ref(void **state) {
    Backends *b = *state;
    for (size_t i = 0; i < N_BN; i++) {
        const BnCase *bc = &BN_CASES[i];
        size_t n = (size_t)bc->rows * bc->c, c = (size_t)bc->c;
        float *x = frand(n, bc->lo, bc->hi, 60 + i), *g = frand(c, 0.5f, 1.5f, 70 + i), *be_ = frand(c, -1, 1, 80 + i);
        float *rm = frand(c, bc->lo, bc->hi, 90 + i), *rv = frand(c, 0.05f, 2, 95 + i);
        float *y0 = fz(n), *y1 = fz(n);
        b->ref->ops->bn_forward_eval(b->ref, (int)bc->rows, 1, bc->c, x, g, be_, rm, rv, 1e-5f, y0);
        b->cpu->ops->bn_forward_eval(b->cpu, (int)bc->rows, 1, bc->c, x, g, be_, rm, rv, 1e-5f, y1);
        assert_close("bn eval y", y1, y0, n, 1e-5, 1e-4);
        free(x), free(g), free(be_), free(rm), free(rv), free(y0), free(y1);
    }
}

static void test_bn_backward_matches_ref(void **state) {
    Backends *b = *state;
    for (size_t i = 0; i < N_BN; i++) {
        const BnCase *bc = &BN_CASES[i];
        size_t n = (size_t)bc->rows * bc->c, c = (size_t)bc->c;
        float *x = frand(n, bc->lo, bc->hi, 110 + i), *g = frand(c, 0.5f, 1.5f, 120 + i), *be_ = fz(c);
        float *dy = frand(n, -1, 1, 130 + i), *rm = fz(c), *rv = fz(c), *y = fz(n), *m = fz(c), *s = fz(c);
        b->ref->ops->bn_forward_train(b->ref, (int)bc->rows, 1, bc->c, x, g, be_, y, m, s, rm, rv, 0.1f, 1e-5f);
        float *dx0 = fz(n), *dx1 = fz(n), *dg0 = fz(c), *dg1 = fz(c), *db0 = fz(c), *db1 = fz(c);
        b->ref->ops->bn_backward(b->ref, (int)bc->rows, 1, bc->c, x, dy, g, m, s, dx0, dg0, db0);
        b->cpu->ops->bn_backward(b->cpu, (int)bc->rows, 1, bc->c, x, dy, g, m, s, dx1, dg1, db1);
        double scale = sqrt((double)bc->rows);
        assert_close("bn backward dx", dx1, dx0, n, 1e-5, 1e-4);
        assert_close("bn backward dgamma", dg1, dg0, c, 1e-6 * scale, 1e-5);
        assert_close("bn backward dbeta", db1, db0, c, 1e-6 * scale, 1e-5);
        free(x), free(g), free(be_), free(dy), free(rm), free(rv), free(y), free(m), free(s);
        free(dx0), free(dx1), free(dg0), free(dg1), free(db0), free(db1);
    }
}

/* The fused BN + ReLU operations, and BN + add + ReLU (with skip), are bit-identical to the cpu backend's own bn,
 * add_relu and relu, forward (y, saved and running statistics) and backward (dx, dgamma, dbeta: the BN's
 * backward of the ReLU's gradient, with or without the add); half the values are negative, so the mask matters. */
static void test_bn_relu_fused_exact(void **state) {
    Backend *be = ((Backends *)*state)->cpu;
    const BackendOps *o = be->ops;
    assert_non_null(o->bn_relu_forward_train);
    assert_non_null(o->bn_relu_backward);
    for (size_t i = 0; i < 2 * N_BN; i++) {
        const BnCase *bc = &BN_CASES[i % N_BN];
        bool add = i >= N_BN;
        if (bc->rows < 2) continue;
        size_t n = (size_t)bc->rows * bc->c, c = (size_t)bc->c;
        float *x = frand(n, bc->lo, bc->hi, 210 + i), *g = frand(c, 0.5f, 1.5f, 220 + i);
        float *be_ = frand(c, -1, 1, 230 + i), *dy = frand(n, -1, 1, 240 + i), *skip = frand(n, -2, 1, 270 + i);
        float *rm0 = frand(c, -1, 1, 250 + i), *rv0 = frand(c, 0.5f, 2, 260 + i), *rm1 = fdup(rm0, c), *rv1 = fdup(rv0, c);
        float *bn = fz(n), *y0 = fz(n), *y1 = fz(n), *m0 = fz(c), *m1 = fz(c), *s0 = fz(c), *s1 = fz(c);
        float *g0 = fz(n), *dx0 = fz(n), *dx1 = fz(n), *dg0 = fz(c), *dg1 = fz(c), *db0 = fz(c), *db1 = fz(c);
        o->bn_forward_train(be, (int)bc->rows, 1, bc->c, x, g, be_, bn, m0, s0, rm0, rv0, 0.1f, 1e-5f);
        if (add)
            o->add_relu(be, (int64_t)n, skip, bn, y0);
        else
            o->relu_forward(be, (int64_t)n, bn, y0);
        o->bn_relu_forward_train(be, (int)bc->rows, 1, bc->c, F32, x, add ? skip : NULL, g, be_, y1, m1, s1, rm1,
                                 rv1, 0.1f, 1e-5f);
        assert_true(same_bits("bn+relu y", y1, y0, n, 4));
        assert_true(same_bits("bn+relu save_mean", m1, m0, c, 4));
        assert_true(same_bits("bn+relu save_invstd", s1, s0, c, 4));
        assert_true(same_bits("bn+relu running_mean", rm1, rm0, c, 4));
        assert_true(same_bits("bn+relu running_var", rv1, rv0, c, 4));
        o->relu_backward(be, (int64_t)n, y0, dy, g0);
        o->bn_backward(be, (int)bc->rows, 1, bc->c, x, g0, g, m0, s0, dx0, dg0, db0);
        o->bn_relu_backward(be, (int)bc->rows, 1, bc->c, F32, x, y1, dy, g, m1, s1, dx1, dg1, db1);
        assert_true(same_bits("bn+relu dx", dx1, dx0, n, 4));
        assert_true(same_bits("bn+relu dgamma", dg1, dg0, c, 4));
        assert_true(same_bits("bn+relu dbeta", db1, db0, c, 4));
        /* y NULL: the plain backward (a BN whose ReLU ran in the ADD after it) */
        o->bn_backward(be, (int)bc->rows, 1, bc->c, x, dy, g, m0, s0, dx0, dg0, db0);
        o->bn_relu_backward(be, (int)bc->rows, 1, bc->c, F32, x, NULL, dy, g, m1, s1, dx1, dg1, db1);
        assert_true(same_bits("bn (y NULL) dx", dx1, dx0, n, 4));
        assert_true(same_bits("bn (y NULL) dgamma", dg1, dg0, c, 4));
        assert_true(same_bits("bn (y NULL) dbeta", db1, db0, c, 4));
        float *all[] = {x,  g,  be_, dy, skip, rm0, rv0, rm1, rv1, bn,  y0,  y1,
                        m0, m1, s0,  s1, g0,   dx0, dx1, dg0, dg1, db0, db1};
        for (size_t j = 0; j < sizeof all / sizeof *all; j++) free(all[j]);
    }
}

/* Whether an output stored as type (got16 when ACT_BF16, else got) holds want [n] as that storage would: the
 * same floats, or want rounded to bf16, bit for bit. */
static bool same_stored(const char *name, ActType type, const uint16_t *got16, const float *got, const float *want,
                        size_t n) {
    if (type != ACT_BF16) return same_bits(name, got, want, n, sizeof *got);
    uint16_t *w16 = bf16_store(want, n);
    bool same = same_bits(name, got16, w16, n, sizeof *w16);
    free(w16);
    return same;
}

/* bf16 storage in the fused batch-norm ops (ActTypes): the same as the fp32 ops run on the values the bf16
 * inputs hold, with every bf16 output the fp32 output rounded to nearest even and the statistics and parameter
 * gradients identical, bit for bit; every combination of stored types, in NHWC and blocked layouts (48 channels:
 * blocks on the blocked backend; 20: NHWC rows there too), forward with and without the (bf16-stored) skip add,
 * backward with and without the ReLU mask; and relu_backward_bf16 as relu_backward on the values it holds. */
static void test_bn_bf16_storage(void **state) {
    Backends *b = *state;
    Backend *bes[2] = {b->cpu, b->blk};
    const int n = 3, hw = 9, cs[2] = {48, 20};
    for (int k = 0; k < 4; k++) {
        Backend *be = bes[k / 2];
        const BackendOps *o = be->ops;
        assert_true(o->bf16_store);
        int c = cs[k % 2];
        size_t N = (size_t)n * hw * c, C = (size_t)c;
        uint64_t seed = 5000 + 100 * (uint64_t)k;
        float *x0 = frand(N, -1, 3, seed), *dy0 = frand(N, -1, 1, seed + 1), *skip0 = frand(N, -2, 1, seed + 2);
        float *g = frand(C, 0.5f, 1.5f, seed + 3), *beta = frand(C, -1, 1, seed + 4);
        uint16_t *x16 = bf16_store(x0, N), *dy16 = bf16_store(dy0, N);
        float *x = bf16_load(x16, N), *dy = bf16_load(dy16, N); /* what the bf16 inputs hold */
        float *st0[4], *st1[4], *yref = fz(N), *ymask = fz(N), *yf = fz(N);
        uint16_t *ymask16 = NULL, *y16 = malloc(N * sizeof *y16);
        uint16_t *skip16 = bf16_store(skip0, N);
        float *skip = bf16_load(skip16, N);
        for (int tm = 0; tm < 8; tm++) { /* bit 0: x stored bf16, bit 1: y, bit 2: skip (and the add) */
            bool add = tm & 4;
            ActTypes t = {.x = tm & 1 ? ACT_BF16 : ACT_F32, .y = tm & 2 ? ACT_BF16 : ACT_F32, .skip = ACT_BF16};
            for (int q = 0; q < 4; q++) st0[q] = frand(C, 0.5f, 1, seed + 5), st1[q] = fdup(st0[q], C);
            o->bn_relu_forward_train(be, n, hw, c, F32, x, add ? skip : NULL, g, beta, yref, st0[0], st0[1], st0[2],
                                     st0[3], 0.1f, 1e-5f);
            o->bn_relu_forward_train(be, n, hw, c, t, t.x ? (const void *)x16 : x, add ? skip16 : NULL, g, beta,
                                     t.y ? (void *)y16 : yf, st1[0], st1[1], st1[2], st1[3], 0.1f, 1e-5f);
            assert_true(same_stored("bn+relu y with bf16 storage", t.y, y16, yf, yref, N));
            for (int q = 0; q < 4; q++) {
                assert_same_floats("bn statistics with bf16 storage", st1[q], st0[q], C);
                free(st0[q]), free(st1[q]);
            }
            if (tm == 0) memcpy(ymask, yref, N * sizeof *ymask); /* a ReLU output: the mask below */
        }
        /* the ADD's ReLU mask from a bf16-stored output */
        float *dxm0 = fz(N), *dxm1 = fz(N);
        uint16_t *yref16 = bf16_store(yref, N);
        float *yrefw = bf16_load(yref16, N);
        o->relu_backward(be, (int64_t)N, yrefw, dy, dxm0);
        o->relu_backward_bf16(be, (int64_t)N, yref16, dy, dxm1);
        assert_same_floats("relu_backward_bf16", dxm1, dxm0, N);
        free(dxm0), free(dxm1), free(yref16), free(yrefw), free(skip16), free(skip);
        ymask16 = bf16_store(ymask, N);
        float *ym = bf16_load(ymask16, N), *m = frand(C, -0.5f, 0.5f, seed + 6), *is = frand(C, 0.5f, 2, seed + 7);
        float *dxref = fz(N), *dxf = fz(N), *dg0 = fz(C), *db0 = fz(C), *dg1 = fz(C), *db1 = fz(C);
        uint16_t *dx16 = malloc(N * sizeof *dx16);
        for (int relu = 0; relu < 2; relu++)
            for (int tm = 0; tm < 16; tm++) { /* bits: x, dy, y, dx stored bf16 */
                ActTypes t = {.x = tm & 1 ? ACT_BF16 : ACT_F32, .dy = tm & 2 ? ACT_BF16 : ACT_F32,
                              .y = tm & 4 ? ACT_BF16 : ACT_F32, .dx = tm & 8 ? ACT_BF16 : ACT_F32};
                if (!relu && t.y) continue;
                o->bn_relu_backward(be, n, hw, c, F32, x, relu ? ym : NULL, dy, g, m, is, dxref, dg0, db0);
                const void *yin = !relu ? NULL : t.y ? (const void *)ymask16 : ym;
                o->bn_relu_backward(be, n, hw, c, t, t.x ? (const void *)x16 : x, yin, t.dy ? (const void *)dy16 : dy,
                                    g, m, is, t.dx ? (void *)dx16 : dxf, dg1, db1);
                assert_true(same_stored("bn backward dx with bf16 storage", t.dx, dx16, dxf, dxref, N));
                assert_same_floats("bn dgamma with bf16 storage", dg1, dg0, C);
                assert_same_floats("bn dbeta with bf16 storage", db1, db0, C);
            }
        float *all[] = {x0, dy0, skip0, g, beta, x, dy, yref, ymask, yf, ym, m, is, dxref, dxf, dg0, db0, dg1, db1};
        for (size_t j = 0; j < sizeof all / sizeof *all; j++) free(all[j]);
        free(x16), free(dy16), free(y16), free(ymask16), free(dx16);
    }
}

/* The AVX-512 build of batch norm (cpu_bn_avx512) gives the portable build's (cpu_bn_portable) bits: training
 * forward (plain, with ReLU, with skip add and ReLU), evaluation and backward (with and without the ReLU mask),
 * with fp32, with every activation stored bf16 and with the mix of a bf16 ResNet step (x, skip, dx bf16; y, dy
 * fp32), in NHWC and blocked layouts, for channel counts of one block, of NHWC rows and past BN_CHUNK (512). */
static void test_bn_isa_tables_same(void **state) {
    Backends *b = *state;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl") ||
        !__builtin_cpu_supports("avx512cd")) {
        fprintf(stderr, "note: this CPU has no AVX-512: only the portable batch norm runs here\n");
        skip();
    }
    assert_ptr_equal(cpu_bn_select(), &cpu_bn_avx512);
    const CpuBn *isa[2] = {&cpu_bn_portable, &cpu_bn_avx512};
    Backend *bes[2] = {b->cpu, b->blk};
    const int n = 3, hw = 37, cs[3] = {48, 20, 528};
    double *work = aligned_alloc(64, cpu_bn_work_bytes(CPU_THREADS));
    assert_non_null(work);
    for (int k = 0; k < 6; k++) {
        Backend *be = bes[k / 3];
        int c = cs[k % 3];
        size_t N = (size_t)n * hw * c, C = (size_t)c;
        uint64_t seed = 7000 + 100 * (uint64_t)k;
        float *x = frand(N, -1, 3, seed), *dy = frand(N, -1, 1, seed + 1), *skip = frand(N, -2, 1, seed + 2);
        float *g = frand(C, 0.5f, 1.5f, seed + 3), *beta = frand(C, -1, 1, seed + 4);
        uint16_t *x16 = bf16_store(x, N), *dy16 = bf16_store(dy, N), *skip16 = bf16_store(skip, N);
        /* bf: 0 all fp32, 1 all bf16, 2 mixed as in a bf16 ResNet step (x, skip and dx bf16; y and dy fp32) */
        for (int bf = 0; bf < 3; bf++)
            for (int mode = 0; mode < 3; mode++) { /* forward: plain BN, + ReLU, + skip add and ReLU */
                float *y[2], *st[2][4];
                const void *sk = mode < 2 ? NULL : bf ? (const void *)skip16 : skip;
                BnIo io = {.x = bf ? (const void *)x16 : x, .skip = sk,
                           .tm = bf ? BN_X | (bf == 1 ? BN_OUT : 0) | (mode == 2 ? BN_SKIP : 0) : 0};
                for (int v = 0; v < 2; v++) {
                    y[v] = fz(N);
                    for (int q = 0; q < 4; q++) st[v][q] = frand(C, 0.5f, 1, seed + 5);
                    io.out = y[v];
                    isa[v]->train(be, work, n, hw, c, &io, g, beta, mode > 0, st[v][0], st[v][1], st[v][2],
                                  st[v][3], 0.1f, 1e-5f);
                }
                assert_true(
                    same_bits("bn train y, avx512 vs portable", y[1], y[0], bf == 1 ? N / 2 : N, sizeof(float)));
                for (int q = 0; q < 4; q++)
                    assert_same_floats("bn statistics, avx512 vs portable", st[1][q], st[0][q], C);
                if (mode == 0 && !bf) { /* evaluation with the statistics just made */
                    float *e[2] = {fz(N), fz(N)};
                    BnIo eio = {.x = x};
                    for (int v = 0; v < 2; v++) {
                        eio.out = e[v];
                        isa[v]->eval(be, n, hw, c, &eio, g, beta, st[0][2], st[0][3], 1e-5f);
                    }
                    assert_same_floats("bn eval y, avx512 vs portable", e[1], e[0], N);
                    free(e[0]), free(e[1]);
                }
                for (int relu = 0; relu < 2 && mode == 0; relu++) { /* without and with y's ReLU mask */
                    float *dx[2], *dg[2], *db[2];
                    BnIo bio = {.x = io.x, .dy = bf == 1 ? (const void *)dy16 : dy, .y = relu ? y[0] : NULL,
                                .tm = bf == 1 ? BN_X | BN_DY | (relu ? BN_Y : 0) | BN_OUT : bf ? BN_X | BN_OUT : 0};
                    for (int v = 0; v < 2; v++) {
                        dx[v] = fz(N), dg[v] = fz(C), db[v] = fz(C);
                        bio.out = dx[v];
                        isa[v]->backward(be, work, n, hw, c, &bio, g, st[0][0], st[0][1], dg[v], db[v]);
                    }
                    assert_true(same_bits("bn backward dx, avx512 vs portable", dx[1], dx[0], bf ? N / 2 : N,
                                          sizeof(float)));
                    assert_same_floats("bn dgamma, avx512 vs portable", dg[1], dg[0], C);
                    assert_same_floats("bn dbeta, avx512 vs portable", db[1], db[0], C);
                    for (int v = 0; v < 2; v++) free(dx[v]), free(dg[v]), free(db[v]);
                }
                for (int v = 0; v < 2; v++) {
                    free(y[v]);
                    for (int q = 0; q < 4; q++) free(st[v][q]);
                }
            }
        free(x), free(dy), free(skip), free(g), free(beta), free(x16), free(dy16), free(skip16);
    }
    free(work);
}

/* ---------------------------------------------------------------- elementwise */

static void test_elementwise_exact(void **state) {
    Backends *b = *state;
    const int64_t sizes[] = {1, 7, 1003, 100003};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int64_t n = sizes[s];
        float *x = frand((size_t)n, -1, 1, 500 + s), *x2 = frand((size_t)n, -3, 2, 510 + s);
        float *dy = frand((size_t)n, -1, 1, 520 + s);
        x[0] = -0.0f;
        if (n > 3) x[1] = 0.0f, x[2] = NAN, x[3] = INFINITY;
        float *y0 = fz((size_t)n), *y1 = fz((size_t)n);
        b->ref->ops->relu_forward(b->ref, n, x, y0);
        b->cpu->ops->relu_forward(b->cpu, n, x, y1);
        assert_same_floats("relu forward", y1, y0, (size_t)n);
        float *dx0 = fz((size_t)n), *dx1 = fz((size_t)n);
        b->ref->ops->relu_backward(b->ref, n, y0, dy, dx0);
        b->cpu->ops->relu_backward(b->cpu, n, y0, dy, dx1);
        assert_same_floats("relu backward", dx1, dx0, (size_t)n);
        /* relu_backward_add: the mask of x (with -0, 0, NaN, inf; fp32 and its bf16 rounding) on dy + x2, against
         * the ref and against the cpu's own axpy then relu_backward(_bf16), and in place on its second part */
        float *sum = malloc((size_t)n * sizeof *sum), *inplace = malloc((size_t)n * sizeof *inplace);
        uint16_t *x16 = bf16_store(x, (size_t)n);
        assert_non_null(sum), assert_non_null(inplace);
        memcpy(sum, dy, (size_t)n * sizeof *sum);
        b->cpu->ops->axpy(b->cpu, n, 1.0f, x2, sum);
        for (int yt = ACT_F32; yt <= ACT_BF16; yt++) {
            const void *ym = yt == ACT_BF16 ? (const void *)x16 : x;
            b->ref->ops->relu_backward_add(b->ref, n, (ActType)yt, ym, dy, x2, dx0);
            b->cpu->ops->relu_backward_add(b->cpu, n, (ActType)yt, ym, dy, x2, dx1);
            assert_same_floats("relu backward add", dx1, dx0, (size_t)n);
            if (yt == ACT_BF16) b->cpu->ops->relu_backward_bf16(b->cpu, n, ym, sum, dx0);
            else b->cpu->ops->relu_backward(b->cpu, n, x, sum, dx0);
            assert_same_floats("relu backward add vs axpy + relu backward", dx1, dx0, (size_t)n);
            memcpy(inplace, x2, (size_t)n * sizeof *inplace);
            b->cpu->ops->relu_backward_add(b->cpu, n, (ActType)yt, ym, dy, inplace, inplace);
            assert_same_floats("relu backward add in place", inplace, dx1, (size_t)n);
        }
        free(sum), free(inplace), free(x16);
        b->ref->ops->add(b->ref, n, x, x2, y0);
        b->cpu->ops->add(b->cpu, n, x, x2, y1);
        assert_same_floats("add", y1, y0, (size_t)n);
        b->ref->ops->axpy(b->ref, n, -0.3f, x2, y0);
        b->cpu->ops->axpy(b->cpu, n, -0.3f, x2, y1);
        assert_same_floats("axpy", y1, y0, (size_t)n);
        free(x), free(x2), free(dy), free(y0), free(y1), free(dx0), free(dx1);
    }
}

/* ---------------------------------------------------------------- pooling */

typedef struct PoolCase {
    int n, h, w, c, k, stride, pad;
} PoolCase;

static const PoolCase POOL_CASES[] = {
    {3, 9, 11, 5, 3, 2, 1}, {2, 7, 5, 17, 3, 2, 1}, {3, 7, 5, 6, 1, 1, 0},
    {2, 8, 8, 33, 2, 2, 0}, {1, 1, 1, 3, 1, 1, 0},
};

/* Values with many ties: relu of multiples of 0.25, so most windows hold several equal maxima (often 0). */
static float *tied_values(size_t n, uint64_t seed) {
    float *x = frand(n, -1, 1, seed);
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? floorf(x[i] * 4) / 4 : 0.0f;
    return x;
}

static void maxpool_compare(Backends *b, const PoolDesc *d, const float *x, uint64_t seed) {
    size_t nx = (size_t)d->n * d->h * d->w * d->c, ny = (size_t)d->n * d->oh * d->ow * d->c;
    float *y0 = fz(ny), *y1 = fz(ny), *dy = frand(ny, -1, 1, seed);
    float *dx0 = frand(nx, 5, 6, 1), *dx1 = frand(nx, 7, 8, 2); /* garbage: backward must overwrite it */
    int32_t *a0 = calloc(ny, sizeof *a0), *a1 = calloc(ny, sizeof *a1);
    assert_non_null(a0);
    assert_non_null(a1);
    b->ref->ops->maxpool_forward(b->ref, d, x, y0, a0);
    b->cpu->ops->maxpool_forward(b->cpu, d, x, y1, a1);
    assert_same_floats("maxpool forward", y1, y0, ny);
    assert_same_ints("maxpool argmax", a1, a0, ny);
    b->ref->ops->maxpool_backward(b->ref, d, dy, a0, dx0);
    b->cpu->ops->maxpool_backward(b->cpu, d, dy, a1, dx1);
    assert_same_floats("maxpool backward", dx1, dx0, nx);
    free(y0), free(y1), free(dy), free(dx0), free(dx1), free(a0), free(a1);
}

static void test_maxpool_matches_ref(void **state) {
    Backends *b = *state;
    for (size_t i = 0; i < sizeof POOL_CASES / sizeof *POOL_CASES; i++) {
        const PoolCase *pc = &POOL_CASES[i];
        PoolDesc d;
        Error err;
        assert_int_equal(pool_desc_init(&d, pc->n, pc->h, pc->w, pc->c, pc->k, pc->stride, pc->pad, &err), 0);
        size_t nx = (size_t)d.n * d.h * d.w * d.c;
        float *x = frand(nx, -1, 1, 600 + i);
        maxpool_compare(b, &d, x, 610 + i);
        free(x);
        x = tied_values(nx, 620 + i);
        maxpool_compare(b, &d, x, 630 + i);
        /* NaNs and infinities: a NaN wins its window, -inf and +inf behave as numbers */
        for (size_t j = 0; j < nx; j += 7) x[j] = j % 3 == 0 ? NAN : (j % 3 == 1 ? -INFINITY : INFINITY);
        maxpool_compare(b, &d, x, 640 + i);
        for (size_t j = 0; j < nx; j++) x[j] = -INFINITY; /* all -inf: the first element of each window */
        maxpool_compare(b, &d, x, 650 + i);
        free(x);
    }
}

static void test_avgpool_matches_ref(void **state) {
    Backends *b = *state;
    const int shapes[][3] = {{3, 35, 5}, {2, 1, 17}, {4, 49, 130}, {1, 9, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int n = shapes[i][0], hw = shapes[i][1], c = shapes[i][2];
        size_t nx = (size_t)n * hw * c, ny = (size_t)n * c;
        float *x = frand(nx, -2, 3, 700 + i), *dy = frand(ny, -1, 1, 710 + i);
        float *y0 = fz(ny), *y1 = fz(ny), *dx0 = fz(nx), *dx1 = fz(nx);
        b->ref->ops->avgpool_forward(b->ref, n, hw, c, x, y0);
        b->cpu->ops->avgpool_forward(b->cpu, n, hw, c, x, y1);
        assert_same_floats("avgpool forward", y1, y0, ny);
        b->ref->ops->avgpool_backward(b->ref, n, hw, c, dy, dx0);
        b->cpu->ops->avgpool_backward(b->cpu, n, hw, c, dy, dx1);
        assert_same_floats("avgpool backward", dx1, dx0, nx);
        free(x), free(dy), free(y0), free(y1), free(dx0), free(dx1);
    }
}

/* ---------------------------------------------------------------- fully connected */

static void test_fc_matches_ref(void **state) {
    Backends *b = *state;
    const int shapes[][3] = {{3, 17, 5}, {5, 300, 10}, {1, 3, 1}, {7, 6, 263}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        int n = shapes[i][0], cin = shapes[i][1], cout = shapes[i][2];
        size_t nx = (size_t)n * cin, nw = (size_t)cout * cin, ny = (size_t)n * cout;
        float *x = frand(nx, -1, 1, 800 + i), *w = frand(nw, -0.5f, 0.5f, 810 + i), *bias = frand(cout, -1, 1, 820 + i);
        float *dy = frand(ny, -1, 1, 830 + i);
        float *y0 = fz(ny), *y1 = fz(ny), *dx0 = fz(nx), *dx1 = fz(nx), *dw0 = fz(nw), *dw1 = fz(nw);
        float *db0 = fz(cout), *db1 = fz(cout);
        const float *bs = i % 2 ? NULL : bias; /* fc without bias too */
        Error err;
        assert_int_equal(b->ref->ops->fc_forward(b->ref, n, cin, cout, x, w, bs, y0, &err), 0);
        assert_int_equal(b->cpu->ops->fc_forward(b->cpu, n, cin, cout, x, w, bs, y1, &err), 0);
        assert_close("fc forward", y1, y0, ny, 1e-5, 1e-4);
        assert_int_equal(b->ref->ops->fc_backward(b->ref, n, cin, cout, x, w, dy, dx0, dw0, db0, &err), 0);
        assert_int_equal(b->cpu->ops->fc_backward(b->cpu, n, cin, cout, x, w, dy, dx1, dw1, db1, &err), 0);
        assert_close("fc backward dx", dx1, dx0, nx, 1e-5, 1e-4);
        assert_close("fc backward dw", dw1, dw0, nw, 1e-5, 1e-4);
        assert_close("fc backward db", db1, db0, cout, 1e-5, 1e-4);
        memset(dx1, 0, nx * sizeof *dx1); /* dx NULL: only dw and db */
        assert_int_equal(b->cpu->ops->fc_backward(b->cpu, n, cin, cout, x, w, dy, NULL, dw1, db1, &err), 0);
        assert_close("fc backward dw (no dx)", dw1, dw0, nw, 1e-5, 1e-4);
        for (size_t j = 0; j < nx; j++) assert_true(dx1[j] == 0.0f);
        free(x), free(w), free(bias), free(dy), free(y0), free(y1), free(dx0), free(dx1), free(dw0), free(dw1);
        free(db0), free(db1);
    }
}

/* ---------------------------------------------------------------- losses */

/* Soft targets [n, c]: rows summing to 1 (label-smoothed / mixed), or arbitrary values in [0, 1]. */
static float *soft_targets(int n, int c, bool normalized, uint64_t seed) {
    float *t = frand((size_t)n * c, 0, 1, seed);
    if (!normalized) return t;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < c; j++) s += t[(size_t)i * c + j];
        for (int j = 0; j < c; j++) t[(size_t)i * c + j] = (float)(t[(size_t)i * c + j] / s);
    }
    return t;
}

static void test_losses_match_ref(void **state) {
    Backends *b = *state;
    const int shapes[][2] = {{3, 5}, {7, 17}, {1, 1000}, {5, 1}};
    for (int kind = 0; kind < 2; kind++)
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
            for (int norm = 0; norm < 2; norm++) {
                int n = shapes[i][0], c = shapes[i][1];
                size_t nz = (size_t)n * c;
                float *z = frand(nz, -8, 8, 900 + i), *t = soft_targets(n, c, norm, 910 + i);
                float *l0 = fz(n), *l1 = fz(n), *d0 = fz(nz), *d1 = fz(nz);
                float scale = 1.0f / n;
                b->ref->ops->loss_forward_backward(b->ref, (LossKind)kind, n, c, z, t, scale, l0, d0);
                b->cpu->ops->loss_forward_backward(b->cpu, (LossKind)kind, n, c, z, t, scale, l1, d1);
                assert_close("loss", l1, l0, n, 1e-6, 1e-6);
                assert_close("dlogits", d1, d0, nz, 1e-7, 1e-6);
                b->cpu->ops->loss_forward_backward(b->cpu, (LossKind)kind, n, c, z, t, scale, l1, NULL);
                assert_close("loss without dlogits", l1, l0, n, 1e-6, 1e-6);
                free(z), free(t), free(l0), free(l1), free(d0), free(d1);
            }
}

/* ---------------------------------------------------------------- optimizer */

static void test_sgd_step_exact(void **state) {
    Backends *b = *state;
    const int64_t n = 1037;
    int cases = 0;
    for (int decoupled = 0; decoupled < 2; decoupled++)
        for (int nesterov = 0; nesterov < 2; nesterov++)
            for (int first = 0; first < 2; first++)
                for (int damp = 0; damp < 2; damp++)
                    for (int mom = 0; mom < 2; mom++)
                        for (int wd = 0; wd < 2; wd++) {
                            SgdStep s = {.lr = 0.37, .momentum = mom ? 0.875 : 0.0, .dampening = damp ? 0.1 : 0.0,
                                         .weight_decay = wd ? 5e-4 : 0.0, .decay_factor = 0.73,
                                         .nesterov = nesterov, .decoupled = decoupled, .first_step = first};
                            float *p0 = frand(n, -1, 1, 1000 + cases), *g = frand(n, -1, 1, 1100 + cases);
                            float *m0 = frand(n, -1, 1, 1200 + cases), *p1 = fdup(p0, n), *m1 = fdup(m0, n);
                            for (int step = 0; step < 3; step++) {
                                b->ref->ops->sgd_step(b->ref, &s, n, p0, g, m0);
                                b->cpu->ops->sgd_step(b->cpu, &s, n, p1, g, m1);
                                s.first_step = false;
                            }
                            assert_same_floats("sgd params", p1, p0, n);
                            assert_same_floats("sgd momentum", m1, m0, n);
                            free(p0), free(g), free(m0), free(p1), free(m1);
                            cases++;
                        }
}

/* ---------------------------------------------------------------- finite differences of the ref ops */

/* A function of one input tensor for gradient checks: fills out from the inputs in ctx. */
typedef void (*FdEval)(void *ctx, float *out);

/* Checks grad [n] against central differences of L = sum r * f(in) over every element of in [n]; f writes
 * nout outputs. Returns the relative error max|numeric - grad| / max|grad|. */
static double fd_check(const char *name, FdEval f, void *ctx, float *in, size_t n, const float *r, size_t nout,
                       const float *grad, float eps) {
    float *out = fz(nout);
    double worst = 0, gmax = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = in[i];
        float up = keep + eps, dn = keep - eps;
        in[i] = up;
        f(ctx, out);
        double lp = dot_d(r, out, nout);
        in[i] = dn;
        f(ctx, out);
        double lm = dot_d(r, out, nout);
        in[i] = keep;
        double num = (lp - lm) / ((double)up - dn), d = fabs(num - grad[i]);
        if (d > worst) worst = d;
        if (fabs(grad[i]) > gmax) gmax = fabs(grad[i]);
    }
    free(out);
    double rel = worst / (gmax > 0 ? gmax : 1);
    if (rel > 0.02) fprintf(stderr, "%s: finite differences disagree: relative error %.3g\n", name, rel);
    return rel;
}

typedef struct ConvFd {
    Backend *be;
    void *plan;
    float *x, *w;
} ConvFd;

static void conv_fd_eval(void *ctx, float *out) {
    ConvFd *c = ctx;
    Error err;
    assert_int_equal(c->be->ops->conv_forward(c->be, c->plan, c->x, c->w, out, &err), 0);
}

static void test_fd_conv(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    const ConvCase cases[] = {{2, 5, 4, 3, 4, 3, 2, 1}, {1, 4, 5, 2, 3, 1, 1, 0}, {1, 6, 5, 2, 2, 7, 1, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ConvDesc d;
        conv_desc_of(&cases[i], &d);
        size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
        size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
        ConvFd c = {ref, NULL, frand(nx, -1, 1, 1300 + i), frand(nw, -1, 1, 1310 + i)};
        float *r = frand(ny, -1, 1, 1320 + i), *dx = fz(nx), *dw = fz(nw);
        Error err;
        assert_int_equal(ref->ops->conv_plan(ref, &d, &c.plan, &err), 0);
        assert_int_equal(ref->ops->conv_backward_data(ref, c.plan, r, c.w, dx, &err), 0);
        assert_int_equal(ref->ops->conv_backward_weights(ref, c.plan, c.x, r, dw, &err), 0);
        assert_true(fd_check("conv dx", conv_fd_eval, &c, c.x, nx, r, ny, dx, 1e-2f) < 0.02);
        assert_true(fd_check("conv dw", conv_fd_eval, &c, c.w, nw, r, ny, dw, 1e-2f) < 0.02);
        ref->ops->conv_plan_free(ref, c.plan);
        free(c.x), free(c.w), free(r), free(dx), free(dw);
    }
}

typedef struct BnFd {
    Backend *be;
    int64_t rows;
    int c;
    float *x, *gamma, *beta;
} BnFd;

static void bn_fd_eval(void *ctx, float *out) {
    BnFd *b = ctx;
    float m[8], s[8], rm[8] = {0}, rv[8] = {0};
    b->be->ops->bn_forward_train(b->be, (int)b->rows, 1, b->c, b->x, b->gamma, b->beta, out, m, s, rm, rv, 0.1f, 1e-5f);
}

static void test_fd_bn(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    BnFd b = {ref, 13, 3, frand(39, -1, 2, 1400), frand(3, 0.5f, 1.5f, 1401), frand(3, -1, 1, 1402)};
    size_t n = (size_t)b.rows * b.c;
    float *r = frand(n, -1, 1, 1403), *y = fz(n), *dx = fz(n), *dg = fz(3), *db = fz(3);
    float m[3], s[3], rm[3] = {0}, rv[3] = {0};
    ref->ops->bn_forward_train(ref, (int)b.rows, 1, b.c, b.x, b.gamma, b.beta, y, m, s, rm, rv, 0.1f, 1e-5f);
    ref->ops->bn_backward(ref, (int)b.rows, 1, b.c, b.x, r, b.gamma, m, s, dx, dg, db);
    assert_true(fd_check("bn dx", bn_fd_eval, &b, b.x, n, r, n, dx, 1e-2f) < 0.03);
    assert_true(fd_check("bn dgamma", bn_fd_eval, &b, b.gamma, 3, r, n, dg, 1e-2f) < 0.02);
    assert_true(fd_check("bn dbeta", bn_fd_eval, &b, b.beta, 3, r, n, db, 1e-2f) < 0.02);
    free(b.x), free(b.gamma), free(b.beta), free(r), free(y), free(dx), free(dg), free(db);
}

typedef struct PoolFd {
    Backend *be;
    const PoolDesc *d;
    float *x;
    int hw, c;
} PoolFd;

static void maxpool_fd_eval(void *ctx, float *out) {
    PoolFd *p = ctx;
    size_t ny = (size_t)p->d->n * p->d->oh * p->d->ow * p->d->c;
    int32_t *am = calloc(ny, sizeof *am);
    assert_non_null(am);
    p->be->ops->maxpool_forward(p->be, p->d, p->x, out, am);
    free(am);
}

static void test_fd_maxpool(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    PoolDesc d;
    Error err;
    assert_int_equal(pool_desc_init(&d, 2, 5, 6, 3, 3, 2, 1, &err), 0);
    size_t nx = (size_t)d.n * d.h * d.w * d.c, ny = (size_t)d.n * d.oh * d.ow * d.c;
    /* distinct values 0.1 apart, shuffled: no ties, and a 1e-2 step never changes a window's winner */
    float *x = fz(nx);
    for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 37) % nx) * 0.1f - 5.0f;
    float *r = frand(ny, -1, 1, 1500), *y = fz(ny), *dx = fz(nx);
    int32_t *am = calloc(ny, sizeof *am);
    assert_non_null(am);
    ref->ops->maxpool_forward(ref, &d, x, y, am);
    ref->ops->maxpool_backward(ref, &d, r, am, dx);
    PoolFd p = {ref, &d, x, 0, 0};
    assert_true(fd_check("maxpool dx", maxpool_fd_eval, &p, x, nx, r, ny, dx, 1e-2f) < 0.02);
    free(x), free(r), free(y), free(dx), free(am);
}

static void avgpool_fd_eval(void *ctx, float *out) {
    PoolFd *p = ctx;
    p->be->ops->avgpool_forward(p->be, 2, p->hw, p->c, p->x, out);
}

static void test_fd_avgpool(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    int hw = 7, c = 3;
    size_t nx = (size_t)2 * hw * c, ny = (size_t)2 * c;
    PoolFd p = {ref, NULL, frand(nx, -1, 1, 1600), hw, c};
    float *r = frand(ny, -1, 1, 1601), *dx = fz(nx);
    ref->ops->avgpool_backward(ref, 2, hw, c, r, dx);
    assert_true(fd_check("avgpool dx", avgpool_fd_eval, &p, p.x, nx, r, ny, dx, 1e-2f) < 0.02);
    free(p.x), free(r), free(dx);
}

typedef struct FcFd {
    Backend *be;
    int n, cin, cout;
    float *x, *w, *b;
} FcFd;

static void fc_fd_eval(void *ctx, float *out) {
    FcFd *f = ctx;
    Error err;
    assert_int_equal(f->be->ops->fc_forward(f->be, f->n, f->cin, f->cout, f->x, f->w, f->b, out, &err), 0);
}

static void test_fd_fc(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    FcFd f = {ref, 3, 5, 4, frand(15, -1, 1, 1700), frand(20, -1, 1, 1701), frand(4, -1, 1, 1702)};
    float *r = frand(12, -1, 1, 1703), *dx = fz(15), *dw = fz(20), *db = fz(4);
    Error err;
    assert_int_equal(ref->ops->fc_backward(ref, f.n, f.cin, f.cout, f.x, f.w, r, dx, dw, db, &err), 0);
    assert_true(fd_check("fc dx", fc_fd_eval, &f, f.x, 15, r, 12, dx, 1e-2f) < 0.02);
    assert_true(fd_check("fc dw", fc_fd_eval, &f, f.w, 20, r, 12, dw, 1e-2f) < 0.02);
    assert_true(fd_check("fc db", fc_fd_eval, &f, f.b, 4, r, 12, db, 1e-2f) < 0.02);
    free(f.x), free(f.w), free(f.b), free(r), free(dx), free(dw), free(db);
}

typedef struct LossFd {
    Backend *be;
    LossKind kind;
    int n, c;
    float *z, *t;
} LossFd;

/* The per-sample losses; with r = grad_scale everywhere, sum r * loss is the scaled total loss. */
static void loss_fd_eval(void *ctx, float *out) {
    LossFd *l = ctx;
    l->be->ops->loss_forward_backward(l->be, l->kind, l->n, l->c, l->z, l->t, 1.0f, out, NULL);
}

static void test_fd_losses(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    for (int kind = 0; kind < 2; kind++)
        for (int norm = 0; norm < 2; norm++) {
            LossFd l = {ref, (LossKind)kind, 3, 6, frand(18, -3, 3, 1800 + norm),
                        soft_targets(3, 6, norm, 1810 + norm)};
            float scale = 0.25f, r[3] = {scale, scale, scale}, loss[3], *dz = fz(18);
            ref->ops->loss_forward_backward(ref, l.kind, l.n, l.c, l.z, l.t, scale, loss, dz);
            assert_true(fd_check(kind ? "bce dlogits" : "soft ce dlogits", loss_fd_eval, &l, l.z, 18, r, 3, dz, 1e-2f) <
                        0.02);
            free(l.z), free(l.t), free(dz);
        }
}

/* ---------------------------------------------------------------- determinism */

static void test_cpu_deterministic(void **state) {
    Backend *cpu = ((Backends *)*state)->cpu;
    ConvDesc d;
    Error err = {{0}};
    assert_int_equal(conv_desc_init(&d, 4, 14, 14, 32, 48, 3, 1, 1, &err), 0);
    size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
    size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
    float *x = frand(nx, -1, 1, 1900), *dy = frand(ny, -1, 1, 1901), *dw0 = fz(nw), *dw1 = fz(nw);
    void *plan;
    assert_int_equal(cpu->ops->conv_plan(cpu, &d, &plan, &err), 0);
    assert_int_equal(cpu->ops->conv_backward_weights(cpu, plan, x, dy, dw0, &err), 0);
    assert_int_equal(cpu->ops->conv_backward_weights(cpu, plan, x, dy, dw1, &err), 0);
    assert_same_floats("conv backward weights, twice", dw1, dw0, nw);
    cpu->ops->conv_plan_free(cpu, plan);

    int64_t rows = 20011;
    int c = 40;
    size_t n = (size_t)rows * c;
    float *bx = frand(n, -1, 3, 1902), *g = frand(c, 0.5f, 1.5f, 1903), *be_ = frand(c, -1, 1, 1904);
    float *y[2], *m[2], *s[2], *rm[2], *rv[2];
    for (int k = 0; k < 2; k++) {
        y[k] = fz(n), m[k] = fz(c), s[k] = fz(c), rm[k] = fz(c), rv[k] = fz(c);
        cpu->ops->bn_forward_train(cpu, (int)rows, 1, c, bx, g, be_, y[k], m[k], s[k], rm[k], rv[k], 0.1f, 1e-5f);
    }
    assert_same_floats("bn forward y, twice", y[1], y[0], n);
    assert_same_floats("bn forward mean, twice", m[1], m[0], c);
    assert_same_floats("bn forward invstd, twice", s[1], s[0], c);
    assert_same_floats("bn forward running_var, twice", rv[1], rv[0], c);
    free(x), free(dy), free(dw0), free(dw1), free(bx), free(g), free(be_);
    for (int k = 0; k < 2; k++) free(y[k]), free(m[k]), free(s[k]), free(rm[k]), free(rv[k]);
}

/* Other thread counts (one, and more than the cores) give the same results as the reference, and the
 * convolutions leave the caller's OpenMP thread count as it was. */
static void test_cpu_thread_counts(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    const int counts[] = {1, 3};
    const ConvCase cc = {3, 9, 11, 17, 6, 3, 2, 1};
    ConvDesc d;
    conv_desc_of(&cc, &d);
    size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
    size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
    float *x = frand(nx, -1, 1, 2000), *w = frand(nw, -0.5f, 0.5f, 2001), *y0 = fz(ny), *y1 = fz(ny);
    int64_t rows = 1001;
    int c = 17;
    size_t n = (size_t)rows * c;
    float *bx = frand(n, -1, 1, 2002), *g = frand(c, 0.5f, 1.5f, 2003), *bb = frand(c, -1, 1, 2004);
    float *by0 = fz(n), *by1 = fz(n), *m = fz(c), *s = fz(c), *rm = fz(c), *rv = fz(c);
    Error err = {{0}};
    void *rplan;
    assert_int_equal(ref->ops->conv_plan(ref, &d, &rplan, &err), 0);
    assert_int_equal(ref->ops->conv_forward(ref, rplan, x, w, y0, &err), 0);
    ref->ops->bn_forward_train(ref, (int)rows, 1, c, bx, g, bb, by0, m, s, rm, rv, 0.1f, 1e-5f);
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        Backend *cpu;
        assert_int_equal(backend_create("cpu", counts[i], &cpu, &err), 0);
        assert_int_equal(cpu->threads, counts[i]);
        int before = omp_get_max_threads();
        void *plan;
        assert_int_equal(cpu->ops->conv_plan(cpu, &d, &plan, &err), 0);
        assert_int_equal(cpu->ops->conv_forward(cpu, plan, x, w, y1, &err), 0);
        assert_int_equal(omp_get_max_threads(), before);
        assert_close("conv forward, other thread count", y1, y0, ny, 1e-5, 1e-4);
        cpu->ops->bn_forward_train(cpu, (int)rows, 1, c, bx, g, bb, by1, m, s, rm, rv, 0.1f, 1e-5f);
        assert_close("bn forward, other thread count", by1, by0, n, 1e-5, 1e-4);
        cpu->ops->conv_plan_free(cpu, plan);
        backend_destroy(cpu);
    }
    ref->ops->conv_plan_free(ref, rplan);
    free(x), free(w), free(y0), free(y1), free(bx), free(g), free(bb), free(by0), free(by1);
    free(m), free(s), free(rm), free(rv);
}

/* ---------------------------------------------------------------- model surgery ops */

typedef struct BlurCase {
    int n, h, w, c, stride;
} BlurCase;

static const BlurCase BLUR_CASES[] = {
    {2, 7, 5, 3, 1}, {2, 7, 5, 17, 2}, {1, 1, 1, 5, 2}, {3, 9, 11, 64, 2}, {1, 2, 3, 33, 1},
    {2, 8, 8, 16, 3}, {1, 12, 10, 130, 2}, {2, 2, 2, 1, 2},
};
#define N_BLUR (sizeof BLUR_CASES / sizeof *BLUR_CASES)

static void blur_desc_of(const BlurCase *bc, PoolDesc *d) {
    Error err;
    assert_int_equal(pool_desc_init(d, bc->n, bc->h, bc->w, bc->c, 3, bc->stride, 1, &err), 0);
}

/* The blur on odd shapes and strides, cpu against ref; the cpu result does not depend on the thread count. */
static void test_blur_matches_ref(void **state) {
    Backends *b = *state;
    Backend *cpu3;
    Error err = {{0}};
    assert_int_equal(backend_create("cpu", 3, &cpu3, &err), 0);
    cpu3->act_block = 0; /* compared with b->cpu's NHWC results */
    for (size_t i = 0; i < N_BLUR; i++) {
        PoolDesc d;
        blur_desc_of(&BLUR_CASES[i], &d);
        assert_int_equal(d.oh, (d.h - 1) / d.stride + 1);
        size_t nx = (size_t)d.n * d.h * d.w * d.c, ny = (size_t)d.n * d.oh * d.ow * d.c;
        float *x = frand(nx, -1, 1, 2100 + i), *dy = frand(ny, -1, 1, 2200 + i);
        float *y0 = fz(ny), *y1 = frand(ny, 5, 6, 1), *y3 = fz(ny);
        float *dx0 = fz(nx), *dx1 = frand(nx, 5, 6, 2), *dx3 = fz(nx); /* garbage: outputs are overwritten */
        b->ref->ops->blur_forward(b->ref, &d, x, y0);
        b->cpu->ops->blur_forward(b->cpu, &d, x, y1);
        cpu3->ops->blur_forward(cpu3, &d, x, y3);
        assert_close("blur forward", y1, y0, ny, 1e-6, 1e-6);
        assert_same_floats("blur forward, 3 threads", y3, y1, ny);
        b->ref->ops->blur_backward(b->ref, &d, dy, dx0);
        b->cpu->ops->blur_backward(b->cpu, &d, dy, dx1);
        cpu3->ops->blur_backward(cpu3, &d, dy, dx3);
        assert_close("blur backward", dx1, dx0, nx, 1e-6, 1e-6);
        assert_same_floats("blur backward, 3 threads", dx3, dx1, nx);
        free(x), free(dy), free(y0), free(y1), free(y3), free(dx0), free(dx1), free(dx3);
    }
    /* a constant image stays constant inside (the filter sums to 1) and loses weight at zero-padded borders */
    PoolDesc d;
    BlurCase bc = {1, 5, 5, 2, 1};
    blur_desc_of(&bc, &d);
    float *x = fz(50), *y = fz(50);
    for (int k = 0; k < 50; k++) x[k] = 1.0f;
    b->cpu->ops->blur_forward(b->cpu, &d, x, y);
    assert_true(y[(2 * 5 + 2) * 2] == 1.0f && y[0] == 0.5625f && y[2 * 2] == 0.75f);
    free(x), free(y);
    backend_destroy(cpu3);
}

static void test_sigmoid_matches_ref(void **state) {
    Backends *b = *state;
    const int64_t sizes[] = {1, 7, 1003, 40009};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        int64_t n = sizes[s];
        float *x = frand((size_t)n, -12, 12, 2300 + s), *dy = frand((size_t)n, -1, 1, 2310 + s);
        x[0] = 0.0f;
        if (n > 3) x[1] = 100.0f, x[2] = -100.0f, x[3] = -0.0f;
        float *y0 = fz((size_t)n), *y1 = fz((size_t)n), *dx0 = fz((size_t)n), *dx1 = fz((size_t)n);
        b->ref->ops->sigmoid_forward(b->ref, n, x, y0);
        b->cpu->ops->sigmoid_forward(b->cpu, n, x, y1);
        assert_close("sigmoid forward", y1, y0, (size_t)n, 1e-7, 1e-6);
        assert_true(y0[0] == 0.5f);
        b->ref->ops->sigmoid_backward(b->ref, n, y0, dy, dx0);
        b->cpu->ops->sigmoid_backward(b->cpu, n, y0, dy, dx1);
        assert_close("sigmoid backward", dx1, dx0, (size_t)n, 1e-7, 1e-6);
        free(x), free(dy), free(y0), free(y1), free(dx0), free(dx1);
    }
}

typedef struct ScaleCase {
    int n, hw, c;
} ScaleCase;

static const ScaleCase SCALE_CASES[] = {{1, 1, 1}, {3, 7, 5}, {2, 49, 130}, {5, 13, 64}, {2, 3136, 17}};

static void test_channel_scale_matches_ref(void **state) {
    Backends *b = *state;
    for (size_t i = 0; i < sizeof SCALE_CASES / sizeof *SCALE_CASES; i++) {
        const ScaleCase *sc = &SCALE_CASES[i];
        size_t nx = (size_t)sc->n * sc->hw * sc->c, ns = (size_t)sc->n * sc->c;
        float *x = frand(nx, -2, 2, 2400 + i), *s = frand(ns, 0, 1, 2410 + i), *dy = frand(nx, -1, 1, 2420 + i);
        float *y0 = fz(nx), *y1 = fz(nx), *dx0 = fz(nx), *dx1 = frand(nx, 5, 6, 3), *ds0 = fz(ns), *ds1 = fz(ns);
        b->ref->ops->channel_scale_forward(b->ref, sc->n, sc->hw, sc->c, x, s, y0);
        b->cpu->ops->channel_scale_forward(b->cpu, sc->n, sc->hw, sc->c, x, s, y1);
        assert_same_floats("channel scale forward", y1, y0, nx);
        b->ref->ops->channel_scale_backward(b->ref, sc->n, sc->hw, sc->c, x, s, dy, dx0, ds0);
        b->cpu->ops->channel_scale_backward(b->cpu, sc->n, sc->hw, sc->c, x, s, dy, dx1, ds1);
        assert_same_floats("channel scale backward dx", dx1, dx0, nx);
        assert_close("channel scale backward ds", ds1, ds0, ns, 1e-6 * sqrt((double)sc->hw), 1e-6);
        /* each output alone, as the model calls it */
        float *dx2 = fz(nx), *ds2 = fz(ns);
        b->cpu->ops->channel_scale_backward(b->cpu, sc->n, sc->hw, sc->c, x, s, dy, dx2, NULL);
        b->cpu->ops->channel_scale_backward(b->cpu, sc->n, sc->hw, sc->c, x, s, dy, NULL, ds2);
        assert_same_floats("channel scale dx alone", dx2, dx1, nx);
        assert_same_floats("channel scale ds alone", ds2, ds1, ns);
        free(x), free(s), free(dy), free(y0), free(y1), free(dx0), free(dx1), free(ds0), free(ds1), free(dx2), free(ds2);
    }
}

static void test_sample_scale_exact(void **state) {
    Backends *b = *state;
    const int ns[] = {1, 3, 8};
    const int64_t inners[] = {1, 17, 4096 * 3 + 5};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            int n = ns[i];
            int64_t inner = inners[j];
            size_t total = (size_t)n * (size_t)inner;
            float *x = frand(total, -3, 3, 2500 + i * 3 + j), *s = frand((size_t)n, 0, 1, 2510 + i);
            s[0] = 0.0f;
            float *y0 = fz(total), *y1 = fz(total);
            b->ref->ops->sample_scale(b->ref, n, inner, s, x, y0);
            b->cpu->ops->sample_scale(b->cpu, n, inner, s, x, y1);
            assert_same_floats("sample scale", y1, y0, total);
            for (int64_t k = 0; k < inner; k++) assert_true(y1[k] == 0.0f);
            b->cpu->ops->sample_scale(b->cpu, n, inner, s, x, x); /* in place */
            assert_same_floats("sample scale in place", x, y0, total);
            free(x), free(s), free(y0), free(y1);
        }
}

typedef struct SurgFd {
    Backend *be;
    const PoolDesc *d;
    int n, hw, c;
    float *x, *s;
} SurgFd;

static void blur_fd_eval(void *ctx, float *out) {
    SurgFd *f = ctx;
    f->be->ops->blur_forward(f->be, f->d, f->x, out);
}

static void sigmoid_fd_eval(void *ctx, float *out) {
    SurgFd *f = ctx;
    f->be->ops->sigmoid_forward(f->be, f->n, f->x, out);
}

static void channel_scale_fd_eval(void *ctx, float *out) {
    SurgFd *f = ctx;
    f->be->ops->channel_scale_forward(f->be, f->n, f->hw, f->c, f->x, f->s, out);
}

static void sample_scale_fd_eval(void *ctx, float *out) {
    SurgFd *f = ctx;
    f->be->ops->sample_scale(f->be, f->n, (int64_t)f->hw * f->c, f->s, f->x, out);
}

static void test_fd_surgery_ops(void **state) {
    Backend *ref = ((Backends *)*state)->ref;
    const BlurCase cases[] = {{2, 5, 6, 3, 2}, {1, 4, 3, 2, 1}, {1, 7, 7, 2, 3}};
    for (size_t i = 0; i < 3; i++) {
        PoolDesc d;
        blur_desc_of(&cases[i], &d);
        size_t nx = (size_t)d.n * d.h * d.w * d.c, ny = (size_t)d.n * d.oh * d.ow * d.c;
        SurgFd f = {ref, &d, 0, 0, 0, frand(nx, -1, 1, 2600 + i), NULL};
        float *r = frand(ny, -1, 1, 2610 + i), *dx = fz(nx);
        ref->ops->blur_backward(ref, &d, r, dx);
        assert_true(fd_check("blur dx", blur_fd_eval, &f, f.x, nx, r, ny, dx, 1e-2f) < 0.02);
        free(f.x), free(r), free(dx);
    }
    {
        SurgFd f = {ref, NULL, 9, 0, 0, frand(9, -4, 4, 2620), NULL};
        float *r = frand(9, -1, 1, 2621), *y = fz(9), *dx = fz(9);
        ref->ops->sigmoid_forward(ref, 9, f.x, y);
        ref->ops->sigmoid_backward(ref, 9, y, r, dx);
        assert_true(fd_check("sigmoid dx", sigmoid_fd_eval, &f, f.x, 9, r, 9, dx, 1e-2f) < 0.02);
        free(f.x), free(r), free(y), free(dx);
    }
    {
        int n = 2, hw = 5, c = 3;
        size_t nx = (size_t)n * hw * c, ns = (size_t)n * c;
        SurgFd f = {ref, NULL, n, hw, c, frand(nx, -1, 1, 2630), frand(ns, 0, 1, 2631)};
        float *r = frand(nx, -1, 1, 2632), *dx = fz(nx), *ds = fz(ns);
        ref->ops->channel_scale_backward(ref, n, hw, c, f.x, f.s, r, dx, ds);
        assert_true(fd_check("channel scale dx", channel_scale_fd_eval, &f, f.x, nx, r, nx, dx, 1e-2f) < 0.02);
        assert_true(fd_check("channel scale ds", channel_scale_fd_eval, &f, f.s, ns, r, nx, ds, 1e-2f) < 0.02);
        /* the stochastic-depth backward is the same per-sample scale */
        float keep[2] = {1.0f, 0.0f};
        free(f.s);
        f.s = keep;
        float *dxs = fz(nx);
        ref->ops->sample_scale(ref, n, (int64_t)hw * c, keep, r, dxs);
        assert_true(fd_check("sample scale dx", sample_scale_fd_eval, &f, f.x, nx, r, nx, dxs, 1e-2f) < 0.02);
        free(f.x), free(r), free(dx), free(ds), free(dxs);
    }
}

/* ---------------------------------------------------------------- blocked layout */

typedef struct LayoutCase {
    int n, h, w, c;
} LayoutCase;

/* Channel counts that are multiples of 8 and 16, of 8 only, of neither (NHWC in both backends), more than one
 * batch-norm chunk (512), and 1x1 images (the same bytes in both layouts). */
static const LayoutCase LAYOUT_CASES[] = {
    {2, 5, 7, 16}, {3, 4, 4, 8}, {1, 9, 3, 48}, {2, 3, 3, 12}, {5, 1, 1, 32}, {2, 2, 3, 1040}, {2, 15, 15, 64},
};

/* got [n, hw, c] from the blocked backend, unpacked, is bit-identical to want (NHWC). */
static void same_unpacked(const char *name, const Backend *blk, int n, int64_t hw, int c, const float *got,
                          const float *want) {
    float *u = unpacked(blk, n, hw, c, got);
    assert_true(same_bits(name, u, want, (size_t)n * hw * c, sizeof(float)));
    free(u);
}

/* Batch norm (plain, fused with ReLU and with add + ReLU, training and eval, forward and backward), max pool,
 * global average pool, blur and channel scale on the blocked backend give the NHWC backend's results bit for bit. */
static void test_blocked_ops_match_nhwc(void **state) {
    Backends *b = *state;
    Backend *cpu = b->cpu, *blk = b->blk;
    assert_true(blk->act_block == 8 || blk->act_block == 16);
    for (size_t i = 0; i < sizeof LAYOUT_CASES / sizeof *LAYOUT_CASES; i++) {
        const LayoutCase *lc = &LAYOUT_CASES[i];
        int n = lc->n, c = lc->c;
        int64_t hw = (int64_t)lc->h * lc->w;
        size_t nx = (size_t)n * hw * c, nc = (size_t)c;
        uint64_t seed = 3000 + 100 * i;
        float *x = frand(nx, -1, 3, seed), *dy = frand(nx, -1, 1, seed + 1), *g = frand(nc, 0.5f, 1.5f, seed + 2);
        float *beta = frand(nc, -1, 1, seed + 3), *bx = packed(blk, n, hw, c, x), *bdy = packed(blk, n, hw, c, dy);
        float *y0 = fz(nx), *y1 = fz(nx), *dx0 = fz(nx), *dx1 = fz(nx);
        float *st0[4], *st1[4]; /* mean, invstd, running mean, running var */
        for (int k = 0; k < 4; k++) st0[k] = frand(nc, 0.5f, 1, seed + 4), st1[k] = fdup(st0[k], nc);
        float *dg0 = fz(nc), *dg1 = fz(nc), *db0 = fz(nc), *db1 = fz(nc);

        float *skip = frand(nx, -2, 1, seed + 5), *bskip = packed(blk, n, hw, c, skip);
        for (int relu = 0; relu < 3; relu++) { /* plain, with ReLU, with add and ReLU */
            const BackendOps *o = cpu->ops;
            if (relu) {
                o->bn_relu_forward_train(cpu, n, hw, c, F32, x, relu == 2 ? skip : NULL, g, beta, y0, st0[0],
                                         st0[1], st0[2], st0[3], 0.1f, 1e-5f);
                o->bn_relu_forward_train(blk, n, hw, c, F32, bx, relu == 2 ? bskip : NULL, g, beta, y1, st1[0],
                                         st1[1], st1[2], st1[3], 0.1f, 1e-5f);
            } else {
                o->bn_forward_train(cpu, n, hw, c, x, g, beta, y0, st0[0], st0[1], st0[2], st0[3], 0.1f, 1e-5f);
                o->bn_forward_train(blk, n, hw, c, bx, g, beta, y1, st1[0], st1[1], st1[2], st1[3], 0.1f, 1e-5f);
            }
            same_unpacked(relu ? "blocked bn+relu y" : "blocked bn y", blk, n, hw, c, y1, y0);
            for (int k = 0; k < 4; k++) assert_true(same_bits("blocked bn statistics", st1[k], st0[k], nc, 4));
            if (relu) {
                o->bn_relu_backward(cpu, n, hw, c, F32, x, y0, dy, g, st0[0], st0[1], dx0, dg0, db0);
                o->bn_relu_backward(blk, n, hw, c, F32, bx, y1, bdy, g, st1[0], st1[1], dx1, dg1, db1);
            } else {
                o->bn_backward(cpu, n, hw, c, x, dy, g, st0[0], st0[1], dx0, dg0, db0);
                o->bn_backward(blk, n, hw, c, bx, bdy, g, st1[0], st1[1], dx1, dg1, db1);
            }
            same_unpacked("blocked bn dx", blk, n, hw, c, dx1, dx0);
            assert_true(same_bits("blocked bn dgamma", dg1, dg0, nc, 4));
            assert_true(same_bits("blocked bn dbeta", db1, db0, nc, 4));
        }
        free(skip), free(bskip);
        cpu->ops->bn_forward_eval(cpu, n, hw, c, x, g, beta, st0[2], st0[3], 1e-5f, y0);
        blk->ops->bn_forward_eval(blk, n, hw, c, bx, g, beta, st1[2], st1[3], 1e-5f, y1);
        same_unpacked("blocked bn eval y", blk, n, hw, c, y1, y0);

        /* global average pool: y [n, c] is the same in both layouts */
        float *a0 = fz((size_t)n * c), *a1 = fz((size_t)n * c);
        cpu->ops->avgpool_forward(cpu, n, (int)hw, c, x, a0);
        blk->ops->avgpool_forward(blk, n, (int)hw, c, bx, a1);
        assert_true(same_bits("blocked avgpool y", a1, a0, (size_t)n * c, 4));
        cpu->ops->avgpool_backward(cpu, n, (int)hw, c, a0, dx0);
        blk->ops->avgpool_backward(blk, n, (int)hw, c, a0, dx1);
        same_unpacked("blocked avgpool dx", blk, n, hw, c, dx1, dx0);

        /* channel scale by s [n, c] */
        cpu->ops->channel_scale_forward(cpu, n, (int)hw, c, x, a0, y0);
        blk->ops->channel_scale_forward(blk, n, (int)hw, c, bx, a0, y1);
        same_unpacked("blocked channel scale y", blk, n, hw, c, y1, y0);
        cpu->ops->channel_scale_backward(cpu, n, (int)hw, c, x, a0, dy, dx0, a1);
        float *ds = fz((size_t)n * c);
        blk->ops->channel_scale_backward(blk, n, (int)hw, c, bx, a0, bdy, dx1, ds);
        same_unpacked("blocked channel scale dx", blk, n, hw, c, dx1, dx0);
        assert_true(same_bits("blocked channel scale ds", ds, a1, (size_t)n * c, 4));

        /* max pool 3x3/2 pad 1 and the stride-2 blur, forward and backward */
        PoolDesc d;
        Error err;
        assert_int_equal(pool_desc_init(&d, n, lc->h, lc->w, c, 3, 2, 1, &err), 0);
        int64_t ohw = (int64_t)d.oh * d.ow;
        size_t ny = (size_t)n * ohw * c;
        float *p0 = fz(ny), *p1 = fz(ny), *pg = frand(ny, -1, 1, seed + 5), *bpg = packed(blk, n, ohw, c, pg);
        int32_t *am0 = calloc(ny, sizeof *am0), *am1 = calloc(ny, sizeof *am1);
        cpu->ops->maxpool_forward(cpu, &d, x, p0, am0);
        blk->ops->maxpool_forward(blk, &d, bx, p1, am1);
        same_unpacked("blocked maxpool y", blk, n, ohw, c, p1, p0);
        cpu->ops->maxpool_backward(cpu, &d, pg, am0, dx0);
        blk->ops->maxpool_backward(blk, &d, bpg, am1, dx1);
        same_unpacked("blocked maxpool dx", blk, n, hw, c, dx1, dx0);
        cpu->ops->blur_forward(cpu, &d, x, p0);
        blk->ops->blur_forward(blk, &d, bx, p1);
        same_unpacked("blocked blur y", blk, n, ohw, c, p1, p0);
        cpu->ops->blur_backward(cpu, &d, pg, dx0);
        blk->ops->blur_backward(blk, &d, bpg, dx1);
        same_unpacked("blocked blur dx", blk, n, hw, c, dx1, dx0);

        float *all[] = {x, dy, g, beta, bx, bdy, y0, y1, dx0, dx1, dg0, dg1, db0, db1, a0, a1, ds, p0, p1, pg, bpg};
        for (size_t j = 0; j < sizeof all / sizeof *all; j++) free(all[j]);
        for (int k = 0; k < 4; k++) free(st0[k]), free(st1[k]);
        free(am0), free(am1);
    }
}

/* Batch norm on the blocked backend against the reference on images of several pixels: the cpu backend walks
 * each image's pixels in turn, and a run of BN_RUN summed rows can start in one image and end in the next
 * ({3, 4, 4, 8}: the second thread's rows start halfway through an image). */
static void test_blocked_bn_matches_ref(void **state) {
    Backends *b = *state;
    for (size_t i = 0; i < sizeof LAYOUT_CASES / sizeof *LAYOUT_CASES; i++) {
        const LayoutCase *lc = &LAYOUT_CASES[i];
        int n = lc->n, c = lc->c;
        int64_t hw = (int64_t)lc->h * lc->w, rows = n * hw;
        size_t nx = (size_t)rows * c, nc = (size_t)c;
        uint64_t seed = 5000 + 100 * i;
        float *x = frand(nx, -1, 3, seed), *dy = frand(nx, -1, 1, seed + 1), *g = frand(nc, 0.5f, 1.5f, seed + 2);
        float *beta = frand(nc, -1, 1, seed + 3), *bx = packed(b->blk, n, hw, c, x);
        float *bdy = packed(b->blk, n, hw, c, dy), *y0 = fz(nx), *y1 = fz(nx), *dx0 = fz(nx), *dx1 = fz(nx);
        float *st0[4], *st1[4]; /* mean, invstd, running mean, running var */
        for (int k = 0; k < 4; k++) st0[k] = frand(nc, 0.5f, 1, seed + 4), st1[k] = fdup(st0[k], nc);
        float *dg0 = fz(nc), *dg1 = fz(nc), *db0 = fz(nc), *db1 = fz(nc);
        b->ref->ops->bn_forward_train(b->ref, n, hw, c, x, g, beta, y0, st0[0], st0[1], st0[2], st0[3], 0.1f, 1e-5f);
        b->blk->ops->bn_forward_train(b->blk, n, hw, c, bx, g, beta, y1, st1[0], st1[1], st1[2], st1[3], 0.1f, 1e-5f);
        float *u = unpacked(b->blk, n, hw, c, y1);
        assert_close("blocked bn train y", u, y0, nx, 1e-5, 1e-4);
        free(u);
        for (int k = 0; k < 4; k++) assert_close("blocked bn statistics", st1[k], st0[k], nc, 1e-6, 2e-5);
        b->ref->ops->bn_backward(b->ref, n, hw, c, x, dy, g, st0[0], st0[1], dx0, dg0, db0);
        b->blk->ops->bn_backward(b->blk, n, hw, c, bx, bdy, g, st1[0], st1[1], dx1, dg1, db1);
        u = unpacked(b->blk, n, hw, c, dx1);
        assert_close("blocked bn backward dx", u, dx0, nx, 1e-5, 1e-4);
        free(u);
        double scale = sqrt((double)rows);
        assert_close("blocked bn dgamma", dg1, dg0, nc, 1e-6 * scale, 1e-5);
        assert_close("blocked bn dbeta", db1, db0, nc, 1e-6 * scale, 1e-5);
        float *all[] = {x, dy, g, beta, bx, bdy, y0, y1, dx0, dx1, dg0, dg1, db0, db1};
        for (size_t j = 0; j < sizeof all / sizeof *all; j++) free(all[j]);
        for (int k = 0; k < 4; k++) free(st0[k]), free(st1[k]);
    }
}

/* act_layout_pack puts channel ch of pixel p of image i at [i, ch / B, p, ch % B], and unpack inverts it. */
static void test_act_layout_pack(void **state) {
    Backend *blk = ((Backends *)*state)->blk;
    int B = blk->act_block, n = 2, c = 2 * B;
    int64_t hw = 3;
    size_t nx = (size_t)n * hw * c;
    float *x = fz(nx);
    for (size_t k = 0; k < nx; k++) x[k] = (float)k; /* x[i, p, ch] = (i * hw + p) * c + ch */
    float *p = packed(blk, n, hw, c, x), *u = unpacked(blk, n, hw, c, p);
    assert_true(p[1] == 1.0f);                                 /* [0, 0, 0, 1] = x[0, 0, 1] */
    assert_true(p[B] == (float)c);                             /* [0, 0, 1, 0] = x[0, 1, 0] */
    assert_true(p[hw * B] == (float)B);                        /* [0, 1, 0, 0] = x[0, 0, B] */
    assert_true(p[hw * c + 2 * B + 3] == (float)((hw + 2) * c + 3)); /* [1, 0, 2, 3] = x[1, 2, 3] */
    assert_true(same_bits("pack then unpack", u, x, nx, 4));
    float *q = packed(((Backends *)*state)->cpu, n, hw, c, x); /* NHWC backend: a copy */
    assert_true(same_bits("NHWC pack", q, x, nx, 4));
    free(x), free(p), free(u), free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_conv_matches_ref),
        cmocka_unit_test(test_winograd_matches_ref),
        cmocka_unit_test(test_winograd_dw_threads),
        cmocka_unit_test(test_conv_bf16_matches_ref),
        cmocka_unit_test(test_conv_bf16_storage),
        cmocka_unit_test(test_winograd_bf16_matches_ref),
        cmocka_unit_test(test_conv_impl_choice),
        cmocka_unit_test(test_conv_first_layer),
        cmocka_unit_test(test_conv_plan_error),
        cmocka_unit_test(test_bn_train_matches_ref),
        cmocka_unit_test(test_bn_eval_matches_ref),
        cmocka_unit_test(test_bn_backward_matches_ref),
        cmocka_unit_test(test_bn_relu_fused_exact),
        cmocka_unit_test(test_bn_bf16_storage),
        cmocka_unit_test(test_bn_isa_tables_same),
        cmocka_unit_test(test_elementwise_exact),
        cmocka_unit_test(test_maxpool_matches_ref),
        cmocka_unit_test(test_avgpool_matches_ref),
        cmocka_unit_test(test_fc_matches_ref),
        cmocka_unit_test(test_losses_match_ref),
        cmocka_unit_test(test_sgd_step_exact),
        cmocka_unit_test(test_fd_conv),
        cmocka_unit_test(test_fd_bn),
        cmocka_unit_test(test_fd_maxpool),
        cmocka_unit_test(test_fd_avgpool),
        cmocka_unit_test(test_fd_fc),
        cmocka_unit_test(test_fd_losses),
        cmocka_unit_test(test_cpu_deterministic),
        cmocka_unit_test(test_cpu_thread_counts),
        cmocka_unit_test(test_blur_matches_ref),
        cmocka_unit_test(test_sigmoid_matches_ref),
        cmocka_unit_test(test_channel_scale_matches_ref),
        cmocka_unit_test(test_sample_scale_exact),
        cmocka_unit_test(test_fd_surgery_ops),
        cmocka_unit_test(test_blocked_ops_match_nhwc),
        cmocka_unit_test(test_blocked_bn_matches_ref),
        cmocka_unit_test(test_act_layout_pack),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
