/* cuda_backend.c — the CUDA backend's host side: device memory, transfers through pinned staging buffers,
 * cuDNN convolutions (NHWC activations, KRSC filters, one algorithm per direction chosen once per shape),
 * cuBLAS GEMMs for the FC layer, and the dispatch to ctrain's own kernels (cuda_kernels.cu).
 *
 * Precision: with be->bf16 false everything is fp32 and tensor-core TF32 is disabled (CUDNN_FMA_MATH, cuBLAS's
 * default math), so results follow the reference backend to fp32 rounding. With be->bf16 true (precision amp or
 * bf16) convolutions and the FC read bf16 copies of their inputs and weights and accumulate in fp32, as PyTorch's
 * autocast does; activations, BN statistics, master weights and optimizer state stay fp32.
 *
 * Everything is queued on one stream. The void operations cannot return errors: the first CUDA, cuDNN or cuBLAS
 * failure is kept and reported by the next sync (or by the next operation that returns a status). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.h"

enum { N_SLOTS = 2, MAX_ALLOCS = 4096 };
#define WORKSPACE_LIMIT ((size_t)1 << 30) /* largest cuDNN workspace an algorithm may ask for */
#define PINNED_MIN ((size_t)1 << 16)      /* uploads from this size on go through pinned staging */

typedef struct Scratch {
    void *p;
    size_t cap;
} Scratch;

typedef struct Cuda {
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    char about[512];
    Scratch ws;                   /* cuDNN workspace */
    Scratch sa, sb, sw;           /* conversion scratch: activations in, activations out, KRSC weights */
    Scratch part;                 /* reduction partials (double) */
    double *sum_out;              /* [1] device result of sum_squares */
    void *pinned[N_SLOTS];        /* upload staging, used in turn */
    size_t pinned_cap[N_SLOTS];
    cudaEvent_t pinned_free[N_SLOTS];
    int next_slot;
    struct { void *p; size_t bytes; } allocs[MAX_ALLOCS];
    int n_allocs;
    size_t live, peak;            /* bytes held through alloc / scratch, now and at most */
    char error[200];              /* the first failure, kept until reported */
} Cuda;

static Cuda *cu_of(Backend *be) { return be->impl; }

/* ------------------------------------------------------------------ errors */

static void keep_error(Cuda *c, const char *what, const char *msg) {
    if (!c->error[0]) snprintf(c->error, sizeof c->error, "%s: %s", what, msg);
}
static bool ck(Cuda *c, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return true;
    keep_error(c, what, cudaGetErrorString(e));
    return false;
}
static bool ck_dnn(Cuda *c, cudnnStatus_t s, const char *what) {
    if (s == CUDNN_STATUS_SUCCESS) return true;
    keep_error(c, what, cudnnGetErrorString(s));
    return false;
}
static bool ck_blas(Cuda *c, cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    char msg[32];
    snprintf(msg, sizeof msg, "cuBLAS status %d", (int)s);
    keep_error(c, what, msg);
    return false;
}
/* After a kernel launch: a bad launch configuration shows up here. */
static void ck_launch(Cuda *c, const char *what) { ck(c, cudaGetLastError(), what); }

/* Moves a kept error into err (and clears it): -1, or 0 when nothing failed. */
static int take_error(Cuda *c, Error *err) {
    if (!c->error[0]) return 0;
    error_set(err, "CUDA backend: %s", c->error);
    c->error[0] = 0;
    return -1;
}

/* ------------------------------------------------------------------ memory */

static void track(Cuda *c, void *p, size_t bytes) {
    if (c->n_allocs < MAX_ALLOCS) {
        c->allocs[c->n_allocs].p = p;
        c->allocs[c->n_allocs].bytes = bytes;
        c->n_allocs++;
    }
    c->live += bytes;
    if (c->live > c->peak) c->peak = c->live;
}

static void untrack(Cuda *c, void *p) {
    for (int i = 0; i < c->n_allocs; i++)
        if (c->allocs[i].p == p) {
            c->live -= c->allocs[i].bytes;
            c->allocs[i] = c->allocs[--c->n_allocs];
            return;
        }
}

static void *cu_alloc(Backend *be, size_t bytes) {
    Cuda *c = cu_of(be);
    void *p = NULL;
    size_t sz = bytes ? bytes : 1;
    if (cudaMalloc(&p, sz) != cudaSuccess) {
        cudaGetLastError(); /* clear it: out of memory is reported by returning NULL */
        return NULL;
    }
    if (!ck(c, cudaMemsetAsync(p, 0, sz, c->stream), "cudaMemsetAsync")) {
        cudaFree(p);
        return NULL;
    }
    track(c, p, sz);
    return p;
}

