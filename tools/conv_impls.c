/* conv_impls.c — times every implementation oneDNN offers for one convolution shape (built as build/conv-impls),
 * and ctrain's Winograd convolutions where they apply, to see which kernel a shape should take
 * (docs/performance.md, "Convolution kernels layer by layer" and "Winograd convolutions").
 *
 *   OMP_NUM_THREADS=2 conv-impls N H CIN COUT K STRIDE PAD [PASS [ROUNDS [both] [bf16]]]
 *
 * Square NHWC fp32 input [N, H, H, CIN], weights [COUT, CIN, K, K] in the layout each implementation asks for.
 * PASS 0 forward, 1 backward data, 2 backward weights; all three without it (or with -1). For each pass it
 * makes oneDNN's implementations (the reference and SSE4.1 kernels left out), runs each once to warm up and
 * then ROUNDS rounds (default 7) of one call of each in turn, so that a slow spell of a shared machine falls on
 * all of them alike. It prints them in oneDNN's order (the first is its default): the median and the fastest
 * milliseconds per call, GFLOP/s at the median, and the median of each round's time over the first's time in
 * the same round. With "both", every implementation is also made for the activation layout oneDNN prefers
 * (dnnl_format_tag_any: nChw8c on AVX2, nChw16c on AVX-512) besides ctrain's NHWC, all timed in the same rounds,
 * the names marked /nhwc or /blocked. For a 3x3, stride-1, pad-1 shape with multiples of 16 channels the rows
 * winograd_f2x2_3x3 and winograd_f4x4_3x3 (src/backend/cpu/winograd.c, on nChw8c activations, weights
 * transformed in every call as in training) are timed in the same rounds, whatever ctrain's rule would pick
 * (cpu_conv.c, wino_tile). With "bf16", the types of ctrain's bf16 plans with bf16 storage instead: bf16
 * activations, gradients and weights, fp32 weight gradients; the Winograd row is then winograd_bf16.c's F(2x2)
 * (on nChw16c, where the CPU has AVX512_BF16). Inputs are zeros: the kernels' time does not depend on the
 * values. */
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "backend/cpu/cpu_conv.h"
#include "backend/cpu/winograd.h"
#include "backend/cpu/winograd_bf16.h"
#include "train/report.h"

#define MAX_IMPLS 16
#define MAX_ROUNDS 64

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Exits with the failed call's name: this is a tool's main path, nothing to hand back. */
static void check(dnnl_status_t st, const char *call) {
    if (st == dnnl_success) return;
    fprintf(stderr, "conv-impls: %s failed (%s)\n", call, dnnl_status2str(st));
    exit(1);
}

/* One implementation of a pass, ready to run: its primitive and its arguments on zeroed buffers, or (prim NULL)
 * winograd.c's with m x m tiles (or, bf16, winograd_bf16.c's) on zeroed buffers a, b (the pass's activations in
 * wino_*'s order) and w. */
typedef struct Impl {
    char name[64];
    dnnl_primitive_t prim;
    dnnl_exec_arg_t args[4];
    int nargs;
    int wino_m, pass;
    bool bf16;
    ConvDesc d;
    float *a, *b, *w;
    void *work;
    double t[MAX_ROUNDS]; /* seconds per round */
} Impl;

/* winograd.c's convolution with m x m tiles for pass of d, on nChw8c activations; with bf16, winograd_bf16.c's
 * (m 2) on bf16 nChw16c activations. */
static void wino_make(Impl *im, const ConvDesc *d, int m, int pass, bool bf16) {
    memset(im, 0, sizeof *im);
    if (bf16) snprintf(im->name, sizeof im->name, "winograd_f2x2_3x3_bf16:avx512/nChw16c");
    else snprintf(im->name, sizeof im->name, "winograd_f%dx%d_3x3:avx2/nChw8c", m, m);
    im->wino_m = m;
    im->pass = pass;
    im->bf16 = bf16;
    im->d = *d;
    if (bf16) im->d.t = (ActTypes){ACT_BF16, ACT_BF16, ACT_BF16, ACT_BF16, ACT_BF16};
    size_t nx = (size_t)d->n * d->h * d->w * d->cin, ny = (size_t)d->n * d->oh * d->ow * d->cout;
    size_t work = bf16 ? wino16_work_bytes(d, pass == 2, omp_get_max_threads())
                       : wino_work_bytes(d, m, omp_get_max_threads());
    size_t bytes = (work + 63) / 64 * 64;
    im->a = calloc(pass == 1 ? ny : nx, sizeof(float));
    im->b = calloc(pass == 1 ? nx : ny, sizeof(float));
    im->w = calloc((size_t)d->cout * d->cin * 9, sizeof(float));
    im->work = aligned_alloc(64, bytes);
    if (!im->a || !im->b || !im->w || !im->work) {
        fprintf(stderr, "conv-impls: out of memory\n");
        exit(1);
    }
    memset(im->work, 0, bytes);
}

