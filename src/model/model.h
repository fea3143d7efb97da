/* model.h — a network as a flat list of layers over numbered tensors, its parameters, and its execution.
 *
 * Tensor 0 is the input batch; every layer reads one or two tensors and writes one new tensor, so forward
 * walks the list and backward walks it in reverse. Parameters and buffers are a table in torchvision's
 * state_dict() order (names, shapes, order), stored as two flat blocks of backend memory: trainable
 * weights (with a parallel gradient block, so the optimizer is one flat loop) and BN running statistics.
 * A Plan holds everything that depends on (batch, resolution): tensor shapes, activations, gradients,
 * backend convolution plans. It is made once and reused for every step of that shape.
 *
 * Layouts: activations NHWC [n, h, w, c]; conv weights [cout, cin, k, k] (PyTorch OIHW); fc [cout, cin].
 *
 * Model surgery (resnet.h ResnetSurgery) adds BLUR, DROP, SIGMOID and CHANNEL_SCALE layers and bias-less FCs.
 * DROP layers (stochastic depth) draw their masks from the counter-based stream (rng_seed, RNG_ALGO,
 * MODEL_RNG_DROP | layer index, rng_step): the trainer sets m->rng_seed once and m->rng_step to a different value
 * before every training forward (e.g. the global micro-batch counter), so masks do not depend on threads and
 * a resumed run draws the same ones. */
#ifndef CTRAIN_MODEL_MODEL_H
#define CTRAIN_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/error.h"

typedef enum LayerKind {
    LAYER_CONV,      /* out = conv(in) */
    LAYER_BN,        /* out = batchnorm(in) */
    LAYER_RELU,      /* out = max(in, 0) */
    LAYER_MAXPOOL,   /* out = maxpool(in) */
    LAYER_AVGPOOL,   /* out [n,1,1,c] = global average of in */
    LAYER_ADD,       /* out = in + in2 */
    LAYER_FC,        /* out [n,1,1,cout] = in [n, c] w^T + b (b optional) */
    LAYER_BLUR,      /* out = depthwise [1,2,1]x[1,2,1]/16 blur of in, zero padding 1, stride `stride` (BlurPool) */
    LAYER_DROP,      /* out [n,h,w,c] = in * mask[n] in training, in * (1-p) in eval (stochastic depth) */
    LAYER_SIGMOID,   /* out = 1 / (1 + exp(-in)) */
    LAYER_CHANNEL_SCALE, /* out [n,h,w,c] = in [n,h,w,c] * in2 [n,1,1,c] (squeeze-excite) */
    LAYER_KIND_COUNT
} LayerKind;

/* "conv", "bn", ... for reports. */
const char *layer_kind_name(LayerKind kind);

/* The a-part of DROP layers' random streams: MODEL_RNG_DROP | layer index (rng.h RNG_ALGO). */
#define MODEL_RNG_DROP 0x5D0000u

typedef struct Layer {
    LayerKind kind;
    char name[64];           /* torchvision module name ("layer2.0.conv2"); "" for parameter-free layers */
    int in, in2, out;        /* tensor indices; in2 only for ADD and CHANNEL_SCALE (the scale [n,1,1,c]) */
    int weight, bias;        /* param indices: conv/fc weight, fc bias (-1: none), bn weight (gamma) and bias */
    int running_mean, running_var, num_batches_tracked; /* bn buffers (param indices) */
    int cout, k, stride, pad; /* conv, fc (cout), maxpool and blur (stride) geometry */
    bool surgery;            /* added by model surgery (Composer INIT, after the initializers ran): init.c gives
                              * it PyTorch's default init and skips the recipe's initializers */
    /* DROP (stochastic depth): p = drop_frac * (scale * drop_rate), Composer's formula, kept as float32 */
    bool drop_block;         /* Composer 'block': one draw per forward; dropped: the branch is skipped */
    int branch_first;        /* first layer of the residual branch the DROP layer scales (its input's producers) */
    double drop_frac;        /* i/L (linear) or 1 (uniform) */
    double drop_rate;        /* the recipe's drop_rate */
    float drop_p;            /* the current drop probability */
} Layer;

typedef enum ParamKind {
    PARAM_TRAINABLE,         /* in model->weights, has a gradient */
    PARAM_BUFFER,            /* fp32 buffer in model->buffers (BN running_mean / running_var) */
    PARAM_COUNTER,           /* int64 scalar in model->counters (BN num_batches_tracked) */
} ParamKind;

