/* model.c — building a layer list, planning its memory for one (batch, resolution), forward and backward.
 *
 * Forward walks the layers in order. Backward walks them in reverse; each layer writes the gradient of its
 * input(s). A tensor read by two layers (a block's input feeds both the main branch and the shortcut)
 * receives two gradients: the first is written in place, the second goes to a scratch buffer and is added
 * (the `written` flags) — for a block output whose next layer backward is the ReLU the block's ADD runs, by that
 * ADD inside the ReLU's mask (grad_finish_or_defer). Parameter gradients are written directly, or added from a
 * scratch buffer when accumulating over micro-batches.
 *
 * Model surgery layers: BLUR and SIGMOID are plain ops; CHANNEL_SCALE writes the gradients of both inputs;
 * DROP multiplies by a per-sample mask drawn on the host before the forward (drop_prepare), and a 'block'
 * DROP layer that drew 0 marks its whole branch skipped: forward leaves those layers out (their BN statistics
 * and counters stay) and writes zeros for the branch, backward leaves them out and zeroes their parameter
 * gradients (Composer's parameters get no gradient there; see docs/design.md). */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "model/model.h"

/* ------------------------------------------------------------------ building */

static int grow(void **arr, int *cap, int need, size_t elem, Error *err) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return error_set(err, "out of memory building the model");
    *arr = p;
    *cap = nc;
    return 0;
}

static int add_tensor(Model *m, int channels, Error *err) {
    if (grow((void **)&m->channels, &m->cap_tensors, m->n_tensors + 1, sizeof *m->channels, err)) return -1;
    m->channels[m->n_tensors] = channels;
    return m->n_tensors++;
}

static Layer *add_layer(Model *m, LayerKind kind, const char *name, int in, Error *err) {
    if (grow((void **)&m->layers, &m->cap_layers, m->n_layers + 1, sizeof *m->layers, err)) return NULL;
    Layer *l = &m->layers[m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
    l->in = in;
    l->in2 = l->weight = l->bias = l->running_mean = l->running_var = l->num_batches_tracked = -1;
    l->branch_first = -1;
    return l;
}

static int add_param(Model *m, const char *layer, const char *suffix, ParamKind kind, int ndim,
                     const int64_t *shape, Error *err) {
    if (grow((void **)&m->params, &m->cap_params, m->n_params + 1, sizeof *m->params, err)) return -1;
    Param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s.%s", layer, suffix);
    p->kind = kind;
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= shape[i];
    }
    p->layer = m->n_layers - 1;
    if (kind == PARAM_TRAINABLE) {
        p->offset = m->n_weights;
        m->n_weights += p->numel;
    } else if (kind == PARAM_BUFFER) {
        p->offset = m->n_buffers;
        m->n_buffers += p->numel;
    } else {
        p->offset = m->n_counters++;
    }
    return m->n_params++;
}

int model_init(Model *m, int in_channels, Error *err) {
    memset(m, 0, sizeof *m);
    m->in_channels = in_channels;
    return add_tensor(m, in_channels, err) < 0 ? -1 : 0;
}

static int check_in(const Model *m, int in, Error *err) {
    if (in < 0 || in >= m->n_tensors) return error_set(err, "model: layer input %d does not exist", in);
    return 0;
}

int model_conv(Model *m, const char *name, int in, int cout, int k, int stride, int pad, Error *err) {
    if (check_in(m, in, err)) return -1;
    Layer *l = add_layer(m, LAYER_CONV, name, in, err);
    if (!l) return -1;
    l->cout = cout;
    l->k = k;
    l->stride = stride;
    l->pad = pad;
    int64_t shape[4] = {cout, m->channels[in], k, k};
    int w = add_param(m, name, "weight", PARAM_TRAINABLE, 4, shape, err);
    if (w < 0) return -1;
    m->layers[m->n_layers - 1].weight = w;
    int out = add_tensor(m, cout, err);
    if (out >= 0) m->layers[m->n_layers - 1].out = out;
    return out;
}

int model_bn(Model *m, const char *name, int in, Error *err) {
    if (check_in(m, in, err)) return -1;
    if (!add_layer(m, LAYER_BN, name, in, err)) return -1;
    int64_t c = m->channels[in];
    int w = add_param(m, name, "weight", PARAM_TRAINABLE, 1, &c, err);
    int b = add_param(m, name, "bias", PARAM_TRAINABLE, 1, &c, err);
    int rm = add_param(m, name, "running_mean", PARAM_BUFFER, 1, &c, err);
    int rv = add_param(m, name, "running_var", PARAM_BUFFER, 1, &c, err);
    int nb = add_param(m, name, "num_batches_tracked", PARAM_COUNTER, 0, NULL, err);
    if (w < 0 || b < 0 || rm < 0 || rv < 0 || nb < 0) return -1;
    Layer *l = &m->layers[m->n_layers - 1];
    l->weight = w;
    l->bias = b;
    l->running_mean = rm;
    l->running_var = rv;
    l->num_batches_tracked = nb;
    l->cout = (int)c;
    int out = add_tensor(m, (int)c, err);
    if (out >= 0) m->layers[m->n_layers - 1].out = out;
    return out;
}

static int simple_layer(Model *m, LayerKind kind, int in, int in2, int channels, Error *err) {
    if (check_in(m, in, err)) return -1;
    Layer *l = add_layer(m, kind, NULL, in, err);
    if (!l) return -1;
    l->in2 = in2;
    l->cout = channels;
    int out = add_tensor(m, channels, err);
    if (out >= 0) m->layers[m->n_layers - 1].out = out;
    return out;
}

int model_relu(Model *m, int in, Error *err) {
    return simple_layer(m, LAYER_RELU, in, -1, in >= 0 && in < m->n_tensors ? m->channels[in] : 0, err);
}

int model_maxpool(Model *m, int in, int k, int stride, int pad, Error *err) {
    int out = simple_layer(m, LAYER_MAXPOOL, in, -1, in >= 0 && in < m->n_tensors ? m->channels[in] : 0, err);
    if (out < 0) return -1;
    Layer *l = &m->layers[m->n_layers - 1];
    l->k = k;
    l->stride = stride;
    l->pad = pad;
    return out;
}

int model_avgpool(Model *m, int in, Error *err) {
    return simple_layer(m, LAYER_AVGPOOL, in, -1, in >= 0 && in < m->n_tensors ? m->channels[in] : 0, err);
}

int model_add(Model *m, int a, int b, Error *err) {
    if (check_in(m, a, err) || check_in(m, b, err)) return -1;
    if (m->channels[a] != m->channels[b])
        return error_set(err, "model: residual add of %d and %d channels", m->channels[a], m->channels[b]);
    return simple_layer(m, LAYER_ADD, a, b, m->channels[a], err);
}

