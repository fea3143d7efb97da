/* backend.h — the one interface between ctrain and the hardware.
 *
 * A backend is a table of operations plus memory functions. The model, trainer and algorithms call only
 * these; they never include oneDNN, cuDNN or SIMD headers. Implementations:
 *   ref  — plain C loops, single thread: the test oracle for every other backend (src/backend/ref/)
 *   cpu  — oneDNN convolutions, C + OpenMP for the rest (src/backend/cpu/)
 *   cuda — cuDNN convolutions, cuBLAS for the FC, own kernels for the rest (src/backend/cuda/; built when CMake
 *          finds nvcc, cuDNN and cuBLAS)
 *
 * Conventions for every operation:
 *   - Pointers are backend memory (from ops->alloc). On CPU backends that is host memory; on cuda it is device
 *     memory, reached from the host only through upload/download.
 *   - Activations are fp32 (bf16 only where an ActTypes says so, see ActType), shapes written outermost first
 *     as NHWC: x [n, h, w, c]. In memory they are NHWC, except on a backend with act_block B > 0 (see Backend),
 *     which keeps an activation whose channel count c is a multiple of B in oneDNN's blocked layout nChwBc:
 *     [n, c/B, h, w, B]. Every operation decides the layout of a tensor from its own channel count, so
 *     producers and consumers agree; with h = w = 1 the two layouts are the same bytes, and elementwise
 *     operations do not care. Host code converts with
 *     act_layout_pack/act_layout_unpack (the trainer's input images have 1 or 3 channels and stay NHWC).
 *   - Weights are PyTorch's layouts: conv [cout, cin, kh, kw] (OIHW), fc [cout, cin].
 *   - Backward operations WRITE (not accumulate) their outputs; the model accumulates where needed.
 *   - Operations that can fail on bad shapes or out-of-memory return 0 / -1 with err (conv_plan returns
 *     BACKEND_OUT_OF_MEMORY when memory ran out, so callers can retry smaller); the rest are void.
 *   - Calls on one backend are serialized (like work on one GPU stream): backends keep shared scratch memory.
 *     Plans must be freed before the backend that made them.
 *   - BatchNorm training with a single row uses the biased variance for running_var too; the model refuses
 *     that case before calling (PyTorch: "Expected more than 1 value per channel when training").
 */
#ifndef CTRAIN_BACKEND_BACKEND_H
#define CTRAIN_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"

/* How an activation or gradient is stored. ACT_BF16: each value is a bf16 (the upper 16 bits of its fp32, rounded
 * to nearest even), in the same layout, so the buffer holds half the bytes. Only a backend with ops->bf16_store
 * takes bf16 storage, and only while be->bf16; everywhere else everything is ACT_F32. */
typedef enum ActType { ACT_F32 = 0, ACT_BF16 = 1 } ActType;

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

/* The storage of the four activations of a convolution (or of a batch norm: x its input, y its output, dy and dx
 * their gradients, and skip the tensor its fused forward adds). Zero-initialized: all fp32. */
typedef struct ActTypes {
    ActType x, y, dx, dy, skip;
} ActTypes;

/* Geometry of one 2-D convolution (square kernel, symmetric zero padding, no dilation, groups = 1). */
typedef struct ConvDesc {
    int n, h, w, cin;                /* input  x [n, h, w, cin] */
    int cout, k, stride, pad;        /* weight w [cout, cin, k, k] */
    int oh, ow;                      /* output y [n, oh, ow, cout] */
    ActTypes t;                      /* storage of x, y, dx, dy (conv_desc_init: all fp32) */
    bool no_dx;                      /* the caller never asks for dx (the network's first layer): a backend may
                                      * plan without backward data and refuse it (conv_desc_init: false) */
} ConvDesc;

/* Geometry of a 2-D max pool (square window, symmetric padding with -inf). */
typedef struct PoolDesc {
    int n, h, w, c;                  /* input  x [n, h, w, c] */
    int k, stride, pad;
    int oh, ow;                      /* output y [n, oh, ow, c] */
} PoolDesc;

/* Loss functions on logits [n, c] and soft targets [n, c]. */
typedef enum LossKind {
    LOSS_SOFT_CROSS_ENTROPY = 0,     /* Composer soft_cross_entropy: mean_i -sum_c t_ic log softmax(z_i)_c */
    LOSS_BCE_WITH_LOGITS = 1,        /* Composer binary_cross_entropy_with_logits: sum_ic bce(z_ic, t_ic) / n */
} LossKind;