typedef struct Param {
    char name[80];           /* state_dict key */
    ParamKind kind;
    int ndim;                /* 0 for scalars */
    int64_t shape[4];
    int64_t numel;
    int64_t offset;          /* floats into its block (weights or buffers); counters: index */
    int layer;               /* the layer that owns it */
    char alias[96];          /* Composer's state_dict key after its surgery when it differs from name (BlurConv2d
                              * and SqueezeExciteConv2d wrap the conv: "layer2.0.conv2.conv.weight"); else "" */
} Param;

typedef struct Model {
    Layer *layers;
    int n_layers, cap_layers;
    int *channels;           /* [n_tensors] channels of each tensor */
    int n_tensors, cap_tensors;
    Param *params;           /* state_dict order */
    int n_params, cap_params;
    int64_t n_weights;       /* floats of trainable parameters */
    int64_t n_buffers;       /* floats of BN running statistics */
    int n_counters;
    int in_channels, num_classes;
    Backend *be;
    float *weights;          /* [n_weights] backend memory */
    float *grads;            /* [n_weights] backend memory */
    float *buffers;          /* [n_buffers] backend memory */
    int64_t *counters;       /* [n_counters] host memory */
    uint64_t rng_seed;       /* DROP layers' stream: set once by the trainer (the run's seed, per rank) */
    uint64_t rng_step;       /* DROP layers' stream: set before every training forward, unique per forward */
    /* Test hook (NULL normally): called in every training forward after a DROP layer's mask [n] was drawn;
     * it may overwrite it with 0/1 values (block layers: all equal; 0 skips the branch). */
    void (*drop_mask_hook)(void *ctx, const struct Model *m, int layer, int n, float *mask);
    void *drop_mask_hook_ctx;
} Model;

/* ---- building (used by architecture files such as resnet.c) ---- */

/* Starts an empty model whose input has in_channels channels; tensor 0 is the input. */
int model_init(Model *m, int in_channels, Error *err);
/* Each adder returns the index of the new output tensor, or -1 with err. Names are torchvision's. */
int model_conv(Model *m, const char *name, int in, int cout, int k, int stride, int pad, Error *err);
int model_bn(Model *m, const char *name, int in, Error *err);
int model_relu(Model *m, int in, Error *err);
int model_maxpool(Model *m, int in, int k, int stride, int pad, Error *err);
int model_avgpool(Model *m, int in, Error *err);
int model_add(Model *m, int a, int b, Error *err);
int model_fc(Model *m, const char *name, int in, int cout, Error *err);
/* A fully connected layer that is not the classifier (num_classes unchanged); bias false: no bias param. */
int model_linear(Model *m, const char *name, int in, int cout, bool bias, Error *err);
/* Depthwise [1,2,1]x[1,2,1]/16 blur with zero padding 1 and the given stride (BlurPool). */
int model_blur(Model *m, int in, int stride, Error *err);
/* Stochastic depth on a residual branch: in is the branch's output, branch_first the index of its first
 * layer; block: Composer's 'block' method (else 'sample'); p = frac * drop_rate (model_set_drop_scale). */
int model_drop(Model *m, int in, int branch_first, bool block, double frac, double drop_rate, Error *err);
/* out = 1 / (1 + exp(-in)) (squeeze-excite's gate). */
int model_sigmoid(Model *m, int in, Error *err);
/* out = x * s with x [n,h,w,c] and s [n,1,1,c] (squeeze-excite). */
int model_channel_scale(Model *m, int x, int s, Error *err);
/* Allocates weights, gradients and buffers on be (zero weights, BN running_var = 1); call after building. */
int model_alloc(Model *m, Backend *be, Error *err);
/* Frees everything. */
void model_free(Model *m);

/* ---- inspection ---- */

/* The index of the parameter called name, or -1. */
int model_find_param(const Model *m, const char *name);
/* Number of trainable parameters (what torchvision counts with p.numel() over parameters()). */
int64_t model_num_parameters(const Model *m);
/* Pointer to a float parameter's storage (weights or buffers block). */
float *model_param_data(const Model *m, int p);
/* Pointer to a trainable parameter's gradient. */
float *model_param_grad(const Model *m, int p);
/* The logits tensor (the last layer's output). */
int model_output(const Model *m);
/* Number of layers of the given kind. */
int model_count_layers(const Model *m, LayerKind kind);

/* Sets every DROP layer's probability to frac * (factor * drop_rate) (stochastic depth's drop_warmup:
 * Composer 0.9 calls this at BATCH_START with factor = elapsed_duration / drop_warmup while elapsed_duration <
 * drop_warmup, and never after, so the rates keep the last value set; factor 1 gives the built rates). */