int model_linear(Model *m, const char *name, int in, int cout, bool bias, Error *err) {
    if (check_in(m, in, err)) return -1;
    if (cout < 1) return error_set(err, "%s: a fully connected layer needs at least 1 output (got %d)", name, cout);
    if (!add_layer(m, LAYER_FC, name, in, err)) return -1;
    int64_t ws[2] = {cout, m->channels[in]}, bs = cout;
    int w = add_param(m, name, "weight", PARAM_TRAINABLE, 2, ws, err);
    int b = bias ? add_param(m, name, "bias", PARAM_TRAINABLE, 1, &bs, err) : -1;
    if (w < 0 || (bias && b < 0)) return -1;
    Layer *l = &m->layers[m->n_layers - 1];
    l->weight = w;
    l->bias = b;
    l->cout = cout;
    int out = add_tensor(m, cout, err);
    if (out >= 0) m->layers[m->n_layers - 1].out = out;
    return out;
}

int model_fc(Model *m, const char *name, int in, int cout, Error *err) {
    int out = model_linear(m, name, in, cout, true, err);
    if (out >= 0) m->num_classes = cout;
    return out;
}

int model_blur(Model *m, int in, int stride, Error *err) {
    if (stride < 1) return error_set(err, "model: blur stride must be >= 1 (got %d)", stride);
    int out = simple_layer(m, LAYER_BLUR, in, -1, in >= 0 && in < m->n_tensors ? m->channels[in] : 0, err);
    if (out < 0) return -1;
    Layer *l = &m->layers[m->n_layers - 1];
    l->k = 3;
    l->stride = stride;
    l->pad = 1;
    return out;
}

int model_drop(Model *m, int in, int branch_first, bool block, double frac, double drop_rate, Error *err) {
    if (!(drop_rate >= 0 && drop_rate <= 1) || !(frac >= 0 && frac <= 1))
        return error_set(err, "model: stochastic depth drop rate %g x %g is not in [0, 1]", frac, drop_rate);
    if (branch_first < 0 || branch_first >= m->n_layers)
        return error_set(err, "model: stochastic depth branch starts at layer %d of %d", branch_first, m->n_layers);
    int out = simple_layer(m, LAYER_DROP, in, -1, in >= 0 && in < m->n_tensors ? m->channels[in] : 0, err);
    if (out < 0) return -1;
    Layer *l = &m->layers[m->n_layers - 1];
    l->drop_block = block;
    l->branch_first = branch_first;
    l->drop_frac = frac;
    l->drop_rate = drop_rate;
    l->drop_p = (float)(frac * (1.0 * drop_rate));
    return out;
}

int model_sigmoid(Model *m, int in, Error *err) {
    return simple_layer(m, LAYER_SIGMOID, in, -1, in >= 0 && in < m->n_tensors ? m->channels[in] : 0, err);
}

int model_channel_scale(Model *m, int x, int s, Error *err) {
    if (check_in(m, x, err) || check_in(m, s, err)) return -1;
    if (m->channels[x] != m->channels[s])
        return error_set(err, "model: channel scale of %d channels by %d", m->channels[x], m->channels[s]);
    return simple_layer(m, LAYER_CHANNEL_SCALE, x, s, m->channels[x], err);
}

int model_alloc(Model *m, Backend *be, Error *err) {
    m->be = be;
    m->weights = be->ops->alloc(be, (size_t)m->n_weights * sizeof(float));
    m->grads = be->ops->alloc(be, (size_t)m->n_weights * sizeof(float));
    m->buffers = be->ops->alloc(be, (size_t)(m->n_buffers ? m->n_buffers : 1) * sizeof(float));
    m->counters = calloc((size_t)(m->n_counters ? m->n_counters : 1), sizeof *m->counters);
    if (!m->weights || !m->grads || !m->buffers || !m->counters)
        return error_set(err, "out of memory for %lld model parameters", (long long)m->n_weights);
    /* BN running_var starts at 1 (PyTorch); running_mean at 0. */
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        if (p->kind == PARAM_BUFFER && strstr(p->name, "running_var")) {
            float *ones = malloc((size_t)p->numel * sizeof *ones);
            if (!ones) return error_set(err, "out of memory");
            for (int64_t j = 0; j < p->numel; j++) ones[j] = 1.0f;
            be->ops->upload(be, m->buffers + p->offset, ones, (size_t)p->numel * sizeof *ones);
            free(ones);
        }
    }
    return 0;
}

void model_free(Model *m) {
    if (m->be) {
        if (m->weights) m->be->ops->free(m->be, m->weights);
        if (m->grads) m->be->ops->free(m->be, m->grads);
        if (m->buffers) m->be->ops->free(m->be, m->buffers);
    }
    free(m->counters);
    free(m->layers);
    free(m->channels);
    free(m->params);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ inspection */

int model_find_param(const Model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return i;
    return -1;
}

int64_t model_num_parameters(const Model *m) { return m->n_weights; }

float *model_param_data(const Model *m, int p) {
    const Param *q = &m->params[p];
    if (q->kind == PARAM_TRAINABLE) return m->weights + q->offset;
    if (q->kind == PARAM_BUFFER) return m->buffers + q->offset;
    return NULL;
}

float *model_param_grad(const Model *m, int p) {
    const Param *q = &m->params[p];
    return q->kind == PARAM_TRAINABLE ? m->grads + q->offset : NULL;
}

int model_output(const Model *m) { return m->n_tensors - 1; }

const char *layer_kind_name(LayerKind kind) {
    static const char *const NAMES[LAYER_KIND_COUNT] = {"conv", "bn", "relu", "maxpool", "avgpool", "add", "fc",
                                                        "blur", "drop", "sigmoid", "channel_scale"};
    return kind >= 0 && kind < LAYER_KIND_COUNT ? NAMES[kind] : "?";
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* With p->profile: waits for layer i's work and adds its time since *t0 to its slot (dir 0 forward, 1 backward). */
static int profile_layer(Model *m, Plan *p, int i, int dir, double *t0, Error *err) {
    if (!p->profile) return 0;
    if (m->be->ops->sync(m->be, err)) return -1;
    double t = now_s();
    p->profile[i * 2 + dir] += t - *t0;
    *t0 = t;
    return 0;
}

int model_count_layers(const Model *m, LayerKind kind) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].kind == kind;
    return n;
}

void model_set_drop_scale(Model *m, double factor) {
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->kind == LAYER_DROP) l->drop_p = (float)(l->drop_frac * (factor * l->drop_rate));
    }
}

/* ------------------------------------------------------------------ planning */

/* Carves aligned pieces out of one block: first pass counts, second pass hands out pointers. */
typedef struct Carver {
    char *base;
    size_t used;
} Carver;

static void *carve(Carver *c, size_t bytes) {
    size_t at = (c->used + 63) / 64 * 64;
    c->used = at + bytes;
    return c->base ? c->base + at : NULL;
}

static size_t tensor_numel(const Model *m, const Plan *p, int t) {
    return (size_t)p->n * p->th[t] * p->tw[t] * m->channels[t];
}