static void cu_free(Backend *be, void *p) {
    if (!p) return;
    Cuda *c = cu_of(be);
    untrack(c, p);
    ck(c, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize (free)"); /* queued work may still use p */
    ck(c, cudaFree(p), "cudaFree");
}

/* Grows a scratch buffer to at least bytes (its contents are not kept). */
static bool grow(Cuda *c, Scratch *s, size_t bytes) {
    if (s->cap >= bytes) return true;
    if (s->p) {
        untrack(c, s->p);
        ck(c, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize (scratch)"); /* queued work may use it */
        ck(c, cudaFree(s->p), "cudaFree");
    }
    s->p = NULL;
    s->cap = 0;
    size_t want = bytes + bytes / 4;
    if (!ck(c, cudaMalloc(&s->p, want), "cudaMalloc (scratch)")) return false;
    s->cap = want;
    track(c, s->p, want);
    return true;
}

static void cu_upload(Backend *be, void *dst, const void *src, size_t bytes) {
    Cuda *c = cu_of(be);
    if (!bytes) return;
    if (bytes < PINNED_MIN) {
        /* pageable source: the call returns once the bytes are staged, so src may be reused at once */
        ck(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "upload");
        return;
    }
    int s = c->next_slot;
    c->next_slot = (s + 1) % N_SLOTS;
    if (!ck(c, cudaEventSynchronize(c->pinned_free[s]), "upload (staging wait)")) return;
    if (c->pinned_cap[s] < bytes) {
        if (c->pinned[s]) ck(c, cudaFreeHost(c->pinned[s]), "cudaFreeHost");
        c->pinned[s] = NULL;
        c->pinned_cap[s] = 0;
        if (!ck(c, cudaHostAlloc(&c->pinned[s], bytes, cudaHostAllocDefault), "cudaHostAlloc")) return;
        c->pinned_cap[s] = bytes;
    }
    memcpy(c->pinned[s], src, bytes);
    ck(c, cudaMemcpyAsync(dst, c->pinned[s], bytes, cudaMemcpyHostToDevice, c->stream), "upload");
    ck(c, cudaEventRecord(c->pinned_free[s], c->stream), "cudaEventRecord");
}

static void cu_download(Backend *be, void *dst, const void *src, size_t bytes) {
    Cuda *c = cu_of(be);
    if (!bytes) return;
    if (ck(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "download"))
        ck(c, cudaStreamSynchronize(c->stream), "download (sync)");
    if (c->error[0]) memset(dst, 0, bytes); /* never hand back uninitialized host memory */
}

static void cu_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    Cuda *c = cu_of(be);
    if (bytes) ck(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream), "copy");
}

static void cu_zero(Backend *be, void *p, size_t bytes) {
    Cuda *c = cu_of(be);
    if (bytes) ck(c, cudaMemsetAsync(p, 0, bytes, c->stream), "zero");
}

static int cu_sync(Backend *be, Error *err) {
    Cuda *c = cu_of(be);
    ck(c, cudaStreamSynchronize(c->stream), "cudaStreamSynchronize");
    return take_error(c, err);
}

/* ------------------------------------------------------------------ convolution (cuDNN) */

enum { MAX_CANDIDATES = 8 };

/* The usable algorithms of one direction, best first (cuDNN's heuristic order), and the one in use: a call that
 * cuDNN refuses with NOT_SUPPORTED moves on to the next, as the heuristics' status is only a prediction. */
typedef struct Candidates {
    int algo[MAX_CANDIDATES];
    cudnnMathType_t math[MAX_CANDIDATES];
    size_t ws[MAX_CANDIDATES];
    int n, at;
} Candidates;

typedef enum Direction { DIR_FORWARD, DIR_DATA, DIR_FILTER } Direction;

typedef struct CudaConv {
    ConvDesc d;
    bool bf16;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    Candidates dir[3];            /* [Direction] */
} CudaConv;

static void conv_plan_release(CudaConv *p) {
    if (!p) return;
    if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
    if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
    if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
    if (p->cd) cudnnDestroyConvolutionDescriptor(p->cd);
    free(p);
}