void model_set_drop_scale(Model *m, double factor);

/* ---- execution ---- */

/* How a training plan runs a layer (Plan.fuse). A fused layer's forward writes the output of the last layer it
 * runs; the outputs in between are never stored. */
typedef enum {
    FUSE_NONE,     /* on its own */
    FUSE_RELU,     /* a BN or ADD that runs the ReLU after it (a BN through the backend's bn_relu ops) */
    FUSE_ADD_RELU, /* a BN whose forward runs the ADD and the ReLU after it (bn_relu_forward_train, skip = the
                    * ADD's other input); that ADD is FUSE_RELU and does the backward of both */
    FUSE_DONE,     /* run by a layer before it: does nothing itself */
} FuseKind;

typedef struct Plan {
    int n, h, w;             /* batch and input resolution */
    bool train;              /* has gradients and BN batch statistics */
    int *th, *tw;            /* [n_tensors] spatial size of each tensor */
    float **act;             /* [n_tensors] activations [n, th, tw, c]; act[0] is the input */
    float **grad;            /* [n_tensors] gradients (train only; grad[0] is NULL) */
    float **bn_mean, **bn_invstd; /* [n_layers] saved BN statistics [c] (train, BN layers) */
    int32_t **argmax;        /* [n_layers] maxpool argmax [n, oh, ow, c] */
    float **mask;            /* [n_layers] DROP layers' per-sample factors [n] (backend memory) */
    float *host_mask;        /* [n] host scratch for drawing a mask */
    uint8_t *skip;           /* [n_layers] host: layer skipped in this training forward (dropped branch) */
    uint8_t *fuse;           /* [n_layers] FuseKind: how a training plan runs each layer */
    uint8_t *atype, *gtype;  /* [n_tensors] ActType of each activation and gradient: ACT_BF16 in a bf16 training
                              * plan on a backend with bf16_store for those that pass only between convolutions
                              * and fused BNs (plan_store in model.c), else ACT_F32 */
    bool bf16_store;         /* some tensor is ACT_BF16: the plan can only train (model_forward with train) */
    void **conv;             /* [n_layers] backend convolution plans */
    ConvDesc *cdesc;         /* [n_layers] */
    PoolDesc *pdesc;         /* [n_layers] maxpool and blur geometry */
    float *scratch;          /* largest activation: gradients that must be accumulated */
    float *wscratch;         /* largest parameter: parameter gradients that must be accumulated */
    void *block;             /* the single backend allocation behind all of the above */
    size_t bytes;            /* its size */
    uint8_t *written;        /* [n_tensors] host: gradient written during this backward */
    int pending;             /* a tensor whose gradient is grad + scratch, not yet added (grad_defer), or -1 */
    double flops_forward;    /* multiply-adds x 2 of conv and fc layers for one forward of the batch */
    size_t pool_bytes;       /* the activations' and gradients' shared memory (lifetime-planned) */
    double *profile;         /* NULL, or [n_layers][2]: seconds spent in forward [i][0] and backward [i][1] of each
                              * layer, added to by every call (the backend is synced per layer; a fused layer's
                              * time is its running layer's) */
} Plan;

/* plan_create's status when the backend could not allocate the plan's memory (any other failure is -1). */
#define PLAN_OUT_OF_MEMORY (-2)

/* Plans execution for batch n at resolution h x w (train: with gradients); PLAN_OUT_OF_MEMORY when its memory
 * does not fit in the backend's. */
int plan_create(Model *m, int n, int h, int w, bool train, Plan **out, Error *err);
/* Frees a plan (NULL is fine). */
void plan_destroy(Model *m, Plan *p);

/* Forward FLOPs (2 x multiply-adds of conv and fc layers) for one h x w image; no memory beyond shapes. */
int model_flops(Model *m, int h, int w, double *out, Error *err);
/* Runs the network on p->act[0]; logits land in p->act[model_output(m)] as [n, num_classes].
 * train: BN uses batch statistics and updates running statistics (p must be a train plan); DROP layers draw
 * their masks from (m->rng_seed, m->rng_step), and a dropped 'block' branch is skipped (its BNs keep their
 * statistics and counters, its parameters get zero gradients). */
int model_forward(Model *m, Plan *p, bool train, Error *err);
/* Backpropagates p->grad[model_output(m)] (dlogits, set by the caller) into m->grads.
 * accumulate: add to m->grads instead of overwriting them (gradient accumulation). */
int model_backward(Model *m, Plan *p, bool accumulate, Error *err);

#endif