/* Bytes of numel values stored as type. */
static size_t act_bytes(size_t numel, uint8_t type) { return numel * (type == ACT_BF16 ? 2 : sizeof(float)); }

/* Spatial sizes of every tensor and the layer descriptors; no memory yet. */
static int plan_shapes(Model *m, Plan *p, Error *err) {
    p->th[0] = p->h;
    p->tw[0] = p->w;
    p->flops_forward = 0;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        int h = p->th[l->in], w = p->tw[l->in], c = m->channels[l->in];
        switch (l->kind) {
        case LAYER_CONV:
            if (conv_desc_init(&p->cdesc[i], p->n, h, w, c, l->cout, l->k, l->stride, l->pad, err))
                return error_prefix(err, "%s", l->name);
            p->cdesc[i].no_dx = l->in == 0; /* the input's gradient is never computed (model_backward) */
            h = p->cdesc[i].oh;
            w = p->cdesc[i].ow;
            p->flops_forward += 2.0 * p->n * h * w * (double)l->cout * c * l->k * l->k;
            break;
        case LAYER_MAXPOOL:
            if (pool_desc_init(&p->pdesc[i], p->n, h, w, c, l->k, l->stride, l->pad, err))
                return error_prefix(err, "maxpool");
            h = p->pdesc[i].oh;
            w = p->pdesc[i].ow;
            break;
        case LAYER_BLUR:
            /* Composer's blur_2d returns its input unchanged when h + 2 < 3: never, for h >= 1 */
            if (pool_desc_init(&p->pdesc[i], p->n, h, w, c, 3, l->stride, 1, err)) return error_prefix(err, "blur");
            h = p->pdesc[i].oh;
            w = p->pdesc[i].ow;
            break;
        case LAYER_CHANNEL_SCALE:
            if (p->th[l->in2] != 1 || p->tw[l->in2] != 1)
                return error_set(err, "channel scale by a %dx%d tensor (must be 1x1)", p->th[l->in2], p->tw[l->in2]);
            break;
        case LAYER_AVGPOOL:
            h = w = 1;
            break;
        case LAYER_FC:
            if (h != 1 || w != 1) return error_set(err, "%s: input must be pooled to 1x1", l->name);
            p->flops_forward += 2.0 * p->n * (double)c * l->cout;
            break;
        case LAYER_ADD:
            if (p->th[l->in2] != h || p->tw[l->in2] != w)
                return error_set(err, "residual add of %dx%d and %dx%d tensors", h, w, p->th[l->in2],
                                 p->tw[l->in2]);
            break;
        default:
            break;
        }
        p->th[l->out] = h;
        p->tw[l->out] = w;
    }
    return 0;
}

int model_flops(Model *m, int h, int w, double *out, Error *err) {
    Plan p = {.n = 1, .h = h, .w = w};
    int T = m->n_tensors, L = m->n_layers;
    p.th = calloc((size_t)T, sizeof *p.th);
    p.tw = calloc((size_t)T, sizeof *p.tw);
    p.cdesc = calloc((size_t)(L > 0 ? L : 1), sizeof *p.cdesc);
    p.pdesc = calloc((size_t)(L > 0 ? L : 1), sizeof *p.pdesc);
    int rc = (!p.th || !p.tw || !p.cdesc || !p.pdesc) ? error_set(err, "out of memory") : plan_shapes(m, &p, err);
    *out = rc ? 0 : p.flops_forward;
    free(p.th);
    free(p.tw);
    free(p.cdesc);
    free(p.pdesc);
    return rc;
}

/* ------------------------------------------------------------------ activation memory
 * Every activation and gradient gets an interval of the step's schedule in which it holds a value: forward of
 * layer i at time i, the loss at time L, backward of layer i at time 2L - i. Buffers whose intervals do not meet
 * share memory (greedy first fit, largest first), so a training plan holds about what backward needs (the inputs
 * of convs, BNs and FCs, the outputs of ReLUs) plus a small working set, and an evaluation plan little more
 * than two layers' worth. Each layer kind's backward reads are listed in backward_reads. */

typedef struct Life {
    int start, end;      /* first and last time the buffer holds a value, inclusive */
    size_t bytes;
    size_t offset;       /* into the shared pool */
} Life;

/* Which activations layer l reads in its backward: its input, its second input, its output. */
static void backward_reads(const Layer *l, bool *in, bool *in2, bool *out) {
    *in = l->kind == LAYER_CONV || l->kind == LAYER_BN || l->kind == LAYER_FC || l->kind == LAYER_CHANNEL_SCALE;
    *in2 = l->kind == LAYER_CHANNEL_SCALE;
    *out = l->kind == LAYER_RELU || l->kind == LAYER_SIGMOID;
}

static void extend(Life *v, int t) {
    if (t < v->start) v->start = t;
    if (t > v->end) v->end = t;
}

/* Whether layer l has a second input (in2). */
static bool layer_has_in2(const Layer *l) { return l->kind == LAYER_ADD || l->kind == LAYER_CHANNEL_SCALE; }

/* How often layer l reads tensor t: as its input, and as its second input. */
static int layer_reads(const Layer *l, int t) { return (l->in == t) + (layer_has_in2(l) && l->in2 == t); }

/* The layer of plan p that runs layer i: i itself, or the fused layer before it (FUSE_DONE). */
static int run_by(const Plan *p, int i) {
    while (i > 0 && p->fuse[i] == FUSE_DONE) i--;
    return i;
}

/* The tensor layer i's forward writes as plan p runs it: its output, or that of the last layer it runs. */
static int run_out(const Model *m, const Plan *p, int i) {
    int last = i + (p->fuse[i] == FUSE_RELU ? 1 : p->fuse[i] == FUSE_ADD_RELU ? 2 : 0);
    return m->layers[last].out;
}

/* The second input layer i's forward reads as plan p runs it (-1: none): its own, or for a BN that runs the ADD
 * after it, the ADD's input that is not the BN's output. */
static int run_in2(const Model *m, const Plan *p, int i) {
    const Layer *l = &m->layers[i];
    if (p->fuse[i] != FUSE_ADD_RELU) return layer_has_in2(l) ? l->in2 : -1;
    const Layer *a = &m->layers[i + 1];
    return a->in == l->out ? a->in2 : a->in;
}

/* Gradients that share a buffer: share[t] = the tensor whose gradient buffer t's gradient is, or -1. An ADD's
 * backward hands one gradient to both inputs a and b; a's can be b's buffer (written once, no copy) when the
 * ADD is a's only reader and, from the ADD's backward until a's producer has read a's gradient, nothing else
 * writes b's: every other reader of b comes before a's producer. */
