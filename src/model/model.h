/* model.h — a network as a flat list of layers over numbered tensors, its parameters, and its execution.
 *
 * Tensor 0 is the input batch; every layer reads one or two tensors and writes one new tensor, so forward
 * walks the list and backward walks it in reverse. Parameters and buffers are a table in torchvision's
 * state_dict() order (names, shapes, order), stored as two flat blocks of backend memory: trainable
 * weights (with a parallel gradient block, so the optimizer is one flat loop) and BN running statistics.
 * A Plan holds everything that depends on (batch, resolution): tensor shapes, activations, gradients,
 * backend convolution plans. It is made once and reused for every step of that shape.
 *
 * Layouts: activations NHWC [n, h, w, c]; conv weights [cout, cin, k, k] (PyTorch OIHW); fc [cout, cin]. */
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
    LAYER_FC,        /* out [n,1,1,cout] = in [n, c] w^T + b */
} LayerKind;

typedef struct Layer {
    LayerKind kind;
    char name[64];           /* torchvision module name ("layer2.0.conv2"); "" for parameter-free layers */
    int in, in2, out;        /* tensor indices; in2 only for ADD */
    int weight, bias;        /* param indices: conv/fc weight, fc bias, bn weight (gamma) and bias (beta) */
    int running_mean, running_var, num_batches_tracked; /* bn buffers (param indices) */
    int cout, k, stride, pad; /* conv, fc (cout), maxpool geometry */
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

/* ---- execution ---- */

typedef struct Plan {
    int n, h, w;             /* batch and input resolution */
    bool train;              /* has gradients and BN batch statistics */
    int *th, *tw;            /* [n_tensors] spatial size of each tensor */
    float **act;             /* [n_tensors] activations [n, th, tw, c]; act[0] is the input */
    float **grad;            /* [n_tensors] gradients (train only; grad[0] is NULL) */
    float **bn_mean, **bn_invstd; /* [n_layers] saved BN statistics [c] (train, BN layers) */
    int32_t **argmax;        /* [n_layers] maxpool argmax [n, oh, ow, c] */
    void **conv;             /* [n_layers] backend convolution plans */
    ConvDesc *cdesc;         /* [n_layers] */
    PoolDesc *pdesc;         /* [n_layers] */
    float *scratch;          /* largest activation: gradients that must be accumulated */
    float *wscratch;         /* largest parameter: parameter gradients that must be accumulated */
    void *block;             /* the single backend allocation behind all of the above */
    size_t bytes;            /* its size */
    uint8_t *written;        /* [n_tensors] host: gradient written during this backward */
    double flops_forward;    /* multiply-adds x 2 of conv and fc layers for one forward of the batch */
} Plan;

/* Plans execution for batch n at resolution h x w (train: with gradients). */
int plan_create(Model *m, int n, int h, int w, bool train, Plan **out, Error *err);
/* Frees a plan (NULL is fine). */
void plan_destroy(Model *m, Plan *p);
/* Runs the network on p->act[0]; logits land in p->act[model_output(m)] as [n, num_classes].
 * train: BN uses batch statistics and updates running statistics (p must be a train plan). */
int model_forward(Model *m, Plan *p, bool train, Error *err);
/* Backpropagates p->grad[model_output(m)] (dlogits, set by the caller) into m->grads.
 * accumulate: add to m->grads instead of overwriting them (gradient accumulation). */
int model_backward(Model *m, Plan *p, bool accumulate, Error *err);

#endif