/* Makes the primitive of cand and zeroed buffers for its memories. */
static void impl_make(Impl *im, dnnl_primitive_desc_t cand, int pass, dnnl_engine_t eng) {
    static const dnnl_query_t queries[3][4] = {
        {dnnl_query_src_md, dnnl_query_dst_md, dnnl_query_weights_md, dnnl_query_scratchpad_md},
        {dnnl_query_diff_src_md, dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_scratchpad_md},
        {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md, dnnl_query_scratchpad_md}};
    static const int args[3][4] = {{DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_SCRATCHPAD},
                                   {DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_SCRATCHPAD},
                                   {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_SCRATCHPAD}};
    check(dnnl_primitive_create(&im->prim, cand), "dnnl_primitive_create");
    im->nargs = 0;
    for (int i = 0; i < 4; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(cand, queries[pass][i], 0);
        if (!md || dnnl_memory_desc_get_size(md) == 0) continue;
        dnnl_memory_t m;
        check(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE), "dnnl_memory_create");
        void *h;
        check(dnnl_memory_get_data_handle(m, &h), "dnnl_memory_get_data_handle");
        memset(h, 0, dnnl_memory_desc_get_size(md));
        im->args[im->nargs++] = (dnnl_exec_arg_t){args[pass][i], m};
    }
}

/* Seconds one call of im takes. */
static double impl_run(const Impl *im, dnnl_stream_t st) {
    double t0 = seconds_now();
    if (im->wino_m) {
        const ConvDesc *d = &im->d;
        int m = im->wino_m, th = omp_get_max_threads();
        if (im->bf16 && im->pass == 0) wino16_forward(d, 16, 16, im->a, im->w, im->b, im->work, th);
        else if (im->bf16 && im->pass == 1) wino16_backward_data(d, 16, 16, im->a, im->w, im->b, im->work, th);
        else if (im->bf16) wino16_backward_weights(d, 16, 16, im->a, im->b, im->w, im->work, th);
        else if (im->pass == 0) wino_forward(d, m, 8, 8, im->a, im->w, im->b, im->work, th);
        else if (im->pass == 1) wino_backward_data(d, m, 8, 8, im->a, im->w, im->b, im->work, th);
        else wino_backward_weights(d, m, 8, 8, im->a, im->b, im->w, im->work, th);
        return seconds_now() - t0;
    }
    check(dnnl_primitive_execute(im->prim, st, im->nargs, im->args), "dnnl_primitive_execute");
    check(dnnl_stream_wait(st), "dnnl_stream_wait");
    return seconds_now() - t0;
}