static void plan_grad_share(const Model *m, const Plan *p, int *share) {
    for (int t = 0; t < m->n_tensors; t++) share[t] = -1;
    if (!p->train) return;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        for (int k = 0; k < 2 && l->kind == LAYER_ADD; k++) {
            int a = k ? l->in2 : l->in, b = k ? l->in : l->in2, pa = -1;
            if (a <= 0 || b <= 0 || a == b || share[b] >= 0) continue;
            for (int j = 0; j < m->n_layers; j++)
                if (m->layers[j].out == a) pa = j;
            if (pa < 0) continue;
            int read_at = run_by(p, pa); /* a fused ReLU's gradient is read by the layer that runs it */
            bool ok = true;
            for (int j = 0; j < m->n_layers && ok; j++)
                if (j != i && (layer_reads(&m->layers[j], a) || (layer_reads(&m->layers[j], b) && j >= read_at)))
                    ok = false;
            if (!ok) continue;
            share[a] = b;
            break;
        }
    }
}

/* Intervals of act [0, T) and grad [T, 2T) of the plan's tensors; a gradient shared with another tensor's
 * (share, plan_grad_share) has no memory of its own and keeps that buffer alive for as long as it is used. */
static void plan_lives(const Model *m, const Plan *p, const int *share, Life *life) {
    int T = m->n_tensors, L = m->n_layers, last = 2 * L + 1, out = model_output(m);
    for (int t = 0; t < 2 * T; t++) life[t] = (Life){.start = INT32_MAX, .end = -2};
    for (int t = 0; t < T; t++) {
        life[t].bytes = act_bytes(tensor_numel(m, p, t), p->atype[t]);
        life[T + t].bytes = act_bytes(tensor_numel(m, p, t), p->gtype[t]);
    }
    /* the input is written before the step and read by the first layer's backward; the logits are read by
     * the loss and by the trainer after the step */
    extend(&life[0], -1);
    extend(&life[0], p->train ? last : 0);
    extend(&life[out], L);
    if (p->train) extend(&life[out], last);
    for (int i = 0; i < L; i++) {
        const Layer *l = &m->layers[i];
        if (p->fuse[i] == FUSE_DONE) continue; /* run by a layer before it */
        /* forward: a fused layer writes the last output of the layers it runs; the outputs in between have no
         * memory */
        int lo = run_out(m, p, i), in2 = run_in2(m, p, i);
        for (int j = i; m->layers[j].out != lo; j++) life[m->layers[j].out].bytes = 0;
        extend(&life[lo], i);
        extend(&life[l->in], i);
        if (in2 >= 0) extend(&life[in2], i);
        if (!p->train) continue;
        /* backward: a layer that runs the ReLU after it (FUSE_RELU) reads the ReLU's output and gradient, and its
         * own output has no gradient either; the others read their output's gradient */
        int bo = p->fuse[i] == FUSE_RELU ? lo : l->out;
        if (bo != l->out) life[T + l->out].bytes = 0;
        bool rin, rin2, rout;
        backward_reads(l, &rin, &rin2, &rout);
        if (rin) extend(&life[l->in], 2 * L - i);
        if (rin2) extend(&life[l->in2], 2 * L - i);
        if (rout || bo != l->out) extend(&life[bo], 2 * L - i);
        /* gradients: the output's is read by this layer's backward; its inputs' are written there */
        extend(&life[T + bo], 2 * L - i);
        if (l->in > 0) extend(&life[T + l->in], 2 * L - i);
        if (layer_has_in2(l) && l->in2 > 0) extend(&life[T + l->in2], 2 * L - i);
    }
    if (p->train) extend(&life[T + out], L); /* the loss writes the logits' gradient */
    for (int t = 1; t < T && p->train; t++)
        if (life[T + t].start == life[T + t].end) { /* read but never written: must stay zero, never shared */
            life[T + t].start = -1;
            life[T + t].end = last;
        }
    for (int t = 0; t < T; t++)
        if (share[t] >= 0) {
            extend(&life[T + share[t]], life[T + t].start);
            extend(&life[T + share[t]], life[T + t].end);
            life[T + t].bytes = 0;
        }
    if (!p->train)
        for (int t = 0; t < T; t++) life[T + t].bytes = 0;
    life[T].bytes = 0; /* the input has no gradient */
}

static int by_size_desc(const void *a, const void *b, void *lives) {
    const Life *v = lives;
    size_t x = v[*(const int *)a].bytes, y = v[*(const int *)b].bytes;
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

/* Offsets of every live buffer in one pool; returns the pool's size. */
static size_t plan_pool(Life *life, int n, int *order) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (life[i].bytes) order[k++] = i;
    /* insertion sort by size (stable, deterministic): n is a few hundred */
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && by_size_desc(&order[j], &order[j - 1], life) < 0; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    size_t pool = 0;
    for (int a = 0; a < k; a++) {
        Life *v = &life[order[a]];
        size_t need = (v->bytes + 63) / 64 * 64, at = 0;
        bool moved = true;
        while (moved) { /* first fit: step past every placed buffer that overlaps in time and in memory */
            moved = false;
            for (int b = 0; b < a; b++) {
                const Life *u = &life[order[b]];
                bool meet = u->start <= v->end && v->start <= u->end;
                size_t uend = u->offset + (u->bytes + 63) / 64 * 64;
                if (meet && u->offset < at + need && at < uend) {
                    at = uend;
                    moved = true;
                }
            }
        }
        v->offset = at;
        if (at + need > pool) pool = at + need;
    }
    return pool;
}

/* Lays out (or, with base NULL, measures) every buffer of the plan. */
static int plan_layout(Model *m, Plan *p, Carver *c, Error *err) {
    int T = m->n_tensors;
    Life *life = malloc((size_t)2 * T * sizeof *life);
    int *order = malloc((size_t)2 * T * sizeof *order), *share = malloc((size_t)T * sizeof *share);
    if (!life || !order || !share) {
        free(life);
        free(order);
        free(share);
        return error_set(err, "out of memory");
    }
    plan_grad_share(m, p, share);
    plan_lives(m, p, share, life);
    size_t pool_bytes = plan_pool(life, 2 * T, order);
    char *pool = carve(c, pool_bytes);
    size_t max_act = 0;
    for (int t = 0; t < T; t++) {
        size_t n = tensor_numel(m, p, t);
        if (n > max_act) max_act = n;
        p->act[t] = pool && life[t].bytes ? (float *)(pool + life[t].offset) : NULL;
        p->grad[t] = pool && life[T + t].bytes ? (float *)(pool + life[T + t].offset) : NULL;
    }
    for (int t = 0; t < T; t++)
        if (share[t] >= 0) p->grad[t] = p->grad[share[t]];
    p->pool_bytes = pool_bytes;
    free(life);
    free(order);
    free(share);
    int64_t max_param = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].numel > max_param) max_param = m->params[i].numel;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        if (l->kind == LAYER_BN && p->train) {
            p->bn_mean[i] = carve(c, (size_t)l->cout * sizeof(float));
            p->bn_invstd[i] = carve(c, (size_t)l->cout * sizeof(float));
        }
        if (l->kind == LAYER_MAXPOOL) p->argmax[i] = carve(c, tensor_numel(m, p, l->out) * sizeof(int32_t));
        if (l->kind == LAYER_DROP) p->mask[i] = carve(c, (size_t)p->n * sizeof(float));
    }
    p->scratch = p->train ? carve(c, max_act * sizeof(float)) : NULL;
    /* two parameters' worth: BN's (dgamma, dbeta) and FC's (dweight, dbias) are accumulated together */
    p->wscratch = p->train ? carve(c, 2 * (size_t)max_param * sizeof(float)) : NULL;
    return 0;
}