/* One SGD-family update over a flat parameter block (see train/optim.h for the exact formulas). */
typedef struct SgdStep {
    double lr;                       /* the scheduled learning rate for this step */
    double momentum, dampening;
    double weight_decay;
    double decay_factor;             /* decoupled_sgdw: lr / initial_lr; torch sgd: unused */
    bool nesterov;
    bool decoupled;                  /* true: Composer DecoupledSGDW; false: torch.optim.SGD */
    bool first_step;                 /* momentum buffer is initialized to the gradient on the first step */
} SgdStep;

typedef struct Backend Backend;

#define BACKEND_OUT_OF_MEMORY (-2) /* conv_plan's status when memory ran out */

typedef struct BackendOps {
    const char *name;
    bool bf16;   /* can compute convolutions and the FC in bf16 (see Backend.bf16) */
    bool gpu;    /* runs on a GPU: precision "auto" means bf16 there, fp32 elsewhere */
    bool bf16_store; /* with be->bf16, takes ACT_BF16 storage (ActTypes) in convolution plans and in the fused
                      * bn_relu operations: the model then keeps the tensors that pass only between those in bf16 */

    /* ---- memory ---- */
    void *(*alloc)(Backend *be, size_t bytes);                    /* zero-filled, 64-byte aligned; NULL on OOM */
    void (*free)(Backend *be, void *p);
    void (*upload)(Backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(Backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(Backend *be, void *p, size_t bytes);
    int (*sync)(Backend *be, Error *err);                          /* wait for queued work */

    /* ---- convolution: a plan holds the per-shape state (primitives, algorithms, scratch) ---- */
    int (*conv_plan)(Backend *be, const ConvDesc *d, void **plan, Error *err);
    void (*conv_plan_free)(Backend *be, void *plan);
    /* Activations are stored as the plan's ConvDesc.t says (fp32 unless ops->bf16_store). */
    /* y [n,oh,ow,cout] = conv(x [n,h,w,cin], w [cout,cin,k,k]) */
    int (*conv_forward)(Backend *be, void *plan, const void *x, const float *w, void *y, Error *err);
    /* dx [n,h,w,cin] from dy [n,oh,ow,cout], w [cout,cin,k,k] */
    int (*conv_backward_data)(Backend *be, void *plan, const void *dy, const float *w, void *dx, Error *err);
    /* dw [cout,cin,k,k] from x [n,h,w,cin], dy [n,oh,ow,cout] */
    int (*conv_backward_weights)(Backend *be, void *plan, const void *x, const void *dy, float *dw, Error *err);
    /* Optional (NULL: not reported): the name of the implementation that runs pass (0 forward, 1 backward data,
     * 2 backward weights) of plan, "" where it has none (backward data of a ConvDesc.no_dx plan); for
     * ctrain bench --profile --layers. */
    const char *(*conv_impl)(Backend *be, const void *plan, int pass);

    /* ---- batch norm of x [n, hw, c] over its n*hw rows per channel (PyTorch BatchNorm2d semantics) ---- */
    /* Training: normalize with the batch mean and biased variance; save mean and 1/sqrt(var+eps) for
     * backward; running = (1-momentum)*running + momentum*batch, with the unbiased variance. */
    void (*bn_forward_train)(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                             const float *beta, float *y, float *save_mean, float *save_invstd,
                             float *running_mean, float *running_var, float momentum, float eps);
    /* Eval: normalize with the running statistics. x, y [n, hw, c]; gamma, beta, running_* [c] */
    void (*bn_forward_eval)(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                            const float *beta, const float *running_mean, const float *running_var, float eps,
                            float *y);
    /* dx [n,hw,c], dgamma [c], dbeta [c] from x, dy [n,hw,c] and the saved statistics */
    void (*bn_backward)(Backend *be, int n, int64_t hw, int c, const float *x, const float *dy, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
                        float *dbeta);
    /* Optional fused forms (NULL: the model calls the operations one by one): batch norm followed by ReLU, or
     * in forward by an add of skip [n, hw, c] and then ReLU, bit-identical to them on fp32 storage.
     * Forward: y = max(bn_forward_train(x) (+ skip), 0); the BN's own output (and the add's) is never stored.
     * Backward: bn_backward of dy * (y > 0), with y the ReLU's output [n, hw, c] and dy its gradient; y NULL:
     * plain bn_backward of dy (a BN whose ReLU ran in the ADD after it). x, y, dy, dx and skip are stored as t
     * says (all ACT_F32 unless ops->bf16_store); the sums and the arithmetic stay fp32 and double either way. */
    void (*bn_relu_forward_train)(Backend *be, int n, int64_t hw, int c, ActTypes t, const void *x,
                                  const void *skip, const float *gamma, const float *beta, void *y,
                                  float *save_mean, float *save_invstd, float *running_mean, float *running_var,
                                  float momentum, float eps);
    void (*bn_relu_backward)(Backend *be, int n, int64_t hw, int c, ActTypes t, const void *x, const void *y,
                             const void *dy, const float *gamma, const float *save_mean, const float *save_invstd,
                             void *dx, float *dgamma, float *dbeta);

    /* ---- elementwise over n floats ---- */
    void (*relu_forward)(Backend *be, int64_t n, const float *x, float *y); /* may run in place (x == y) */
    void (*relu_backward)(Backend *be, int64_t n, const float *y, const float *dy, float *dx); /* dx = dy*(y>0) */
    /* relu_backward with y stored bf16 (ActType); required with ops->bf16_store, NULL elsewhere */
    void (*relu_backward_bf16)(Backend *be, int64_t n, const void *y, const float *dy, float *dx);
    /* dx = (dy + dy2) * (y > 0), y stored as yt says: the ReLU's backward of a gradient that arrives in two parts,
     * in one pass with the bits of axpy (dy += dy2) then relu_backward (or relu_backward_bf16); dx may be dy or
     * dy2. Optional (NULL: the model runs those two). */
    void (*relu_backward_add)(Backend *be, int64_t n, ActType yt, const void *y, const float *dy, const float *dy2,
                              float *dx);
    void (*add)(Backend *be, int64_t n, const float *a, const float *b, float *y);           /* y = a + b */
    /* Optional (NULL: the model calls add, then relu_forward in place): y = max(a + b, 0), bit-identical to them */
    void (*add_relu)(Backend *be, int64_t n, const float *a, const float *b, float *y);
    void (*axpy)(Backend *be, int64_t n, float alpha, const float *x, float *y);             /* y += alpha*x */

    /* ---- pooling ---- */
    /* y [n,oh,ow,c] = max over the window; argmax [n,oh,ow,c] = flat index h*w_in+w of the first maximum */
    void (*maxpool_forward)(Backend *be, const PoolDesc *d, const float *x, float *y, int32_t *argmax);
    /* dx [n,h,w,c] = scatter of dy through argmax */
    void (*maxpool_backward)(Backend *be, const PoolDesc *d, const float *dy, const int32_t *argmax, float *dx);
    /* global average: y [n,c] = mean over hw of x [n,hw,c] */
    void (*avgpool_forward)(Backend *be, int n, int hw, int c, const float *x, float *y);
    void (*avgpool_backward)(Backend *be, int n, int hw, int c, const float *dy, float *dx);

    /* ---- model surgery (Composer BlurPool, StochasticDepth, SqueezeExcite) ---- */
    /* Blur: y [n,oh,ow,c] = depthwise 3x3 [1,2,1]x[1,2,1]/16 of x [n,h,w,c], zero padding 1, stride d->stride;
     * d is a PoolDesc with k = 3, pad = 1 (pool_desc_init gives oh, ow). */
    void (*blur_forward)(Backend *be, const PoolDesc *d, const float *x, float *y);
    /* dx [n,h,w,c] from dy [n,oh,ow,c]: the same filter, transposed through the stride */
    void (*blur_backward)(Backend *be, const PoolDesc *d, const float *dy, float *dx);
    /* y [n] = 1 / (1 + exp(-x [n])) */
    void (*sigmoid_forward)(Backend *be, int64_t n, const float *x, float *y);
    /* dx [n] = dy * y * (1 - y), from the forward's output y [n] */
    void (*sigmoid_backward)(Backend *be, int64_t n, const float *y, const float *dy, float *dx);
    /* y [n,hw,c] = x [n,hw,c] * s [n,c] */
    void (*channel_scale_forward)(Backend *be, int n, int hw, int c, const float *x, const float *s, float *y);
    /* dx [n,hw,c] = dy * s (skipped when NULL); ds [n,c] = sum over hw of dy * x (skipped when NULL) */
    void (*channel_scale_backward)(Backend *be, int n, int hw, int c, const float *x, const float *s,
                                   const float *dy, float *dx, float *ds);
    /* Per-sample scale: y [n, inner] = x [n, inner] * s [n] (forward and backward of stochastic depth) */
    void (*sample_scale)(Backend *be, int n, int64_t inner, const float *s, const float *x, float *y);

    /* ---- fully connected: y [n,cout] = x [n,cin] w^T [cin,cout] + b [cout] (b may be NULL) ---- */
    int (*fc_forward)(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *b,
                      float *y, Error *err);
    /* dx [n,cin] (skipped when NULL), dw [cout,cin], db [cout] (skipped when NULL) */
    int (*fc_backward)(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *dy,
                       float *dx, float *dw, float *db, Error *err);

    /* ---- loss: per-sample losses and the gradient of (sum of per-sample losses) * grad_scale ----
     * logits, target, dlogits [n,c]; loss [n]. For LOSS_BCE_WITH_LOGITS the per-sample loss is the sum
     * over classes; for LOSS_SOFT_CROSS_ENTROPY it is -sum_c t log softmax. dlogits may be NULL. */
    void (*loss_forward_backward)(Backend *be, LossKind kind, int n, int c, const float *logits,
                                  const float *target, float grad_scale, float *loss, float *dlogits);

    /* ---- optimizer: p, g, buf [n] ---- */
    void (*sgd_step)(Backend *be, const SgdStep *s, int64_t n, float *p, const float *g, float *buf);

    /* ---- whole-vector helpers (EMA, SAM) ---- */
    /* x [n] *= alpha */
    void (*scale)(Backend *be, int64_t n, float alpha, float *x);
    /* sum of x [n]^2, accumulated in double in a fixed order */
    double (*sum_squares)(Backend *be, int64_t n, const float *x);

    /* ---- about the device; NULL on the CPU backends ---- */
    /* one line: the device's name, memory, driver and library versions */
    void (*describe)(Backend *be, char *out, size_t n);
    /* the most device memory this backend has held at once, in bytes */
    size_t (*peak_bytes)(Backend *be);
} BackendOps;

struct Backend {
    const BackendOps *ops;
    int threads;   /* CPU threads the backend may use */
    int act_block; /* 0: every activation is NHWC. B > 0: activations with a multiple of B channels are nChwBc
                    * (see the conventions above). backend_create sets the backend's choice (cpu: the width of
                    * oneDNN's vector block, 8 with AVX2 and 16 with AVX-512; ref and cuda: 0); a caller may set
                    * 0 before making plans. */
    bool bf16;     /* convolutions and the FC read bf16 copies of inputs and weights and accumulate in fp32;
                    * everything else stays fp32. Only when ops->bf16; set before making plans. The cpu
                    * backend (ops->bf16 only on CPUs with AVX512_BF16 or AMX) does this for convolutions and
                    * keeps the FC, a fraction of a percent of the step, in fp32. */
    bool winograd; /* cpu: 3x3 stride-1 fp32 convolutions with 32 to 512 channels in and out (to 128 on an
                    * Intel CPU with AVX-512) run Winograd's F(4x4, 3x3) or F(2x2, 3x3)
                    * (src/backend/cpu/winograd.h) instead of oneDNN's direct kernels, and bf16 ones from 64
                    * channels bf16 F(2x2, 3x3) (winograd_bf16.h); equal up to rounding.
                    * backend_create sets true on cpu (false elsewhere); a caller may set false before making
                    * plans. */
    void *impl;    /* the implementation's private state */
};

/* Creates the backend called name ("cpu", "ref", "cuda" or its alias "gpu") using up to threads CPU threads
 * (0 = all cores). */
int backend_create(const char *name, int threads, Backend **out, Error *err);
/* Frees a backend made by backend_create (NULL is fine). */
void backend_destroy(Backend *be);
/* The names backend_create accepts, comma-separated, for help texts. */
const char *backend_names(void);
/* True when this ctrain was built with the CUDA backend. */
bool backend_has_cuda(void);

/* The block width an activation with c channels has on be: be->act_block when it divides c, else 0 (NHWC). */
int act_block_of(const Backend *be, int c);
/* dst = src [n, h*w, c] (NHWC, host memory) in the layout be keeps it in; dst and src must not overlap. */
void act_layout_pack(const Backend *be, int n, int64_t hw, int c, const float *src, float *dst);
/* dst [n, h*w, c] (NHWC, host memory) = src in the layout be keeps it in; dst and src must not overlap. */
void act_layout_unpack(const Backend *be, int n, int64_t hw, int c, const float *src, float *dst);
/* Uploads the NHWC host activation src [n, hw, c] into backend memory dst in be's layout (a host copy is packed
 * first when that layout is blocked); -1 with err when that copy cannot be allocated. */
int act_upload(Backend *be, float *dst, const float *src, int n, int64_t hw, int c, Error *err);

/* Fills the output size of a convolution; returns -1 with err when the output would be empty. */
int conv_desc_init(ConvDesc *d, int n, int h, int w, int cin, int cout, int k, int stride, int pad, Error *err);
/* 0 when every activation of d is fp32; else -1 with err saying who refuses bf16 storage ("the ref backend"). */
int conv_desc_check_f32(const ConvDesc *d, const char *who, Error *err);
/* Fills the output size of a max pool; returns -1 with err when the output would be empty. */
int pool_desc_init(PoolDesc *d, int n, int h, int w, int c, int k, int stride, int pad, Error *err);

#endif