static void impl_free(Impl *im) {
    for (int i = 0; i < im->nargs; i++) dnnl_memory_destroy(im->args[i].memory);
    if (im->prim) dnnl_primitive_destroy(im->prim);
    free(im->a), free(im->b), free(im->w), free(im->work);
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: conv-impls N H CIN COUT K STRIDE PAD [PASS 0|1|2|-1 [ROUNDS [both] [bf16]]]\n");
        return 2;
    }
    int v[7];
    for (int i = 0; i < 7; i++) v[i] = atoi(argv[i + 1]);
    int n = v[0], h = v[1], cin = v[2], cout = v[3], k = v[4], stride = v[5], pad = v[6];
    int oh = (h + 2 * pad - k) / stride + 1;
    if (n < 1 || h < 1 || cin < 1 || cout < 1 || k < 1 || stride < 1 || pad < 0 || oh < 1) {
        fprintf(stderr, "conv-impls: not a convolution: N %d H %d CIN %d COUT %d K %d STRIDE %d PAD %d\n", n, h, cin,
                cout, k, stride, pad);
        return 2;
    }
    int first = argc > 8 ? atoi(argv[8]) : -1, last = first, rounds = argc > 9 ? atoi(argv[9]) : 7;
    if (first < 0) first = 0, last = 2;
    int layouts = 1, words = 0;
    bool bf16 = false;
    for (int i = 10; i < argc; i++) {
        if (strcmp(argv[i], "both") == 0) layouts = 2, words++;
        else if (strcmp(argv[i], "bf16") == 0) bf16 = true, words++;
    }
    if (first > 2 || rounds < 1 || rounds > MAX_ROUNDS || words != (argc > 10 ? argc - 10 : 0)) {
        fprintf(stderr, "conv-impls: PASS is 0, 1, 2 or -1 (all), ROUNDS 1 to %d, then the words \"both\" and "
                "\"bf16\" only\n", MAX_ROUNDS);
        return 2;
    }
    dnnl_data_type_t low = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    check(dnnl_engine_create(&eng, dnnl_cpu, 0), "dnnl_engine_create");
    check(dnnl_stream_create(&st, eng, dnnl_stream_default_flags), "dnnl_stream_create");
    dnnl_dims_t sd = {n, cin, h, h}, dd = {n, cout, oh, oh}, wd = {cout, cin, k, k};
    dnnl_dims_t strides = {stride, stride}, pads = {pad, pad};
    dnnl_convolution_desc_t ops[2][3]; /* [layout: NHWC, oneDNN's choice][pass] */
    dnnl_primitive_desc_t hint[2];
    for (int lay = 0; lay < layouts; lay++) {
        dnnl_format_tag_t act = lay ? dnnl_format_tag_any : dnnl_nhwc;
        dnnl_memory_desc_t src, dst, wei, dwei;
        check(dnnl_memory_desc_init_by_tag(&src, 4, sd, low, act), "dnnl_memory_desc_init_by_tag");
        check(dnnl_memory_desc_init_by_tag(&dst, 4, dd, low, act), "dnnl_memory_desc_init_by_tag");
        check(dnnl_memory_desc_init_by_tag(&wei, 4, wd, low, dnnl_format_tag_any), "dnnl_memory_desc_init_by_tag");
        check(dnnl_memory_desc_init_by_tag(&dwei, 4, wd, dnnl_f32, dnnl_format_tag_any),
              "dnnl_memory_desc_init_by_tag");
        check(dnnl_convolution_forward_desc_init(&ops[lay][0], dnnl_forward_training, dnnl_convolution_direct, &src,
                                                 &wei, NULL, &dst, strides, pads, pads),
              "dnnl_convolution_forward_desc_init");
        check(dnnl_convolution_backward_data_desc_init(&ops[lay][1], dnnl_convolution_direct, &src, &wei, &dst,
                                                       strides, pads, pads),
              "dnnl_convolution_backward_data_desc_init");
        check(dnnl_convolution_backward_weights_desc_init(&ops[lay][2], dnnl_convolution_direct, &src, &dwei, NULL,
                                                          &dst, strides, pads, pads),
              "dnnl_convolution_backward_weights_desc_init");
        check(dnnl_primitive_desc_create(&hint[lay], &ops[lay][0], NULL, eng, NULL), "dnnl_primitive_desc_create");
    }
    double flop = 2.0 * n * cin * cout * oh * oh * k * k;
    static const char *names[3] = {"forward", "backward data", "backward weights"};
    for (int pass = first; pass <= last; pass++) {
        Impl impls[MAX_IMPLS];
        memset(impls, 0, sizeof impls);
        int count = 0;
        for (int lay = 0; lay < layouts; lay++) {
            dnnl_primitive_desc_iterator_t it;
            check(dnnl_primitive_desc_iterator_create(&it, &ops[lay][pass], NULL, eng, pass ? hint[lay] : NULL),
                  "dnnl_primitive_desc_iterator_create");
            do {
                dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
                if (!cand) continue;
                const char *impl = "";
                dnnl_primitive_desc_query(cand, dnnl_query_impl_info_str, 0, &impl);
                if (count < MAX_IMPLS && strstr(impl, "ref") == NULL && strstr(impl, "sse41") == NULL) {
                    const char *mark = layouts == 1 ? "" : lay ? "/blocked" : "/nhwc";
                    snprintf(impls[count].name, sizeof impls[count].name, "%s%s", impl, mark);
                    impl_make(&impls[count], cand, pass, eng);
                    impl_run(&impls[count++], st);
                }
                dnnl_primitive_desc_destroy(cand);
            } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
            dnnl_primitive_desc_iterator_destroy(it);
        }
        ConvDesc d = {n, h, h, cin, cout, k, stride, pad, oh, oh, {0}, false};
        for (int m = 2; m <= 4; m += 2)
            if (!bf16 && count < MAX_IMPLS && wino_supported(&d, m, 8, 8)) {
                wino_make(&impls[count], &d, m, pass, false);
                impl_run(&impls[count++], st);
            }
        if (bf16 && count < MAX_IMPLS && cpu_conv_bf16_native() && wino16_supported(&d, 16, 16)) {
            wino_make(&impls[count], &d, 2, pass, true);
            impl_run(&impls[count++], st);
        }
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < count; i++) impls[i].t[r] = impl_run(&impls[i], st);
        for (int i = 0; i < count; i++) {
            double ratio[MAX_ROUNDS], sorted[MAX_ROUNDS];
            for (int r = 0; r < rounds; r++) ratio[r] = impls[i].t[r] / impls[0].t[r];
            memcpy(sorted, impls[i].t, sizeof sorted);
            double med = report_median(sorted, rounds);
            printf("%-17s %-30s %9.2f ms (fastest %8.2f) %7.1f GFLOP/s  x%.2f of the first\n", names[pass],
                   impls[i].name, 1e3 * med, 1e3 * sorted[0], flop / med * 1e-9, report_median(ratio, rounds));
        }
        for (int i = 0; i < count; i++) impl_free(&impls[i]);
    }
    for (int lay = 0; lay < layouts; lay++) dnnl_primitive_desc_destroy(hint[lay]);
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return 0;
}