/* Whether tensor t is read by exactly one layer, and is not the model's output. */
static bool read_once(const Model *m, int t) {
    int readers = 0;
    for (int j = 0; j < m->n_layers; j++) readers += layer_reads(&m->layers[j], t);
    return readers == 1 && t != model_output(m);
}

/* Whether the BN at i can run the forward of the ADD and ReLU after it (FUSE_ADD_RELU): the BN's output and the
 * ADD's are read by those layers alone (the ADD's other input is then another tensor, written before). */
static bool bn_add_relu_fusable(const Model *m, int i) {
    const Layer *l = &m->layers[i], *a = &m->layers[i + 1], *r = &m->layers[i + 2];
    return a->kind == LAYER_ADD && r->kind == LAYER_RELU && r->in == a->out &&
           (a->in == l->out) != (a->in2 == l->out) && read_once(m, l->out) && read_once(m, a->out);
}

/* Marks in p->fuse how a training plan runs each layer: a BN runs the forward of the ADD and ReLU after it, or
 * the ReLU after it, when the backend has the fused bn_relu operations and the outputs in between have no other
 * reader; an ADD runs the ReLU after it on every backend (its backward applies the ReLU's mask while writing
 * its inputs' gradients). */
static void plan_fuse(const Model *m, Plan *p) {
    const BackendOps *ops = m->be->ops;
    bool bn = ops->bn_relu_forward_train && ops->bn_relu_backward;
    if (!p->train) return;
    for (int i = 0; i + 1 < m->n_layers; i++) {
        const Layer *l = &m->layers[i], *r = &m->layers[i + 1];
        if (l->kind == LAYER_BN && bn && i + 2 < m->n_layers && bn_add_relu_fusable(m, i)) {
            p->fuse[i] = FUSE_ADD_RELU;
            p->fuse[i + 1] = FUSE_RELU;
            p->fuse[i + 2] = FUSE_DONE;
            i += 2;
            continue;
        }
        if (!((l->kind == LAYER_BN && bn) || l->kind == LAYER_ADD) || r->kind != LAYER_RELU || r->in != l->out ||
            !read_once(m, l->out))
            continue;
        p->fuse[i] = FUSE_RELU;
        p->fuse[i + 1] = FUSE_DONE;
        i++;
    }
}

/* Whether every reader of tensor t (at least one) is a convolution or, with skips, an ADD that the BN before it
 * runs (FUSE_ADD_RELU: t is that BN's skip), and t is not the model's output. */
static bool read_by_convs(const Model *m, const Plan *p, int t, bool skips) {
    int readers = 0;
    for (int j = 0; j < m->n_layers; j++) {
        int r = layer_reads(&m->layers[j], t);
        bool skip = skips && m->layers[j].kind == LAYER_ADD && j > 0 && p->fuse[j - 1] == FUSE_ADD_RELU;
        if (r && m->layers[j].kind != LAYER_CONV && !skip) return false;
        readers += r;
    }
    return readers > 0 && t != model_output(m);
}

/* The one layer that reads tensor t, or -1 (none, or several). */
static int only_reader(const Model *m, int t) {
    int at = -1;
    for (int j = 0; j < m->n_layers; j++) {
        int r = layer_reads(&m->layers[j], t);
        if (r > 1 || (r && at >= 0)) return -1;
        if (r) at = j;
    }
    return t == model_output(m) ? -1 : at;
}

/* Marks in p->atype and p->gtype the tensors a bf16 training plan keeps in bf16 (on a backend with bf16_store;
 * convolutions read bf16 there anyway, so storing bf16 changes no product, only where the rounding happens):
 * a convolution's output whose only reader is a fused BN (the BN reads it, and writes its gradient for the
 * convolution's backward), the ReLU output of a fused BN that only convolutions read (its gradient too when
 * one convolution reads it: written once by that convolution's backward, read by the BN's), and the block
 * outputs of the residual stream that only convolutions and the next block's fused ADD read (their gradients,
 * sums of two paths, stay fp32), as PyTorch's CPU autocast keeps them. The input, pooling, the last block's
 * output (read by the average pool) and the logits stay fp32. */
static void plan_store(const Model *m, Plan *p) {
    p->bf16_store = false;
    if (!p->train || !m->be->bf16 || !m->be->ops->bf16_store) return;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        int j = l->kind == LAYER_CONV ? only_reader(m, l->out) : -1;
        if (j >= 0 && m->layers[j].kind == LAYER_BN && p->fuse[j] != FUSE_NONE)
            p->atype[l->out] = p->gtype[l->out] = ACT_BF16;
        if (l->kind != LAYER_BN || p->fuse[i] == FUSE_NONE) continue;
        int lo = run_out(m, p, i);
        if (p->fuse[i] == FUSE_ADD_RELU) {
            if (read_by_convs(m, p, lo, true)) p->atype[lo] = ACT_BF16;
            continue;
        }
        if (!read_by_convs(m, p, lo, false)) continue;
        p->atype[lo] = ACT_BF16;
        if (only_reader(m, lo) >= 0) p->gtype[lo] = ACT_BF16;
    }
    for (int t = 0; t < m->n_tensors; t++) p->bf16_store |= p->atype[t] == ACT_BF16 || p->gtype[t] == ACT_BF16;
}

