/* test_cuda_ops.c — every operation of the cuda backend against the ref backend (the oracle the cpu backend is
 * tested against too): host inputs go through the ref op and, uploaded, through the cuda op, and the downloaded
 * results are compared. fp32: the same tolerances as the cpu backend, and exact bits where the reference
 * promises them (relu, add, axpy, scale, pools' argmax and backward, per-sample scale, sgd_step). bf16
 * (Backend.bf16: convolutions and the FC round their inputs to bf16 and accumulate in fp32): within
 * 1e-2 relative + 4e-3 * sqrt(terms) absolute of the fp32 reference. Also: memory semantics, repeatability
 * (same bits twice), and a clear error for a bad convolution. Without a GPU it prints "skipped: no GPU". */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "testutil.h"

typedef struct Backends {
    Backend *ref, *gpu;
} Backends;

static int group_setup(void **state) {
    Backends *b = calloc(1, sizeof *b);
    Error err = {{0}};
    if (!b || backend_create("ref", 1, &b->ref, &err) || backend_create("cuda", 2, &b->gpu, &err)) {
        fprintf(stderr, "backend_create: %s\n", err.msg);
        return -1;
    }
    *state = b;
    return 0;
}

static int group_teardown(void **state) {
    Backends *b = *state;
    backend_destroy(b->ref);
    backend_destroy(b->gpu);
    free(b);
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static float *hz(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}
static float *hrand(size_t n, float lo, float hi, uint64_t seed) {
    float *p = hz(n);
    tu_fill_uniform(p, n, lo, hi, seed);
    return p;
}
static float *hdup(const float *x, size_t n) {
    float *p = hz(n);
    memcpy(p, x, n * sizeof *p);
    return p;
}
/* A device copy of host x [n] (bytes = n * elem). */
static void *dev(Backend *g, const void *x, size_t bytes) {
    void *d = g->ops->alloc(g, bytes ? bytes : 4);
    assert_non_null(d);
    if (x && bytes) g->ops->upload(g, d, x, bytes);
    return d;
}
#define DEVF(g, x, n) ((float *)dev((g), (x), (n) * sizeof(float)))
/* Host copy of device d [n floats], after checking the backend reported no error. */
static float *back(Backend *g, const void *d, size_t n) {
    float *h = hz(n);
    g->ops->download(g, h, d, n * sizeof *h);
    Error err = {{0}};
    int rc = g->ops->sync(g, &err); /* one call: sync hands a kept error over once, then clears it */
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    return h;
}
static bool same_floats(const char *name, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a) != 0) {
            fprintf(stderr, "%s: element %zu of %zu differs: %.9g vs %.9g\n", name, i, n, (double)a[i], (double)b[i]);
            return false;
        }
    return true;
}

/* ---------------------------------------------------------------- memory */

static void test_memory(void **state) {
    Backend *g = ((Backends *)*state)->gpu;
    size_t n = 100003;
    float *zd = dev(g, NULL, n * 4), *z = back(g, zd, n);
    for (size_t i = 0; i < n; i++) assert_true(z[i] == 0.0f); /* alloc is zero-filled */
    float *x = hrand(n, -1, 1, 1);
    float *a = DEVF(g, x, n), *b = DEVF(g, NULL, n);
    g->ops->copy(g, b, a, n * 4);
    float *r = back(g, b, n);
    assert_true(same_floats("upload/copy/download", r, x, n));
    g->ops->zero(g, b, 40);
    float *r2 = back(g, b, n);
    for (int i = 0; i < 10; i++) assert_true(r2[i] == 0.0f);
    assert_true(r2[10] == x[10]);
    /* several large uploads in a row through the pinned staging slots keep their own data */
    float *y = hrand(n, 5, 6, 2), *c = DEVF(g, NULL, n);
    g->ops->upload(g, a, y, n * 4);
    g->ops->upload(g, c, x, n * 4);
    g->ops->upload(g, b, y, n * 4);
    free(r);
    r = back(g, c, n);
    assert_true(same_floats("staged upload", r, x, n));
    char about[256] = "";
    assert_non_null(g->ops->describe);
    g->ops->describe(g, about, sizeof about);
    assert_true(strlen(about) > 0);
    assert_true(g->ops->peak_bytes(g) >= 3 * n * sizeof(float));
    g->ops->free(g, a), g->ops->free(g, b), g->ops->free(g, c), g->ops->free(g, zd);
    free(z), free(x), free(r), free(r2), free(y);
}