/* Keeps a heuristic result when it ran in the heuristics, fits the workspace limit and is not kept yet, and, at
 * level 0, is deterministic (same bits every run) and in fp32 listed without tensor cores (TF32 would break the
 * fp32 contract). Level 1 also takes fp32 algorithms cuDNN listed with tensor-core math (they still run with
 * FMA math: the NOT_SUPPORTED fallback of run_conv moves on if one refuses); level 2 also nondeterministic ones.
 * In fp32 every candidate runs with CUDNN_FMA_MATH, since CUDNN_DEFAULT_MATH permits TF32 on Ampere and newer. */
static void consider(Candidates *k, int algo, cudnnStatus_t st, cudnnDeterminism_t det, size_t mem,
                     cudnnMathType_t math, bool bf16, int level) {
    if (k->n == MAX_CANDIDATES || st != CUDNN_STATUS_SUCCESS || mem > WORKSPACE_LIMIT) return;
    if (det != CUDNN_DETERMINISTIC && level < 2) return;
    if (!bf16 && math != CUDNN_FMA_MATH && math != CUDNN_DEFAULT_MATH && level < 1) return;
    for (int i = 0; i < k->n; i++)
        if (k->algo[i] == algo && (!bf16 || k->math[i] == math)) return;
    k->algo[k->n] = algo;
    k->math[k->n] = bf16 ? math : CUDNN_FMA_MATH;
    k->ws[k->n] = mem;
    k->n++;
}

static int choose_algorithms(Cuda *c, CudaConv *p, Error *err) {
    int got = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    if (!ck_dnn(c, cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, p->xd, p->wd, p->cd, p->yd,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp),
                "cudnnGetConvolutionForwardAlgorithm_v7"))
        return take_error(c, err);
    int nf = got;
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    if (!ck_dnn(c, cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, p->wd, p->yd, p->cd, p->xd,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, dp),
                "cudnnGetConvolutionBackwardDataAlgorithm_v7"))
        return take_error(c, err);
    int nd = got;
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    if (!ck_dnn(c, cudnnGetConvolutionBackwardFilterAlgorithm_v7(c->dnn, p->xd, p->yd, p->cd, p->wd,
                                                                 CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, wp),
                "cudnnGetConvolutionBackwardFilterAlgorithm_v7"))
        return take_error(c, err);
    int nw = got;
    /* the strictest level that offers an algorithm, per direction (level 2 gives up bit-exact repeatability) */
    for (int level = 0; level < 3; level++) {
        bool f = p->dir[DIR_FORWARD].n == 0, d = p->dir[DIR_DATA].n == 0, w = p->dir[DIR_FILTER].n == 0;
        for (int i = 0; i < nf && f; i++)
            consider(&p->dir[DIR_FORWARD], fp[i].algo, fp[i].status, fp[i].determinism, fp[i].memory,
                     fp[i].mathType, p->bf16, level);
        for (int i = 0; i < nd && d; i++)
            consider(&p->dir[DIR_DATA], dp[i].algo, dp[i].status, dp[i].determinism, dp[i].memory, dp[i].mathType,
                     p->bf16, level);
        for (int i = 0; i < nw && w; i++)
            consider(&p->dir[DIR_FILTER], wp[i].algo, wp[i].status, wp[i].determinism, wp[i].memory,
                     wp[i].mathType, p->bf16, level);
    }
    static const char *const NAMES[3] = {"forward", "backward-data", "backward-weights"};
    for (int d = 0; d < 3; d++)
        if (p->dir[d].n == 0)
            return error_set(err, "cuDNN offers no %s algorithm within %d MiB of workspace for this convolution",
                             NAMES[d], (int)(WORKSPACE_LIMIT >> 20));
    return 0;
}

/* Runs one direction with the plan's current algorithm, moving to the next candidate while cuDNN answers
 * NOT_SUPPORTED. a, b: the two inputs (forward: x, w; data: w, dy; filter: x, dy); out: the output. */