int plan_create(Model *m, int n, int h, int w, bool train, Plan **out, Error *err) {
    *out = NULL;
    Plan *p = calloc(1, sizeof *p);
    if (!p) return error_set(err, "out of memory");
    p->n = n;
    p->h = h;
    p->w = w;
    p->train = train;
    int T = m->n_tensors, L = m->n_layers;
    p->th = calloc((size_t)T, sizeof *p->th);
    p->tw = calloc((size_t)T, sizeof *p->tw);
    p->act = calloc((size_t)T, sizeof *p->act);
    p->grad = calloc((size_t)T, sizeof *p->grad);
    p->written = calloc((size_t)T, 1);
    p->bn_mean = calloc((size_t)L, sizeof *p->bn_mean);
    p->bn_invstd = calloc((size_t)L, sizeof *p->bn_invstd);
    p->argmax = calloc((size_t)L, sizeof *p->argmax);
    p->mask = calloc((size_t)L, sizeof *p->mask);
    p->host_mask = calloc((size_t)(n > 0 ? n : 1), sizeof *p->host_mask);
    p->skip = calloc((size_t)(L > 0 ? L : 1), 1);
    p->fuse = calloc((size_t)(L > 0 ? L : 1), 1);
    p->atype = calloc((size_t)T, 1);
    p->gtype = calloc((size_t)T, 1);
    p->conv = calloc((size_t)L, sizeof *p->conv);
    p->cdesc = calloc((size_t)L, sizeof *p->cdesc);
    p->pdesc = calloc((size_t)L, sizeof *p->pdesc);
    if (!p->th || !p->tw || !p->act || !p->grad || !p->written || !p->bn_mean || !p->bn_invstd || !p->argmax ||
        !p->mask || !p->host_mask || !p->skip || !p->fuse || !p->atype || !p->gtype || !p->conv || !p->cdesc ||
        !p->pdesc) {
        plan_destroy(m, p);
        return error_set(err, "out of memory");
    }
    if (plan_shapes(m, p, err)) {
        plan_destroy(m, p);
        return -1;
    }
    plan_fuse(m, p);
    plan_store(m, p);
    Carver measure = {NULL, 0};
    if (plan_layout(m, p, &measure, err)) {
        plan_destroy(m, p);
        return -1;
    }
    p->bytes = measure.used;
    p->block = m->be->ops->alloc(m->be, p->bytes);
    if (!p->block) {
        plan_destroy(m, p);
        error_set(err, "out of memory: batch %d at %dx%d needs %.2f GiB of activations%s; use a smaller batch or "
                  "grad_accum (auto finds one)", n, h, w, (double)measure.used / (1 << 30), train ? " and gradients" : "");
        return PLAN_OUT_OF_MEMORY;
    }
    Carver place = {p->block, 0};
    if (plan_layout(m, p, &place, err)) {
        plan_destroy(m, p);
        return -1;
    }
    for (int i = 0; i < L; i++) {
        const Layer *l = &m->layers[i];
        if (l->kind != LAYER_CONV) continue;
        p->cdesc[i].t = (ActTypes){.x = p->atype[l->in], .y = p->atype[l->out], .dx = p->gtype[l->in],
                                   .dy = p->gtype[l->out]};
        int rc = m->be->ops->conv_plan(m->be, &p->cdesc[i], &p->conv[i], err);
        if (rc) {
            error_prefix(err, "%s", m->layers[i].name);
            plan_destroy(m, p);
            return rc == BACKEND_OUT_OF_MEMORY ? PLAN_OUT_OF_MEMORY : -1;
        }
    }
    *out = p;
    return 0;
}

void plan_destroy(Model *m, Plan *p) {
    if (!p) return;
    if (p->conv)
        for (int i = 0; i < m->n_layers; i++)
            if (p->conv[i]) m->be->ops->conv_plan_free(m->be, p->conv[i]);
    if (p->block) m->be->ops->free(m->be, p->block);
    free(p->th);
    free(p->tw);
    free(p->act);
    free(p->grad);
    free(p->written);
    free(p->bn_mean);
    free(p->bn_invstd);
    free(p->argmax);
    free(p->mask);
    free(p->host_mask);
    free(p->skip);
    free(p->fuse);
    free(p->atype);
    free(p->gtype);
    free(p->conv);
    free(p->cdesc);
    free(p->pdesc);
    free(p);
}

/* ------------------------------------------------------------------ forward */

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

/* The stochastic-depth masks of this forward, uploaded to p->mask: in training each DROP layer draws from
 * the stream (rng_seed, RNG_ALGO, MODEL_RNG_DROP | layer, rng_step): 'sample' keeps sample k when
 * (1-p) + u_k >= 1 (torch: floor((1-p) + U[0,1)), 1 with probability 1-p, no 1/(1-p) rescale), 'block' keeps
 * the whole batch when u < 1-p (torch.bernoulli(1-p)) and otherwise marks the branch skipped; in eval the
 * factor is 1-p (all float32, as Composer's float32 drop_rate tensor). */
static void drop_prepare(Model *m, Plan *p, bool train) {
    memset(p->skip, 0, (size_t)m->n_layers);
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        if (l->kind != LAYER_DROP) continue;
        float keep = 1.0f - l->drop_p, *h = p->host_mask;
        if (!train) {
            for (int k = 0; k < p->n; k++) h[k] = keep;
        } else {
            Rng r;
            rng_init(&r, m->rng_seed, RNG_ALGO, MODEL_RNG_DROP | (uint64_t)i, m->rng_step);
            if (l->drop_p == 0.0f) { /* Composer skips the draw ('if self.drop_rate:'); bernoulli(1) is 1 */
                for (int k = 0; k < p->n; k++) h[k] = 1.0f;
            } else if (l->drop_block) {
                float v = rng_uniform(&r) < keep ? 1.0f : 0.0f;
                for (int k = 0; k < p->n; k++) h[k] = v;
            } else {
                for (int k = 0; k < p->n; k++) h[k] = keep + rng_uniform(&r) >= 1.0f ? 1.0f : 0.0f;
            }
            if (m->drop_mask_hook) m->drop_mask_hook(m->drop_mask_hook_ctx, m, i, p->n, h);
            if (l->drop_block && p->n > 0 && h[0] == 0.0f)
                for (int j = l->branch_first; j <= i; j++) p->skip[j] = 1;
        }
        m->be->ops->upload(m->be, p->mask[i], h, (size_t)p->n * sizeof *h);
    }
}