/* ---------------------------------------------------------------- convolution */

typedef struct ConvCase {
    int n, h, w, cin, cout, k, stride, pad;
} ConvCase;

static const ConvCase CONV_CASES[] = {
    {2, 9, 7, 3, 5, 3, 1, 1},  {3, 12, 12, 8, 16, 3, 2, 1}, {2, 15, 15, 3, 8, 7, 2, 3}, {4, 6, 6, 16, 8, 1, 1, 0},
    {2, 8, 8, 32, 64, 1, 2, 0}, {1, 5, 9, 4, 4, 3, 1, 0},  {8, 14, 14, 64, 64, 3, 1, 1},
};
#define N_CONV (sizeof CONV_CASES / sizeof *CONV_CASES)

static void run_conv_case(Backends *b, const ConvCase *cc, size_t i, bool bf16) {
    Error err = {{0}};
    ConvDesc d;
    assert_int_equal(conv_desc_init(&d, cc->n, cc->h, cc->w, cc->cin, cc->cout, cc->k, cc->stride, cc->pad, &err), 0);
    size_t nx = (size_t)d.n * d.h * d.w * d.cin, ny = (size_t)d.n * d.oh * d.ow * d.cout;
    size_t nw = (size_t)d.cout * d.cin * d.k * d.k;
    float *x = hrand(nx, -1, 1, 100 + i), *w = hrand(nw, -0.5f, 0.5f, 200 + i), *dy = hrand(ny, -1, 1, 300 + i);
    float *y0 = hz(ny), *dx0 = hz(nx), *dw0 = hz(nw);
    void *rp, *gp;
    assert_int_equal(b->ref->ops->conv_plan(b->ref, &d, &rp, &err), 0);
    assert_int_equal(b->ref->ops->conv_forward(b->ref, rp, x, w, y0, &err), 0);
    assert_int_equal(b->ref->ops->conv_backward_data(b->ref, rp, dy, w, dx0, &err), 0);
    assert_int_equal(b->ref->ops->conv_backward_weights(b->ref, rp, x, dy, dw0, &err), 0);
    b->gpu->bf16 = bf16;
    if (b->gpu->ops->conv_plan(b->gpu, &d, &gp, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(gp);
    float *dx_ = DEVF(b->gpu, x, nx), *dw_ = DEVF(b->gpu, w, nw), *ddy = DEVF(b->gpu, dy, ny);
    float *dy_out = DEVF(b->gpu, NULL, ny), *ddx = DEVF(b->gpu, NULL, nx), *ddw = DEVF(b->gpu, NULL, nw);
    assert_int_equal(b->gpu->ops->conv_forward(b->gpu, gp, dx_, dw_, dy_out, &err), 0);
    assert_int_equal(b->gpu->ops->conv_backward_data(b->gpu, gp, ddy, dw_, ddx, &err), 0);
    assert_int_equal(b->gpu->ops->conv_backward_weights(b->gpu, gp, dx_, ddy, ddw, &err), 0);
    float *y1 = back(b->gpu, dy_out, ny), *dx1 = back(b->gpu, ddx, nx), *dw1 = back(b->gpu, ddw, nw);
    double terms = (double)d.k * d.k * (d.cin + d.cout) + (double)d.n * d.oh * d.ow;
    double atol = bf16 ? 4e-3 * sqrt(terms) : 5e-7 * sqrt(terms), rtol = bf16 ? 1e-2 : 1e-4;
    char name[96];
    snprintf(name, sizeof name, "conv case %zu %s forward", i, bf16 ? "bf16" : "fp32");
    assert_close(name, y1, y0, ny, atol, rtol);
    snprintf(name, sizeof name, "conv case %zu %s backward data", i, bf16 ? "bf16" : "fp32");
    assert_close(name, dx1, dx0, nx, atol, rtol);
    snprintf(name, sizeof name, "conv case %zu %s backward weights", i, bf16 ? "bf16" : "fp32");
    assert_close(name, dw1, dw0, nw, atol, rtol);
    b->gpu->ops->conv_plan_free(b->gpu, gp);
    b->ref->ops->conv_plan_free(b->ref, rp);
    b->gpu->ops->free(b->gpu, dx_), b->gpu->ops->free(b->gpu, dw_), b->gpu->ops->free(b->gpu, ddy);
    b->gpu->ops->free(b->gpu, dy_out), b->gpu->ops->free(b->gpu, ddx), b->gpu->ops->free(b->gpu, ddw);
    free(x), free(w), free(dy), free(y0), free(dx0), free(dw0), free(y1), free(dx1), free(dw1);
    b->gpu->bf16 = false;
}

static void test_conv_fp32(void **state) {
    for (size_t i = 0; i < N_CONV; i++) run_conv_case(*state, &CONV_CASES[i], i, false);
}
static void test_conv_bf16(void **state) {
    for (size_t i = 0; i < N_CONV; i++) run_conv_case(*state, &CONV_CASES[i], i, true);
}

static void test_conv_plan_error(void **state) {
    Backend *g = ((Backends *)*state)->gpu;
    ConvDesc d;
    Error err = {{0}};
    assert_int_equal(conv_desc_init(&d, 2, 9, 9, 3, 4, 3, 1, 1, &err), 0);
    d.oh = 5; /* inconsistent with the input size: must be refused with the shapes named */
    void *plan = &d;
    assert_int_equal(g->ops->conv_plan(g, &d, &plan, &err), -1);
    assert_null(plan);
    assert_non_null(strstr(err.msg, "cuDNN"));
    assert_non_null(strstr(err.msg, "x[2,9,9,3]"));
}

/* ---------------------------------------------------------------- batch norm */

typedef struct BnCase {
    int64_t rows;
    int c;
    float lo, hi;
} BnCase;
static const BnCase BN_CASES[] = {
    {105, 5, -1, 1}, {1001, 17, 2, 4}, {37, 600, -3, 5}, {2, 3, 0, 1}, {1, 4, -1, 1}, {4099, 64, 100, 101},
    {200000, 8, -2, 2},
};
#define N_BN (sizeof BN_CASES / sizeof *BN_CASES)

static void test_bn(void **state) {
    Backends *b = *state;
    Backend *g = b->gpu;
    for (size_t i = 0; i < N_BN; i++) {
        const BnCase *bc = &BN_CASES[i];
        size_t n = (size_t)bc->rows * bc->c, c = (size_t)bc->c;
        float *x = hrand(n, bc->lo, bc->hi, 10 + i), *ga = hrand(c, 0.5f, 1.5f, 20 + i), *be = hrand(c, -1, 1, 30 + i);
        float *rm = hrand(c, -1, 1, 40 + i), *rv = hrand(c, 0.5f, 2, 50 + i), *dy = hrand(n, -1, 1, 60 + i);
        float *rm0 = hdup(rm, c), *rv0 = hdup(rv, c), *y0 = hz(n), *m0 = hz(c), *s0 = hz(c);
        float *dx0 = hz(n), *dg0 = hz(c), *db0 = hz(c), *e0 = hz(n);
        b->ref->ops->bn_forward_train(b->ref, (int)bc->rows, 1, bc->c, x, ga, be, y0, m0, s0, rm0, rv0, 0.1f, 1e-5f);
        b->ref->ops->bn_backward(b->ref, (int)bc->rows, 1, bc->c, x, dy, ga, m0, s0, dx0, dg0, db0);
        b->ref->ops->bn_forward_eval(b->ref, (int)bc->rows, 1, bc->c, x, ga, be, rm, rv, 1e-5f, e0);

        float *gx = DEVF(g, x, n), *gg = DEVF(g, ga, c), *gb = DEVF(g, be, c), *grm = DEVF(g, rm, c);
        float *grv = DEVF(g, rv, c), *gdy = DEVF(g, dy, n), *gy = DEVF(g, NULL, n), *gm = DEVF(g, NULL, c);
        float *gs = DEVF(g, NULL, c), *gdx = DEVF(g, NULL, n), *gdg = DEVF(g, NULL, c), *gdb = DEVF(g, NULL, c);
        float *grm_e = DEVF(g, rm, c), *grv_e = DEVF(g, rv, c), *ge = DEVF(g, NULL, n);
        g->ops->bn_forward_train(g, (int)bc->rows, 1, bc->c, gx, gg, gb, gy, gm, gs, grm, grv, 0.1f, 1e-5f);
        g->ops->bn_backward(g, (int)bc->rows, 1, bc->c, gx, gdy, gg, gm, gs, gdx, gdg, gdb);
        g->ops->bn_forward_eval(g, (int)bc->rows, 1, bc->c, gx, gg, gb, grm_e, grv_e, 1e-5f, ge);
        float *y1 = back(g, gy, n), *m1 = back(g, gm, c), *s1 = back(g, gs, c), *rm1 = back(g, grm, c);
        float *rv1 = back(g, grv, c), *dx1 = back(g, gdx, n), *dg1 = back(g, gdg, c), *db1 = back(g, gdb, c);
        float *e1 = back(g, ge, n);
        double rtol = bc->rows == 1 ? 1e-4 : 2e-5;
        assert_close("bn train y", y1, y0, n, 1e-5, 1e-4);
        assert_close("bn save_mean", m1, m0, c, 1e-6, 1e-6);
        assert_close("bn save_invstd", s1, s0, c, 1e-6, rtol);
        assert_close("bn running_mean", rm1, rm0, c, 1e-6, 1e-6);
        assert_close("bn running_var", rv1, rv0, c, 1e-6, 2e-5);
        assert_close("bn eval y", e1, e0, n, 1e-5, 1e-4);
        assert_close("bn backward dx", dx1, dx0, n, 1e-5, 1e-4);
        assert_close("bn backward dgamma", dg1, dg0, c, 1e-4 * sqrt((double)bc->rows), 1e-4);
        assert_close("bn backward dbeta", db1, db0, c, 1e-4 * sqrt((double)bc->rows), 1e-4);
        /* the same call again gives the same bits (fixed-order reductions) */
        g->ops->bn_backward(g, (int)bc->rows, 1, bc->c, gx, gdy, gg, gm, gs, gdx, gdg, gdb);
        float *dx2 = back(g, gdx, n), *dg2 = back(g, gdg, c);
        assert_true(same_floats("bn backward repeat dx", dx2, dx1, n));
        assert_true(same_floats("bn backward repeat dgamma", dg2, dg1, c));
        float *devs[] = {gx, gg, gb, grm, grv, gdy, gy, gm, gs, gdx, gdg, gdb, grm_e, grv_e, ge};
        for (size_t k = 0; k < sizeof devs / sizeof *devs; k++) g->ops->free(g, devs[k]);
        float *hosts[] = {x, ga, be, rm, rv, dy, rm0, rv0, y0, m0, s0, dx0, dg0, db0, e0,
                          y1, m1, s1, rm1, rv1, dx1, dg1, db1, e1, dx2, dg2};
        for (size_t k = 0; k < sizeof hosts / sizeof *hosts; k++) free(hosts[k]);
    }
}

/* ---------------------------------------------------------------- elementwise, optimizer, helpers */

static void test_elementwise(void **state) {
    Backends *b = *state;
    Backend *g = b->gpu;
    size_t n = 77777;
    float *x = hrand(n, -2, 2, 1), *y = hrand(n, -2, 2, 2);
    float *gx = DEVF(g, x, n), *gy = DEVF(g, y, n), *go = DEVF(g, NULL, n);
    float *r0 = hz(n), *r1;

    b->ref->ops->relu_forward(b->ref, n, x, r0);
    g->ops->relu_forward(g, n, gx, go);
    r1 = back(g, go, n);
    assert_true(same_floats("relu forward", r1, r0, n));
    free(r1);
    b->ref->ops->relu_backward(b->ref, n, x, y, r0);
    g->ops->relu_backward(g, n, gx, gy, go);
    r1 = back(g, go, n);
    assert_true(same_floats("relu backward", r1, r0, n));
    free(r1);
    b->ref->ops->add(b->ref, n, x, y, r0);
    g->ops->add(g, n, gx, gy, go);
    r1 = back(g, go, n);
    assert_true(same_floats("add", r1, r0, n));
    free(r1);
    memcpy(r0, y, n * 4);
    b->ref->ops->axpy(b->ref, n, 0.37f, x, r0);
    g->ops->axpy(g, n, 0.37f, gx, gy);
    r1 = back(g, gy, n);
    assert_true(same_floats("axpy", r1, r0, n));
    free(r1);
    b->ref->ops->scale(b->ref, n, -1.7f, r0);
    g->ops->scale(g, n, -1.7f, gy);
    r1 = back(g, gy, n);
    assert_true(same_floats("scale", r1, r0, n));
    free(r1);
    b->ref->ops->sigmoid_forward(b->ref, n, x, r0);
    g->ops->sigmoid_forward(g, n, gx, go);
    r1 = back(g, go, n);
    assert_close("sigmoid forward", r1, r0, n, 1e-7, 1e-6);
    free(r1);
    b->ref->ops->sigmoid_backward(b->ref, n, x, y, r0);
    g->ops->upload(g, gy, y, n * 4);
    g->ops->sigmoid_backward(g, n, gx, gy, go);
    r1 = back(g, go, n);
    assert_close("sigmoid backward", r1, r0, n, 1e-7, 1e-6);
    free(r1);
    double s0 = b->ref->ops->sum_squares(b->ref, n, x), s1 = g->ops->sum_squares(g, n, gx);
    assert_true(fabs(s1 - s0) <= 1e-12 * s0);
    assert_true(g->ops->sum_squares(g, n, gx) == s1); /* fixed order: same value twice */
    g->ops->free(g, gx), g->ops->free(g, gy), g->ops->free(g, go);
    free(x), free(y), free(r0);
}

static void test_sgd_step(void **state) {
    Backends *b = *state;
    Backend *g = b->gpu;
    size_t n = 50001;
    const SgdStep steps[] = {
        {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true, .first_step = true},
        {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true},
        {.lr = 2.048, .momentum = 0.875, .weight_decay = 5e-5, .decay_factor = 0.5, .decoupled = true},
        {.lr = 0.3, .momentum = 0.0, .dampening = 0.1},
    };
    float *p = hrand(n, -1, 1, 7), *gr = hrand(n, -1, 1, 8), *buf = hz(n);
    float *gp = DEVF(g, p, n), *gg = DEVF(g, gr, n), *gb = DEVF(g, buf, n);
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        b->ref->ops->sgd_step(b->ref, &steps[i], n, p, gr, buf);
        g->ops->sgd_step(g, &steps[i], n, gp, gg, gb);
        float *p1 = back(g, gp, n), *b1 = back(g, gb, n);
        assert_true(same_floats("sgd p", p1, p, n));
        assert_true(same_floats("sgd buf", b1, buf, n));
        free(p1), free(b1);
    }
    g->ops->free(g, gp), g->ops->free(g, gg), g->ops->free(g, gb);
    free(p), free(gr), free(buf);
}

/* ---------------------------------------------------------------- pooling and surgery ops */

static void test_pools_and_blur(void **state) {
    Backends *b = *state;
    Backend *g = b->gpu;
    const int shapes[][7] = {{2, 11, 9, 5, 3, 2, 1}, {3, 16, 16, 8, 3, 2, 1}, {1, 7, 7, 3, 2, 2, 0}, {2, 6, 5, 4, 3, 1, 1}};
    Error err = {{0}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        PoolDesc d, bd;
        const int *s = shapes[i];
        assert_int_equal(pool_desc_init(&d, s[0], s[1], s[2], s[3], s[4], s[5], s[6], &err), 0);
        size_t nx = (size_t)d.n * d.h * d.w * d.c, ny = (size_t)d.n * d.oh * d.ow * d.c;
        float *x = hrand(nx, -1, 1, 40 + i), *dy = hrand(ny, -1, 1, 50 + i);
        x[0] = x[d.c] = 1.5f; /* a tie in one channel of the first window (pixels (0,0), (0,1)): the first wins */
        float *y0 = hz(ny), *dx0 = hz(nx);
        int32_t *a0 = calloc(ny, sizeof *a0);
        b->ref->ops->maxpool_forward(b->ref, &d, x, y0, a0);
        b->ref->ops->maxpool_backward(b->ref, &d, dy, a0, dx0);
        float *gx = DEVF(g, x, nx), *gdy = DEVF(g, dy, ny), *gy = DEVF(g, NULL, ny), *gdx = DEVF(g, NULL, nx);
        int32_t *ga = dev(g, NULL, ny * sizeof(int32_t));
        g->ops->maxpool_forward(g, &d, gx, gy, ga);
        g->ops->maxpool_backward(g, &d, gdy, ga, gdx);
        float *y1 = back(g, gy, ny), *dx1 = back(g, gdx, nx), *a1 = back(g, ga, ny);
        assert_true(same_floats("maxpool forward", y1, y0, ny));
        assert_memory_equal(a1, a0, ny * sizeof(int32_t));
        assert_true(same_floats("maxpool backward", dx1, dx0, nx));
        free(y1), free(dx1), free(a1);
        /* blur with the pool's stride */
        assert_int_equal(pool_desc_init(&bd, d.n, d.h, d.w, d.c, 3, d.stride, 1, &err), 0);
        size_t nb = (size_t)bd.n * bd.oh * bd.ow * bd.c;
        float *bdy = hrand(nb, -1, 1, 60 + i), *by0 = hz(nb), *bdx0 = hz(nx);
        b->ref->ops->blur_forward(b->ref, &bd, x, by0);
        b->ref->ops->blur_backward(b->ref, &bd, bdy, bdx0);
        float *gbdy = DEVF(g, bdy, nb), *gby = DEVF(g, NULL, nb);
        g->ops->blur_forward(g, &bd, gx, gby);
        g->ops->blur_backward(g, &bd, gbdy, gdx);
        float *by1 = back(g, gby, nb), *bdx1 = back(g, gdx, nx);
        assert_close("blur forward", by1, by0, nb, 1e-7, 1e-6);
        assert_close("blur backward", bdx1, bdx0, nx, 1e-7, 1e-6);
        g->ops->free(g, gx), g->ops->free(g, gdy), g->ops->free(g, gy), g->ops->free(g, gdx), g->ops->free(g, ga);
        g->ops->free(g, gbdy), g->ops->free(g, gby);
        free(x), free(dy), free(y0), free(dx0), free(a0), free(bdy), free(by0), free(bdx0), free(by1), free(bdx1);
    }
    /* global average pool, channel scale (squeeze-excite), per-sample scale (stochastic depth) */
    int n = 3, hw = 49, c = 130;
    size_t nx = (size_t)n * hw * c;
    float *x = hrand(nx, -1, 1, 70), *dy = hrand(nx, -1, 1, 71), *s = hrand((size_t)n * c, 0, 1, 72);
    float *p0 = hz((size_t)n * c), *dp0 = hz(nx), *cs0 = hz(nx), *cdx0 = hz(nx), *cds0 = hz((size_t)n * c);
    float *ss0 = hz(nx);
    b->ref->ops->avgpool_forward(b->ref, n, hw, c, x, p0);
    b->ref->ops->avgpool_backward(b->ref, n, hw, c, s, dp0);
    b->ref->ops->channel_scale_forward(b->ref, n, hw, c, x, s, cs0);
    b->ref->ops->channel_scale_backward(b->ref, n, hw, c, x, s, dy, cdx0, cds0);
    b->ref->ops->sample_scale(b->ref, n, (int64_t)hw * c, s, x, ss0);
    float *gx = DEVF(g, x, nx), *gdy = DEVF(g, dy, nx), *gs = DEVF(g, s, (size_t)n * c);
    float *gp = DEVF(g, NULL, (size_t)n * c), *gdp = DEVF(g, NULL, nx), *gcs = DEVF(g, NULL, nx);
    float *gcdx = DEVF(g, NULL, nx), *gcds = DEVF(g, NULL, (size_t)n * c), *gss = DEVF(g, NULL, nx);
    g->ops->avgpool_forward(g, n, hw, c, gx, gp);
    g->ops->avgpool_backward(g, n, hw, c, gs, gdp);
    g->ops->channel_scale_forward(g, n, hw, c, gx, gs, gcs);
    g->ops->channel_scale_backward(g, n, hw, c, gx, gs, gdy, gcdx, gcds);
    g->ops->sample_scale(g, n, (int64_t)hw * c, gs, gx, gss);
    float *p1 = back(g, gp, (size_t)n * c), *dp1 = back(g, gdp, nx), *cs1 = back(g, gcs, nx);
    float *cdx1 = back(g, gcdx, nx), *cds1 = back(g, gcds, (size_t)n * c), *ss1 = back(g, gss, nx);
    assert_close("avgpool forward", p1, p0, (size_t)n * c, 1e-7, 1e-6);
    assert_true(same_floats("avgpool backward", dp1, dp0, nx));
    assert_true(same_floats("channel scale forward", cs1, cs0, nx));
    assert_true(same_floats("channel scale dx", cdx1, cdx0, nx));
    assert_close("channel scale ds", cds1, cds0, (size_t)n * c, 1e-6, 1e-6);
    assert_true(same_floats("sample scale", ss1, ss0, nx));
    float *devs[] = {gx, gdy, gs, gp, gdp, gcs, gcdx, gcds, gss};
    for (size_t k = 0; k < sizeof devs / sizeof *devs; k++) g->ops->free(g, devs[k]);
    float *hosts[] = {x, dy, s, p0, dp0, cs0, cdx0, cds0, ss0, p1, dp1, cs1, cdx1, cds1, ss1};
    for (size_t k = 0; k < sizeof hosts / sizeof *hosts; k++) free(hosts[k]);
}

/* ---------------------------------------------------------------- fully connected and loss */

static void run_fc(Backends *b, int n, int cin, int cout, bool bf16) {
    Backend *g = b->gpu;
    size_t nx = (size_t)n * cin, nw = (size_t)cout * cin, ny = (size_t)n * cout;
    float *x = hrand(nx, -1, 1, 80), *w = hrand(nw, -0.5f, 0.5f, 81), *bias = hrand(cout, -1, 1, 82);
    float *dy = hrand(ny, -1, 1, 83), *y0 = hz(ny), *dx0 = hz(nx), *dw0 = hz(nw), *db0 = hz(cout);
    Error err;
    assert_int_equal(b->ref->ops->fc_forward(b->ref, n, cin, cout, x, w, bias, y0, &err), 0);
    assert_int_equal(b->ref->ops->fc_backward(b->ref, n, cin, cout, x, w, dy, dx0, dw0, db0, &err), 0);
    g->bf16 = bf16;
    float *gx = DEVF(g, x, nx), *gw = DEVF(g, w, nw), *gb = DEVF(g, bias, cout), *gdy = DEVF(g, dy, ny);
    float *gy = DEVF(g, NULL, ny), *gdx = DEVF(g, NULL, nx), *gdw = DEVF(g, NULL, nw), *gdb = DEVF(g, NULL, cout);
    assert_int_equal(g->ops->fc_forward(g, n, cin, cout, gx, gw, gb, gy, &err), 0);
    assert_int_equal(g->ops->fc_backward(g, n, cin, cout, gx, gw, gdy, gdx, gdw, gdb, &err), 0);
    float *y1 = back(g, gy, ny), *dx1 = back(g, gdx, nx), *dw1 = back(g, gdw, nw), *db1 = back(g, gdb, cout);
    double k = cin > n ? cin : n, atol = bf16 ? 4e-3 * sqrt(k + cout) : 5e-7 * sqrt(k + cout);
    double rtol = bf16 ? 1e-2 : 1e-4;
    assert_close(bf16 ? "fc bf16 forward" : "fc forward", y1, y0, ny, atol, rtol);
    assert_close(bf16 ? "fc bf16 dx" : "fc dx", dx1, dx0, nx, atol, rtol);
    assert_close(bf16 ? "fc bf16 dw" : "fc dw", dw1, dw0, nw, atol, rtol);
    assert_close("fc db", db1, db0, cout, 1e-6, 1e-6);
    g->bf16 = false;
    float *devs[] = {gx, gw, gb, gdy, gy, gdx, gdw, gdb};
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) g->ops->free(g, devs[i]);
    float *hosts[] = {x, w, bias, dy, y0, dx0, dw0, db0, y1, dx1, dw1, db1};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) free(hosts[i]);
}