static void run_conv(Cuda *c, CudaConv *p, Direction dir, const void *a, const void *b, void *out) {
    static const char *const WHAT[3] = {"cudnnConvolutionForward", "cudnnConvolutionBackwardData",
                                        "cudnnConvolutionBackwardFilter"};
    Candidates *k = &p->dir[dir];
    const float one = 1.0f, zero = 0.0f;
    for (;;) {
        size_t ws = k->ws[k->at];
        if (!grow(c, &c->ws, ws ? ws : 1)) return;
        if (!ck_dnn(c, cudnnSetConvolutionMathType(p->cd, k->math[k->at]), "cudnnSetConvolutionMathType")) return;
        cudnnStatus_t st;
        if (dir == DIR_FORWARD)
            st = cudnnConvolutionForward(c->dnn, &one, p->xd, a, p->wd, b, p->cd,
                                         (cudnnConvolutionFwdAlgo_t)k->algo[k->at], c->ws.p, ws, &zero, p->yd, out);
        else if (dir == DIR_DATA)
            st = cudnnConvolutionBackwardData(c->dnn, &one, p->wd, a, p->yd, b, p->cd,
                                              (cudnnConvolutionBwdDataAlgo_t)k->algo[k->at], c->ws.p, ws, &zero,
                                              p->xd, out);
        else
            st = cudnnConvolutionBackwardFilter(c->dnn, &one, p->xd, a, p->yd, b, p->cd,
                                                (cudnnConvolutionBwdFilterAlgo_t)k->algo[k->at], c->ws.p, ws, &zero,
                                                p->wd, out);
        if (st == CUDNN_STATUS_NOT_SUPPORTED && k->at + 1 < k->n) {
            k->at++;
            continue;
        }
        ck_dnn(c, st, WHAT[dir]);
        return;
    }
}

static int cu_conv_plan(Backend *be, const ConvDesc *d, void **plan, Error *err) {
    Cuda *c = cu_of(be);
    *plan = NULL;
    if (conv_desc_check_f32(d, "the cuda backend", err)) return -1;
    CudaConv *p = calloc(1, sizeof *p);
    if (!p) return error_set(err, "out of memory");
    p->d = *d;
    p->bf16 = be->bf16;
    cudnnDataType_t dt = p->bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    bool ok = ck_dnn(c, cudnnCreateTensorDescriptor(&p->xd), "cudnnCreateTensorDescriptor") &&
              ck_dnn(c, cudnnCreateTensorDescriptor(&p->yd), "cudnnCreateTensorDescriptor") &&
              ck_dnn(c, cudnnCreateFilterDescriptor(&p->wd), "cudnnCreateFilterDescriptor") &&
              ck_dnn(c, cudnnCreateConvolutionDescriptor(&p->cd), "cudnnCreateConvolutionDescriptor") &&
              ck_dnn(c, cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, dt, d->n, d->cin, d->h, d->w),
                     "cudnnSetTensor4dDescriptor (x)") &&
              ck_dnn(c, cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, dt, d->n, d->cout, d->oh, d->ow),
                     "cudnnSetTensor4dDescriptor (y)") &&
              ck_dnn(c, cudnnSetFilter4dDescriptor(p->wd, dt, CUDNN_TENSOR_NHWC, d->cout, d->cin, d->k, d->k),
                     "cudnnSetFilter4dDescriptor") &&
              ck_dnn(c, cudnnSetConvolution2dDescriptor(p->cd, d->pad, d->pad, d->stride, d->stride, 1, 1,
                                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
                     "cudnnSetConvolution2dDescriptor") &&
              ck_dnn(c, cudnnSetConvolutionMathType(p->cd, p->bf16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH),
                     "cudnnSetConvolutionMathType");
    int rc = ok ? 0 : take_error(c, err);
    if (rc == 0) {
        int n, ch, oh, ow;
        if (!ck_dnn(c, cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &n, &ch, &oh, &ow),
                    "cudnnGetConvolution2dForwardOutputDim"))
            rc = take_error(c, err);
        else if (oh != d->oh || ow != d->ow || ch != d->cout || n != d->n)
            rc = error_set(err, "cuDNN: convolution x[%d,%d,%d,%d] -> y[%d,%d,%d,%d] is invalid (cuDNN gives %dx%d)",
                           d->n, d->h, d->w, d->cin, d->n, d->oh, d->ow, d->cout, oh, ow);
    }
    if (rc == 0) rc = choose_algorithms(c, p, err);
    if (rc) {
        conv_plan_release(p);
        return error_prefix(err, "conv %dx%d/%d x[%d,%d,%d,%d]", d->k, d->k, d->stride, d->n, d->h, d->w, d->cin);
    }
    *plan = p;
    return 0;
}

static void cu_conv_plan_free(Backend *be, void *plan) { conv_plan_release(plan); }

/* The weights as cuDNN wants them: KRSC, in the plan's precision, in the weight scratch. */
static bool stage_weights(Cuda *c, const CudaConv *p, const float *w) {
    const ConvDesc *d = &p->d;
    size_t nw = (size_t)d->cout * d->cin * d->k * d->k;
    if (!grow(c, &c->sw, nw * (p->bf16 ? 2 : 4))) return false;
    cuda_oihw_to_krsc(c->stream, d->cout, d->cin, d->k, w, c->sw.p, p->bf16);
    ck_launch(c, "oihw_to_krsc");
    return true;
}

