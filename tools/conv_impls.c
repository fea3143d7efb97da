/* conv_impls.c — times every implementation oneDNN offers for one convolution shape (built as build/conv-impls),
 * to see which kernel a shape should take (docs/performance.md, "Convolution kernels layer by layer").
 *
 *   OMP_NUM_THREADS=2 conv-impls N H CIN COUT K STRIDE PAD [PASS]
 *
 * Square NHWC fp32 input [N, H, H, CIN], weights [COUT, CIN, K, K] in the layout each implementation asks for.
 * PASS 0 forward, 1 backward data, 2 backward weights; all three without it. For each pass it lists oneDNN's
 * implementations in oneDNN's order (the first is its default; the reference kernels are left out), each run
 * once to warm up and then three times: milliseconds per call and GFLOP/s. Inputs are zeros: the kernels' time
 * does not depend on the values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#define REPS 3

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

/* Runs the primitive of cand with zeroed buffers for its memories and returns seconds per call. */
static double time_impl(dnnl_primitive_desc_t cand, int pass, dnnl_engine_t eng, dnnl_stream_t st) {
    static const dnnl_query_t queries[3][4] = {
        {dnnl_query_src_md, dnnl_query_dst_md, dnnl_query_weights_md, dnnl_query_scratchpad_md},
        {dnnl_query_diff_src_md, dnnl_query_diff_dst_md, dnnl_query_weights_md, dnnl_query_scratchpad_md},
        {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_weights_md, dnnl_query_scratchpad_md}};
    static const int args[3][4] = {{DNNL_ARG_SRC, DNNL_ARG_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_SCRATCHPAD},
                                   {DNNL_ARG_DIFF_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_SCRATCHPAD},
                                   {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_SCRATCHPAD}};
    dnnl_primitive_t prim;
    check(dnnl_primitive_create(&prim, cand), "dnnl_primitive_create");
    dnnl_exec_arg_t ea[4];
    int n = 0;
    for (int i = 0; i < 4; i++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(cand, queries[pass][i], 0);
        if (!md || dnnl_memory_desc_get_size(md) == 0) continue;
        dnnl_memory_t m;
        check(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE), "dnnl_memory_create");
        void *h;
        check(dnnl_memory_get_data_handle(m, &h), "dnnl_memory_get_data_handle");
        memset(h, 0, dnnl_memory_desc_get_size(md));
        ea[n++] = (dnnl_exec_arg_t){args[pass][i], m};
    }
    check(dnnl_primitive_execute(prim, st, n, ea), "dnnl_primitive_execute");
    check(dnnl_stream_wait(st), "dnnl_stream_wait");
    double t0 = seconds_now();
    for (int r = 0; r < REPS; r++) check(dnnl_primitive_execute(prim, st, n, ea), "dnnl_primitive_execute");
    check(dnnl_stream_wait(st), "dnnl_stream_wait");
    double t = (seconds_now() - t0) / REPS;
    for (int i = 0; i < n; i++) dnnl_memory_destroy(ea[i].memory);
    dnnl_primitive_destroy(prim);
    return t;
}

int main(int argc, char **argv) {
    if (argc < 8) {
        fprintf(stderr, "usage: conv-impls N H CIN COUT K STRIDE PAD [PASS 0|1|2]\n");
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
    int first = argc > 8 ? atoi(argv[8]) : 0, last = argc > 8 ? first : 2;
    dnnl_engine_t eng;
    dnnl_stream_t st;
    check(dnnl_engine_create(&eng, dnnl_cpu, 0), "dnnl_engine_create");
    check(dnnl_stream_create(&st, eng, dnnl_stream_default_flags), "dnnl_stream_create");
    dnnl_dims_t sd = {n, cin, h, h}, dd = {n, cout, oh, oh}, wd = {cout, cin, k, k};
    dnnl_dims_t strides = {stride, stride}, pads = {pad, pad};
    dnnl_memory_desc_t src, dst, wei;
    check(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, dnnl_nhwc), "dnnl_memory_desc_init_by_tag");
    check(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, dnnl_nhwc), "dnnl_memory_desc_init_by_tag");
    check(dnnl_memory_desc_init_by_tag(&wei, 4, wd, dnnl_f32, dnnl_format_tag_any), "dnnl_memory_desc_init_by_tag");
    dnnl_convolution_desc_t ops[3];
    check(dnnl_convolution_forward_desc_init(&ops[0], dnnl_forward_training, dnnl_convolution_direct, &src, &wei,
                                             NULL, &dst, strides, pads, pads),
          "dnnl_convolution_forward_desc_init");
    check(dnnl_convolution_backward_data_desc_init(&ops[1], dnnl_convolution_direct, &src, &wei, &dst, strides,
                                                   pads, pads),
          "dnnl_convolution_backward_data_desc_init");
    check(dnnl_convolution_backward_weights_desc_init(&ops[2], dnnl_convolution_direct, &src, &wei, NULL, &dst,
                                                      strides, pads, pads),
          "dnnl_convolution_backward_weights_desc_init");
    dnnl_primitive_desc_t hint;
    check(dnnl_primitive_desc_create(&hint, &ops[0], NULL, eng, NULL), "dnnl_primitive_desc_create");
    double flop = 2.0 * n * cin * cout * oh * oh * k * k;
    static const char *names[3] = {"forward", "backward data", "backward weights"};
    for (int pass = first; pass <= last && pass <= 2; pass++) {
        dnnl_primitive_desc_iterator_t it;
        check(dnnl_primitive_desc_iterator_create(&it, &ops[pass], NULL, eng, pass ? hint : NULL),
              "dnnl_primitive_desc_iterator_create");
        do {
            dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
            if (!cand) continue;
            const char *impl = "";
            dnnl_primitive_desc_query(cand, dnnl_query_impl_info_str, 0, &impl);
            if (strstr(impl, "ref") == NULL) {
                double t = time_impl(cand, pass, eng, st);
                printf("%-17s %-22s %9.2f ms %7.1f GFLOP/s\n", names[pass], impl, 1e3 * t, flop / t * 1e-9);
            }
            dnnl_primitive_desc_destroy(cand);
        } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
        dnnl_primitive_desc_iterator_destroy(it);
    }
    dnnl_primitive_desc_destroy(hint);
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return 0;
}
