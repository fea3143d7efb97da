/* cpu_fc.c — the fully connected layer of the cpu backend: its three products on oneDNN's dnnl_sgemm (row-major
 * fp32 GEMM, the blocked kernels oneDNN's inner-product primitives use), the bias gradient summed here in double.
 *
 * Besides cpu_conv.c, the one file of ctrain that calls oneDNN. sgemm's sums run in float in its own blocked
 * order (the reference backend sums in double); for a given thread count its results are the same from run to
 * run. The parity fixtures are made so that a change of rounding like this one cannot flip a ReLU or max-pool
 * decision (tools/make_fixtures.py, MIN_MARGIN). */
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_fc.h"

/* c [m, n] = a [m, k] b [k, n] + beta c, a and b transposed where ta, tb are 'T' (row-major, leading dimensions
 * lda, ldb, ldc), on threads threads; what names the product in the error. */
static int fc_gemm(int threads, char ta, char tb, int m, int n, int k, const float *a, int lda, const float *b,
                   int ldb, float beta, float *c, int ldc, const char *what, Error *err) {
    int saved = cpu_threads_enter(threads);
    dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    cpu_threads_leave(threads, saved);
    if (st != dnnl_success)
        return error_set(err, "cpu backend: fully connected %s (%d x %d x %d): dnnl_sgemm failed (%s)", what, m, n,
                         k, dnnl_status2str(st));
    return 0;
}

/* y [n, cout] = x [n, cin] w^T + b [cout], computed as yt [cout, n] = w x^T and transposed: sgemm took 0.7 ms
 * for ResNet-50's FC (32 x 2048 -> 1000) that way and 3.3 ms as x w^T (it packs the large w^T). */
int cpu_fc_forward(int threads, int n, int cin, int cout, const float *x, const float *w, const float *b, float *yt,
                   float *y, Error *err) {
    if (fc_gemm(threads, 'N', 'T', cout, n, cin, w, cin, x, cin, 0.0f, yt, n, "forward", err)) return -1;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < cout; o++) y[(size_t)i * cout + o] = yt[(size_t)o * n + i] + (b ? b[o] : 0.0f);
    return 0;
}

/* dx = dy w, dw = dy^T x, db [o] = sum over samples of dy [., o] (in double). */
int cpu_fc_backward(int threads, int n, int cin, int cout, const float *x, const float *w, const float *dy,
                    float *dx, float *dw, float *db, Error *err) {
    if (dx && fc_gemm(threads, 'N', 'N', n, cin, cout, dy, cout, w, cin, 0.0f, dx, cin, "dx", err)) return -1;
    if (fc_gemm(threads, 'T', 'N', cout, cin, n, dy, cout, x, cin, 0.0f, dw, cin, "dw", err)) return -1;
    if (!db) return 0;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int o = 0; o < cout; o++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += dy[(size_t)i * cout + o];
        db[o] = (float)s;
    }
    return 0;
}