/* A bf16 copy of x [n] in s. */
static bool stage_bf16(Cuda *c, Scratch *s, const float *x, size_t n) {
    if (!grow(c, s, n * 2)) return false;
    cuda_to_bf16(c->stream, (int64_t)n, x, s->p);
    ck_launch(c, "to_bf16");
    return true;
}

static int cu_conv_forward(Backend *be, void *plan, const void *xv, const float *w, void *yv, Error *err) {
    Cuda *c = cu_of(be);
    const float *x = xv; /* fp32 storage only (cu_conv_plan) */
    float *y = yv;
    CudaConv *p = plan;
    const ConvDesc *d = &p->d;
    size_t nx = (size_t)d->n * d->h * d->w * d->cin, ny = (size_t)d->n * d->oh * d->ow * d->cout;
    if (!stage_weights(c, p, w)) return take_error(c, err);
    const void *xin = x;
    void *yout = y;
    if (p->bf16) {
        if (!stage_bf16(c, &c->sa, x, nx) || !grow(c, &c->sb, ny * 2)) return take_error(c, err);
        xin = c->sa.p;
        yout = c->sb.p;
    }
    run_conv(c, p, DIR_FORWARD, xin, c->sw.p, yout);
    if (p->bf16) {
        cuda_from_bf16(c->stream, (int64_t)ny, c->sb.p, y);
        ck_launch(c, "from_bf16");
    }
    return take_error(c, err);
}

static int cu_conv_backward_data(Backend *be, void *plan, const void *dyv, const float *w, void *dxv, Error *err) {
    Cuda *c = cu_of(be);
    const float *dy = dyv;
    float *dx = dxv;
    CudaConv *p = plan;
    const ConvDesc *d = &p->d;
    size_t nx = (size_t)d->n * d->h * d->w * d->cin, ny = (size_t)d->n * d->oh * d->ow * d->cout;
    if (!stage_weights(c, p, w)) return take_error(c, err);
    const void *dyin = dy;
    void *dxout = dx;
    if (p->bf16) {
        if (!stage_bf16(c, &c->sb, dy, ny) || !grow(c, &c->sa, nx * 2)) return take_error(c, err);
        dyin = c->sb.p;
        dxout = c->sa.p;
    }
    run_conv(c, p, DIR_DATA, c->sw.p, dyin, dxout);
    if (p->bf16) {
        cuda_from_bf16(c->stream, (int64_t)nx, c->sa.p, dx);
        ck_launch(c, "from_bf16");
    }
    return take_error(c, err);
}

static int cu_conv_backward_weights(Backend *be, void *plan, const void *xv, const void *dyv, float *dw,
                                    Error *err) {
    Cuda *c = cu_of(be);
    const float *x = xv, *dy = dyv;
    CudaConv *p = plan;
    const ConvDesc *d = &p->d;
    size_t nx = (size_t)d->n * d->h * d->w * d->cin, ny = (size_t)d->n * d->oh * d->ow * d->cout;
    size_t nw = (size_t)d->cout * d->cin * d->k * d->k;
    if (!grow(c, &c->sw, nw * (p->bf16 ? 2 : 4))) return take_error(c, err);
    const void *xin = x, *dyin = dy;
    if (p->bf16) {
        if (!stage_bf16(c, &c->sa, x, nx) || !stage_bf16(c, &c->sb, dy, ny)) return take_error(c, err);
        xin = c->sa.p;
        dyin = c->sb.p;
    }
    run_conv(c, p, DIR_FILTER, xin, dyin, c->sw.p);
    cuda_krsc_to_oihw(c->stream, d->cout, d->cin, d->k, c->sw.p, dw, p->bf16);
    ck_launch(c, "krsc_to_oihw");
    return take_error(c, err);
}

/* ------------------------------------------------------------------ batch norm and kernels */

static double *partials(Cuda *c, int ch) {
    return grow(c, &c->part, cuda_partials_bytes(ch)) ? c->part.p : NULL;
}

static void cu_bn_forward_train(Backend *be, int n, int64_t hw, int ch, const float *x, const float *gamma,
                                const float *beta, float *y, float *save_mean, float *save_invstd,
                                float *running_mean, float *running_var, float momentum, float eps) {
    int64_t rows = (int64_t)n * hw;
    Cuda *c = cu_of(be);
    double *part = partials(c, ch);
    if (!part) return;
    cuda_bn_forward_train(c->stream, rows, ch, x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
                          momentum, eps, part);
    ck_launch(c, "bn_forward_train");
}