int model_forward(Model *m, Plan *p, bool train, Error *err) {
    Backend *be = m->be;
    const BackendOps *ops = be->ops;
    if (train && !p->train) return error_set(err, "model_forward: training needs a training plan");
    if (!train && p->bf16_store)
        return error_set(err, "model_forward: this training plan keeps activations in bf16; evaluate with an "
                              "evaluation plan");
    drop_prepare(m, p, train);
    double t0 = p->profile ? now_s() : 0;
    if (p->profile && m->be->ops->sync(m->be, err)) return -1;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        if (i > 0 && profile_layer(m, p, i - 1, 0, &t0, err)) return -1;
        const float *x = p->act[l->in];
        float *y = p->act[l->out];
        int64_t rows = (int64_t)p->n * p->th[l->in] * p->tw[l->in];
        int c = m->channels[l->in];
        if (p->skip[i]) { /* a dropped 'block' branch: its output is zero, its layers do not run */
            if (l->kind == LAYER_DROP) ops->zero(be, y, tensor_numel(m, p, l->out) * sizeof(float));
            continue;
        }
        switch (l->kind) {
        case LAYER_CONV:
            if (ops->conv_forward(be, p->conv[i], x, model_param_data(m, l->weight), y, err))
                return error_prefix(err, "%s forward", l->name);
            break;
        case LAYER_BN: {
            const float *g = model_param_data(m, l->weight), *b = model_param_data(m, l->bias);
            float *rm = model_param_data(m, l->running_mean), *rv = model_param_data(m, l->running_var);
            if (train && rows < 2)
                return error_set(err, "%s: batch norm sees 1 value per channel in training (micro-batch %d at "
                                      "%dx%d is too small; use a larger batch)", l->name, p->n, p->h, p->w);
            int64_t hw = (int64_t)p->th[l->in] * p->tw[l->in];
            int lo = run_out(m, p, i), in2 = run_in2(m, p, i); /* in2: the ADD's other input with FUSE_ADD_RELU */
            y = p->act[lo];
            const float *skip = in2 >= 0 ? p->act[in2] : NULL;
            ActTypes t = {.x = p->atype[l->in], .y = p->atype[lo], .skip = in2 >= 0 ? p->atype[in2] : ACT_F32};
            if (train) {
                if (p->fuse[i] == FUSE_NONE)
                    ops->bn_forward_train(be, p->n, hw, c, x, g, b, y, p->bn_mean[i], p->bn_invstd[i], rm, rv,
                                          BN_MOMENTUM, BN_EPS);
                else
                    ops->bn_relu_forward_train(be, p->n, hw, c, t, x, skip, g, b, y, p->bn_mean[i],
                                               p->bn_invstd[i], rm, rv, BN_MOMENTUM, BN_EPS);
                m->counters[m->params[l->num_batches_tracked].offset]++;
            } else { /* evaluating with a training plan: the fused layers one by one, in y */
                ops->bn_forward_eval(be, p->n, hw, c, x, g, b, rm, rv, BN_EPS, y);
                if (skip) ops->add(be, rows * c, y, skip, y);
                if (p->fuse[i] != FUSE_NONE) ops->relu_forward(be, rows * c, y, y);
            }
            break;
        }
        case LAYER_RELU:
            if (p->fuse[i] != FUSE_DONE) ops->relu_forward(be, rows * c, x, y);
            break;
        case LAYER_MAXPOOL:
            ops->maxpool_forward(be, &p->pdesc[i], x, y, p->argmax[i]);
            break;
        case LAYER_AVGPOOL:
            ops->avgpool_forward(be, p->n, p->th[l->in] * p->tw[l->in], c, x, y);
            break;
        case LAYER_ADD:
            if (i > 0 && p->fuse[i - 1] == FUSE_ADD_RELU) break; /* run by the BN before it */
            if (p->fuse[i] != FUSE_RELU) {
                ops->add(be, rows * c, x, p->act[l->in2], y);
            } else if (ops->add_relu) {
                ops->add_relu(be, rows * c, x, p->act[l->in2], p->act[m->layers[i + 1].out]);
            } else {
                y = p->act[m->layers[i + 1].out];
                ops->add(be, rows * c, x, p->act[l->in2], y);
                ops->relu_forward(be, rows * c, y, y);
            }
            break;
        case LAYER_FC:
            if (ops->fc_forward(be, p->n, c, l->cout, x, model_param_data(m, l->weight),
                                l->bias >= 0 ? model_param_data(m, l->bias) : NULL, y, err))
                return error_prefix(err, "%s forward", l->name);
            break;
        case LAYER_BLUR:
            ops->blur_forward(be, &p->pdesc[i], x, y);
            break;
        case LAYER_DROP:
            ops->sample_scale(be, p->n, rows / (p->n ? p->n : 1) * c, p->mask[i], x, y);
            break;
        case LAYER_SIGMOID:
            ops->sigmoid_forward(be, rows * c, x, y);
            break;
        case LAYER_CHANNEL_SCALE:
            ops->channel_scale_forward(be, p->n, p->th[l->in] * p->tw[l->in], c, x, p->act[l->in2], y);
            break;
        case LAYER_KIND_COUNT:
            break;
        }
    }
    if (m->n_layers && profile_layer(m, p, m->n_layers - 1, 0, &t0, err)) return -1;
    return 0;
}

/* ------------------------------------------------------------------ backward */

/* Where to write the gradient of tensor t: in place the first time, else the scratch buffer. */
static float *grad_target(Plan *p, int t) { return p->written[t] ? p->scratch : p->grad[t]; }

/* After a layer wrote the gradient of t into grad_target(p, t): add the scratch in, or mark t written. */
static void grad_finish(Model *m, Plan *p, int t) {
    if (p->written[t])
        m->be->ops->axpy(m->be, (int64_t)tensor_numel(m, p, t), 1.0f, p->scratch, p->grad[t]);
    p->written[t] = 1;
}

/* grad_finish for a layer i whose backward wrote t's second gradient part into the scratch, where the next
 * layer backward runs (i - 1) is a ReLU with output t that the ADD at i - 2 runs (FUSE_RELU) and nothing else
 * reads t's gradient: the addition is left to that ADD (p->pending = t), which folds it into the ReLU's mask
 * (relu_backward_add: one pass over the block output's gradient instead of two). */
static void grad_finish_or_defer(Model *m, Plan *p, int i, int t) {
    const Layer *r = i >= 2 ? &m->layers[i - 1] : NULL;
    if (p->written[t] && m->be->ops->relu_backward_add && r && r->kind == LAYER_RELU && r->out == t &&
        p->fuse[i - 1] == FUSE_DONE && m->layers[i - 2].kind == LAYER_ADD && p->fuse[i - 2] == FUSE_RELU &&
        m->layers[i - 2].out == r->in && !p->skip[i - 2] && p->gtype[t] == ACT_F32) {
        p->pending = t;
        return;
    }
    grad_finish(m, p, t);
}

/* Where to write a parameter's gradient: directly, or into wscratch when accumulating. */
static float *pgrad_target(Model *m, Plan *p, int param, bool accumulate) {
    return accumulate ? p->wscratch : model_param_grad(m, param);
}

static void pgrad_finish(Model *m, Plan *p, int param, bool accumulate) {
    if (accumulate)
        m->be->ops->axpy(m->be, m->params[param].numel, 1.0f, p->wscratch, model_param_grad(m, param));
}