static void test_fc(void **state) {
    run_fc(*state, 7, 33, 10, false);
    run_fc(*state, 64, 2048, 1000, false);
    run_fc(*state, 7, 33, 10, true);
    run_fc(*state, 64, 2048, 1000, true);
}

static void test_losses(void **state) {
    Backends *b = *state;
    Backend *g = b->gpu;
    int n = 37, c = 1000;
    size_t nz = (size_t)n * c;
    float *z = hrand(nz, -8, 8, 90), *t = hrand(nz, 0, 1, 91);
    for (int kind = 0; kind < 2; kind++) {
        float *l0 = hz(n), *d0 = hz(nz);
        b->ref->ops->loss_forward_backward(b->ref, (LossKind)kind, n, c, z, t, 1.0f / n, l0, d0);
        float *gz = DEVF(g, z, nz), *gt = DEVF(g, t, nz), *gl = DEVF(g, NULL, n), *gd = DEVF(g, NULL, nz);
        g->ops->loss_forward_backward(g, (LossKind)kind, n, c, gz, gt, 1.0f / n, gl, gd);
        float *l1 = back(g, gl, n), *d1 = back(g, gd, nz);
        assert_close(kind ? "bce loss" : "soft ce loss", l1, l0, n, 1e-6, 1e-6);
        assert_close(kind ? "bce dlogits" : "soft ce dlogits", d1, d0, nz, 1e-9, 1e-6);
        g->ops->free(g, gz), g->ops->free(g, gt), g->ops->free(g, gl), g->ops->free(g, gd);
        free(l0), free(d0), free(l1), free(d1);
    }
    free(z), free(t);
}

int main(void) {
    if (tu_device_missing("cuda")) return TU_SKIPPED;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),     cmocka_unit_test(test_conv_fp32),      cmocka_unit_test(test_conv_bf16),
        cmocka_unit_test(test_conv_plan_error), cmocka_unit_test(test_bn),        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_sgd_step),   cmocka_unit_test(test_pools_and_blur), cmocka_unit_test(test_fc),
        cmocka_unit_test(test_losses),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