static void cu_bn_forward_eval(Backend *be, int n, int64_t hw, int ch, const float *x, const float *gamma,
                               const float *beta, const float *running_mean, const float *running_var, float eps,
                               float *y) {
    int64_t rows = (int64_t)n * hw;
    Cuda *c = cu_of(be);
    cuda_bn_forward_eval(c->stream, rows, ch, x, gamma, beta, running_mean, running_var, eps, y);
    ck_launch(c, "bn_forward_eval");
}

static void cu_bn_backward(Backend *be, int n, int64_t hw, int ch, const float *x, const float *dy, const float *gamma,
                           const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
                           float *dbeta) {
    int64_t rows = (int64_t)n * hw;
    Cuda *c = cu_of(be);
    double *part = partials(c, ch);
    if (!part) return;
    cuda_bn_backward(c->stream, rows, ch, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, part);
    ck_launch(c, "bn_backward");
}

static void cu_relu_forward(Backend *be, int64_t n, const float *x, float *y) {
    cuda_relu_forward(cu_of(be)->stream, n, x, y);
    ck_launch(cu_of(be), "relu_forward");
}
static void cu_relu_backward(Backend *be, int64_t n, const float *y, const float *dy, float *dx) {
    cuda_relu_backward(cu_of(be)->stream, n, y, dy, dx);
    ck_launch(cu_of(be), "relu_backward");
}
static void cu_add(Backend *be, int64_t n, const float *a, const float *b, float *y) {
    cuda_add(cu_of(be)->stream, n, a, b, y);
    ck_launch(cu_of(be), "add");
}
static void cu_axpy(Backend *be, int64_t n, float alpha, const float *x, float *y) {
    cuda_axpy(cu_of(be)->stream, n, alpha, x, y);
    ck_launch(cu_of(be), "axpy");
}
static void cu_maxpool_forward(Backend *be, const PoolDesc *d, const float *x, float *y, int32_t *argmax) {
    cuda_maxpool_forward(cu_of(be)->stream, d, x, y, argmax);
    ck_launch(cu_of(be), "maxpool_forward");
}
static void cu_maxpool_backward(Backend *be, const PoolDesc *d, const float *dy, const int32_t *argmax, float *dx) {
    cuda_maxpool_backward(cu_of(be)->stream, d, dy, argmax, dx);
    ck_launch(cu_of(be), "maxpool_backward");
}
static void cu_avgpool_forward(Backend *be, int n, int hw, int ch, const float *x, float *y) {
    cuda_avgpool_forward(cu_of(be)->stream, n, hw, ch, x, y);
    ck_launch(cu_of(be), "avgpool_forward");
}
static void cu_avgpool_backward(Backend *be, int n, int hw, int ch, const float *dy, float *dx) {
    cuda_avgpool_backward(cu_of(be)->stream, n, hw, ch, dy, dx);
    ck_launch(cu_of(be), "avgpool_backward");
}
static void cu_blur_forward(Backend *be, const PoolDesc *d, const float *x, float *y) {
    cuda_blur_forward(cu_of(be)->stream, d, x, y);
    ck_launch(cu_of(be), "blur_forward");
}
static void cu_blur_backward(Backend *be, const PoolDesc *d, const float *dy, float *dx) {
    cuda_blur_backward(cu_of(be)->stream, d, dy, dx);
    ck_launch(cu_of(be), "blur_backward");
}
static void cu_sigmoid_forward(Backend *be, int64_t n, const float *x, float *y) {
    cuda_sigmoid_forward(cu_of(be)->stream, n, x, y);
    ck_launch(cu_of(be), "sigmoid_forward");
}
static void cu_sigmoid_backward(Backend *be, int64_t n, const float *y, const float *dy, float *dx) {
    cuda_sigmoid_backward(cu_of(be)->stream, n, y, dy, dx);
    ck_launch(cu_of(be), "sigmoid_backward");
}
static void cu_channel_scale_forward(Backend *be, int n, int hw, int ch, const float *x, const float *s, float *y) {
    cuda_channel_scale_forward(cu_of(be)->stream, n, hw, ch, x, s, y);
    ck_launch(cu_of(be), "channel_scale_forward");
}
static void cu_channel_scale_backward(Backend *be, int n, int hw, int ch, const float *x, const float *s,
                                      const float *dy, float *dx, float *ds) {
    cuda_channel_scale_backward(cu_of(be)->stream, n, hw, ch, x, s, dy, dx, ds);
    ck_launch(cu_of(be), "channel_scale_backward");
}
static void cu_sample_scale(Backend *be, int n, int64_t inner, const float *s, const float *x, float *y) {
    cuda_sample_scale(cu_of(be)->stream, n, inner, s, x, y);
    ck_launch(cu_of(be), "sample_scale");
}