int model_backward(Model *m, Plan *p, bool accumulate, Error *err) {
    Backend *be = m->be;
    const BackendOps *ops = be->ops;
    if (!p->train) return error_set(err, "model_backward: needs a training plan");
    memset(p->written, 0, (size_t)m->n_tensors);
    p->written[model_output(m)] = 1;
    p->pending = -1;
    double t0 = p->profile ? now_s() : 0;
    if (p->profile && m->be->ops->sync(m->be, err)) return -1;
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const Layer *l = &m->layers[i];
        if (i < m->n_layers - 1 && profile_layer(m, p, i + 1, 1, &t0, err)) return -1;
        const float *dy = p->grad[l->out];
        const float *x = p->act[l->in];
        int64_t rows = (int64_t)p->n * p->th[l->in] * p->tw[l->in];
        int c = m->channels[l->in];
        bool need_dx = l->in != 0;
        if (p->skip[i]) { /* a dropped 'block' branch: no gradient flows; its parameters' gradients are 0 */
            int params[2] = {l->weight, l->bias};
            for (int k = 0; k < 2 && !accumulate; k++)
                if (params[k] >= 0 && m->params[params[k]].kind == PARAM_TRAINABLE)
                    ops->zero(be, model_param_grad(m, params[k]), (size_t)m->params[params[k]].numel * sizeof(float));
            continue;
        }
        switch (l->kind) {
        case LAYER_CONV: {
            const float *w = model_param_data(m, l->weight);
            if (need_dx) {
                if (ops->conv_backward_data(be, p->conv[i], dy, w, grad_target(p, l->in), err))
                    return error_prefix(err, "%s backward-data", l->name);
                grad_finish_or_defer(m, p, i, l->in);
            }
            if (ops->conv_backward_weights(be, p->conv[i], x, dy, pgrad_target(m, p, l->weight, accumulate), err))
                return error_prefix(err, "%s backward-weights", l->name);
            pgrad_finish(m, p, l->weight, accumulate);
            break;
        }
        case LAYER_BN: {
            /* dgamma and dbeta go through wscratch one after the other when accumulating. */
            float *dx = grad_target(p, l->in);
            float *dg = accumulate ? p->wscratch : model_param_grad(m, l->weight);
            float *db = accumulate ? p->wscratch + c : model_param_grad(m, l->bias);
            if (p->fuse[i] != FUSE_NONE) {
                /* after FUSE_ADD_RELU the ADD applied the ReLU's mask: a plain BN backward of the ADD's gradient */
                bool relu = p->fuse[i] == FUSE_RELU;
                int lo = relu ? run_out(m, p, i) : l->out;
                ActTypes t = {.x = p->atype[l->in], .y = p->atype[lo], .dy = p->gtype[lo], .dx = p->gtype[l->in]};
                ops->bn_relu_backward(be, p->n, (int64_t)p->th[l->in] * p->tw[l->in], c, t, x,
                                      relu ? p->act[lo] : NULL, p->grad[lo], model_param_data(m, l->weight),
                                      p->bn_mean[i], p->bn_invstd[i], dx, dg, db);
            } else {
                ops->bn_backward(be, p->n, (int64_t)p->th[l->in] * p->tw[l->in], c, x, dy, model_param_data(m, l->weight), p->bn_mean[i],
                                 p->bn_invstd[i], dx, dg, db);
            }
            if (accumulate) {
                ops->axpy(be, c, 1.0f, p->wscratch, model_param_grad(m, l->weight));
                ops->axpy(be, c, 1.0f, p->wscratch + c, model_param_grad(m, l->bias));
            }
            grad_finish(m, p, l->in);
            break;
        }
        case LAYER_RELU:
            if (p->fuse[i] == FUSE_DONE) break; /* the layer that runs it does this */
            ops->relu_backward(be, rows * c, p->act[l->out], dy, grad_target(p, l->in));
            grad_finish(m, p, l->in);
            break;
        case LAYER_MAXPOOL:
            ops->maxpool_backward(be, &p->pdesc[i], dy, p->argmax[i], grad_target(p, l->in));
            grad_finish(m, p, l->in);
            break;
        case LAYER_AVGPOOL:
            ops->avgpool_backward(be, p->n, p->th[l->in] * p->tw[l->in], c, dy, grad_target(p, l->in));
            grad_finish(m, p, l->in);
            break;
        case LAYER_ADD: {
            /* both inputs get the output's gradient; fused with the ReLU after it, the first gets the masked
             * gradient straight from relu_backward and the second a copy of that */
            size_t bytes = (size_t)rows * c * sizeof(float);
            int ins[2] = {l->in, l->in2};
            const float *src = dy;
            for (int k = 0; k < 2; k++) {
                if (ins[k] == 0) continue;
                float *to = grad_target(p, ins[k]);
                if (p->fuse[i] == FUSE_RELU && src == dy) {
                    const Layer *r = &m->layers[i + 1];
                    if (p->pending == r->out) {
                        ops->relu_backward_add(be, rows * c, (ActType)p->atype[r->out], p->act[r->out],
                                               p->grad[r->out], p->scratch, to);
                        p->pending = -1;
                    } else if (p->atype[r->out] == ACT_BF16)
                        ops->relu_backward_bf16(be, rows * c, p->act[r->out], p->grad[r->out], to);
                    else
                        ops->relu_backward(be, rows * c, p->act[r->out], p->grad[r->out], to);
                } else if (to != src) {
                    ops->copy(be, to, src, bytes);
                }
                src = to;
                grad_finish(m, p, ins[k]);
            }
            break;
        }
        case LAYER_FC: {
            int64_t nw = m->params[l->weight].numel;
            bool has_b = l->bias >= 0;
            float *dw = accumulate ? p->wscratch : model_param_grad(m, l->weight);
            float *db = !has_b ? NULL : accumulate ? p->wscratch + nw : model_param_grad(m, l->bias);
            if (ops->fc_backward(be, p->n, c, l->cout, x, model_param_data(m, l->weight), dy,
                                 need_dx ? grad_target(p, l->in) : NULL, dw, db, err))
                return error_prefix(err, "%s backward", l->name);
            if (accumulate) {
                ops->axpy(be, nw, 1.0f, p->wscratch, model_param_grad(m, l->weight));
                if (has_b) ops->axpy(be, l->cout, 1.0f, p->wscratch + nw, model_param_grad(m, l->bias));
            }
            if (need_dx) grad_finish(m, p, l->in);
            break;
        }
        case LAYER_BLUR:
            if (!need_dx) break;
            ops->blur_backward(be, &p->pdesc[i], dy, grad_target(p, l->in));
            grad_finish(m, p, l->in);
            break;
        case LAYER_DROP:
            if (!need_dx) break;
            ops->sample_scale(be, p->n, rows / (p->n ? p->n : 1) * c, p->mask[i], dy, grad_target(p, l->in));
            grad_finish(m, p, l->in);
            break;
        case LAYER_SIGMOID:
            if (!need_dx) break;
            ops->sigmoid_backward(be, rows * c, p->act[l->out], dy, grad_target(p, l->in));
            grad_finish(m, p, l->in);
            break;
        case LAYER_CHANNEL_SCALE: {
            /* one input at a time: each may need the shared scratch buffer */
            int hw = p->th[l->in] * p->tw[l->in];
            const float *s = p->act[l->in2];
            if (need_dx) {
                ops->channel_scale_backward(be, p->n, hw, c, x, s, dy, grad_target(p, l->in), NULL);
                grad_finish(m, p, l->in);
            }
            if (l->in2 != 0) {
                ops->channel_scale_backward(be, p->n, hw, c, x, s, dy, NULL, grad_target(p, l->in2));
                grad_finish(m, p, l->in2);
            }
            break;
        }
        case LAYER_KIND_COUNT:
            break;
        }
    }
    if (p->pending >= 0)
        return error_set(err, "model_backward: the gradient of tensor %d was left unadded", p->pending);
    if (m->n_layers && profile_layer(m, p, 0, 1, &t0, err)) return -1;
    return 0;
}