/* ------------------------------------------------------------------ fully connected (cuBLAS)
 * Row-major y [n, cout] is column-major y^T [cout, n]; w [cout, cin] row-major is column-major w^T [cin, cout].
 *   forward:  y^T  = (w^T)^T x^T      -> gemm(T, N, m=cout, n=n,    k=cin)
 *   data:     dx^T = w^T dy^T         -> gemm(N, N, m=cin,  n=n,    k=cout)
 *   weights:  dw^T = x^T dy           -> gemm(N, T, m=cin,  n=cout, k=n)   */

/* C (fp32) = op(A) op(B) with A, B fp32, or bf16 copies of them when be->bf16. */
static void gemm(Backend *be, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *a,
                 int lda, size_t na, const float *b, int ldb, size_t nb, float *cmat, int ldc) {
    Cuda *c = cu_of(be);
    const float one = 1.0f, zero = 0.0f;
    if (!be->bf16) {
        ck_blas(c, cublasSgemm(c->blas, ta, tb, m, n, k, &one, a, lda, b, ldb, &zero, cmat, ldc), "cublasSgemm");
        return;
    }
    if (!stage_bf16(c, &c->sa, a, na) || !stage_bf16(c, &c->sb, b, nb)) return;
    ck_blas(c, cublasGemmEx(c->blas, ta, tb, m, n, k, &one, c->sa.p, CUDA_R_16BF, lda, c->sb.p, CUDA_R_16BF, ldb,
                            &zero, cmat, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx (bf16)");
}

static int cu_fc_forward(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *b,
                         float *y, Error *err) {
    Cuda *c = cu_of(be);
    gemm(be, CUBLAS_OP_T, CUBLAS_OP_N, cout, n, cin, w, cin, (size_t)cout * cin, x, cin, (size_t)n * cin, y, cout);
    if (b) {
        cuda_add_bias(c->stream, n, cout, b, y);
        ck_launch(c, "add_bias");
    }
    return take_error(c, err);
}

static int cu_fc_backward(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *dy,
                          float *dx, float *dw, float *db, Error *err) {
    Cuda *c = cu_of(be);
    if (dx)
        gemm(be, CUBLAS_OP_N, CUBLAS_OP_N, cin, n, cout, w, cin, (size_t)cout * cin, dy, cout, (size_t)n * cout, dx,
             cin);
    gemm(be, CUBLAS_OP_N, CUBLAS_OP_T, cin, cout, n, x, cin, (size_t)n * cin, dy, cout, (size_t)n * cout, dw, cin);
    if (db) {
        cuda_bias_grad(c->stream, n, cout, dy, db);
        ck_launch(c, "bias_grad");
    }
    return take_error(c, err);
}

/* ------------------------------------------------------------------ loss, optimizer, vector helpers */

static void cu_loss_forward_backward(Backend *be, LossKind kind, int n, int ch, const float *logits,
                                     const float *target, float grad_scale, float *loss, float *dlogits) {
    cuda_loss_forward_backward(cu_of(be)->stream, kind, n, ch, logits, target, grad_scale, loss, dlogits);
    ck_launch(cu_of(be), "loss_forward_backward");
}

static void cu_sgd_step(Backend *be, const SgdStep *s, int64_t n, float *p, const float *g, float *buf) {
    cuda_sgd_step(cu_of(be)->stream, s, n, p, g, buf);
    ck_launch(cu_of(be), "sgd_step");
}

static void cu_scale(Backend *be, int64_t n, float alpha, float *x) {
    cuda_scale(cu_of(be)->stream, n, alpha, x);
    ck_launch(cu_of(be), "scale");
}

static double cu_sum_squares(Backend *be, int64_t n, const float *x) {
    Cuda *c = cu_of(be);
    double *part = partials(c, 1), out = 0;
    if (!part) return 0;
    cuda_sum_squares(c->stream, n, x, part, c->sum_out);
    ck_launch(c, "sum_squares");
    cu_download(be, &out, c->sum_out, sizeof out);
    return out;
}

/* ------------------------------------------------------------------ about the device */

static void cu_describe(Backend *be, char *out, size_t n) { snprintf(out, n, "%s", cu_of(be)->about); }

static size_t cu_peak_bytes(Backend *be) { return cu_of(be)->peak; }

/* ------------------------------------------------------------------ table, create, destroy */

static const BackendOps CUDA_OPS = {
    .name = "cuda",
    .bf16 = true,
    .gpu = true,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .copy = cu_copy,
    .zero = cu_zero,
    .sync = cu_sync,
    .conv_plan = cu_conv_plan,
    .conv_plan_free = cu_conv_plan_free,
    .conv_forward = cu_conv_forward,
    .conv_backward_data = cu_conv_backward_data,
    .conv_backward_weights = cu_conv_backward_weights,
    .bn_forward_train = cu_bn_forward_train,
    .bn_forward_eval = cu_bn_forward_eval,
    .bn_backward = cu_bn_backward,
    .relu_forward = cu_relu_forward,
    .relu_backward = cu_relu_backward,
    .add = cu_add,
    .axpy = cu_axpy,
    .maxpool_forward = cu_maxpool_forward,
    .maxpool_backward = cu_maxpool_backward,
    .avgpool_forward = cu_avgpool_forward,
    .avgpool_backward = cu_avgpool_backward,
    .blur_forward = cu_blur_forward,
    .blur_backward = cu_blur_backward,
    .sigmoid_forward = cu_sigmoid_forward,
    .sigmoid_backward = cu_sigmoid_backward,
    .channel_scale_forward = cu_channel_scale_forward,
    .channel_scale_backward = cu_channel_scale_backward,
    .sample_scale = cu_sample_scale,
    .fc_forward = cu_fc_forward,
    .fc_backward = cu_fc_backward,
    .loss_forward_backward = cu_loss_forward_backward,
    .sgd_step = cu_sgd_step,
    .scale = cu_scale,
    .sum_squares = cu_sum_squares,
    .describe = cu_describe,
    .peak_bytes = cu_peak_bytes,
};

void cuda_backend_destroy(Backend *be) {
    if (!be) return;
    Cuda *c = cu_of(be);
    if (c) {
        if (c->stream) cudaStreamSynchronize(c->stream);
        Scratch *scratch[] = {&c->ws, &c->sa, &c->sb, &c->sw, &c->part};
        for (size_t i = 0; i < sizeof scratch / sizeof *scratch; i++)
            if (scratch[i]->p) cudaFree(scratch[i]->p);
        if (c->sum_out) cudaFree(c->sum_out);
        for (int s = 0; s < N_SLOTS; s++) {
            if (c->pinned[s]) cudaFreeHost(c->pinned[s]);
            if (c->pinned_free[s]) cudaEventDestroy(c->pinned_free[s]);
        }
        if (c->blas) cublasDestroy(c->blas);
        if (c->dnn) cudnnDestroy(c->dnn);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

int cuda_backend_create(int threads, Backend **out, Error *err) {
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        cudaGetLastError();
        return error_set(err, "device 'cuda': no usable NVIDIA GPU (%s); use --device cpu",
                         e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    Backend *be = calloc(1, sizeof *be);
    Cuda *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return error_set(err, "out of memory");
    }
    be->ops = &CUDA_OPS;
    be->threads = threads;
    be->impl = c;
    int dev = 0, driver = 0, runtime = 0;
    struct cudaDeviceProp prop;
    bool ok = ck(c, cudaGetDevice(&dev), "cudaGetDevice") &&
              ck(c, cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties") &&
              ck(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate") &&
              ck_dnn(c, cudnnCreate(&c->dnn), "cudnnCreate") &&
              ck_dnn(c, cudnnSetStream(c->dnn, c->stream), "cudnnSetStream") &&
              ck_blas(c, cublasCreate(&c->blas), "cublasCreate") &&
              ck_blas(c, cublasSetStream(c->blas, c->stream), "cublasSetStream") &&
              ck(c, cudaMalloc((void **)&c->sum_out, sizeof(double)), "cudaMalloc");
    for (int s = 0; ok && s < N_SLOTS; s++)
        ok = ck(c, cudaEventCreateWithFlags(&c->pinned_free[s], cudaEventDisableTiming), "cudaEventCreate");
    if (!ok) {
        take_error(c, err);
        cuda_backend_destroy(be);
        return error_prefix(err, "device 'cuda'");
    }
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    size_t dnn = cudnnGetVersion();
    snprintf(c->about, sizeof c->about, "%.200s (sm_%d%d, %.1f GiB; driver %d.%d, runtime %d.%d, cuDNN %zu.%zu.%zu)",
             prop.name, prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30), driver / 1000,
             driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10, dnn / 10000, dnn % 10000 / 100, dnn % 100);
    *out = be;
    return 0;
}
