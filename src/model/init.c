/* init.c — torchvision's and Composer's weight initializers (see init.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/rng.h"
#include "model/init.h"

typedef enum InitKind {
    INIT_KAIMING_NORMAL, INIT_KAIMING_UNIFORM, INIT_BN_UNIFORM, INIT_BN_ONES, INIT_XAVIER_NORMAL,
    INIT_XAVIER_UNIFORM, INIT_LINEAR_LOG_CONSTANT_BIAS, INIT_COUNT
} InitKind;

static const char *const INIT_NAMES[INIT_COUNT] = {
    "kaiming_normal", "kaiming_uniform", "bn_uniform", "bn_ones", "xavier_normal", "xavier_uniform",
    "linear_log_constant_bias",
};

static int init_lookup(const char *name) {
    for (int i = 0; i < INIT_COUNT; i++)
        if (strcasecmp(name, INIT_NAMES[i]) == 0) return i;
    return -1;
}

int init_check_names(const ResnetOptions *o, Error *err) {
    for (int i = 0; i < o->initializers.n; i++)
        if (init_lookup(o->initializers.v[i]) < 0)
            return error_set(err, "initializers: unknown initializer '%s' (choose from KAIMING_NORMAL, "
                                  "KAIMING_UNIFORM, BN_UNIFORM, BN_ONES, XAVIER_NORMAL, XAVIER_UNIFORM, "
                                  "LINEAR_LOG_CONSTANT_BIAS)", o->initializers.v[i]);
    return 0;
}

/* Fan-in and fan-out as torch.nn.init computes them: dim 1 (or 0) times the receptive field. */
static void fans(const Param *p, double *fan_in, double *fan_out) {
    double rf = p->ndim > 2 ? (double)(p->shape[2] * p->shape[3]) : 1.0;
    *fan_in = (double)p->shape[1] * rf;
    *fan_out = (double)p->shape[0] * rf;
}

static void fill_normal(float *x, int64_t n, double std, Rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(rng_normal(r) * std);
}

static void fill_uniform(float *x, int64_t n, double lo, double hi, Rng *r) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng_uniform_double(r));
}

static void fill_const(float *x, int64_t n, float v) {
    for (int64_t i = 0; i < n; i++) x[i] = v;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The kind of layer a parameter belongs to. */
static LayerKind owner(const Model *m, const Param *p) { return m->layers[p->layer].kind; }

/* Applies one initializer (or torchvision's defaults when kind < 0) to parameter i, values in host x. */
static void apply_init(const Model *m, int i, int kind, float *x, uint64_t seed, int round,
                       const ResnetOptions *o, const char *last_bn) {
    const Param *p = &m->params[i];
    LayerKind lk = owner(m, p);
    bool is_weight = ends_with(p->name, ".weight"), is_bias = ends_with(p->name, ".bias");
    Rng r;
    rng_init(&r, seed, RNG_INIT, (uint64_t)round, (uint64_t)i);
    double fi, fo;
    if (kind < 0) { /* torchvision defaults */
        if (lk == LAYER_CONV && is_weight) {
            fans(p, &fi, &fo);
            fill_normal(x, p->numel, sqrt(2.0 / fo), &r);
        } else if (lk == LAYER_BN && is_weight) {
            bool zero = o->zero_init_residual && last_bn && strncmp(p->name, last_bn, strlen(last_bn)) == 0;
            fill_const(x, p->numel, zero ? 0.0f : 1.0f);
        } else if (lk == LAYER_BN && is_bias) {
            fill_const(x, p->numel, 0.0f);
        } else if (lk == LAYER_FC) {
            double in = (double)m->params[m->layers[p->layer].weight].shape[1], b = 1.0 / sqrt(in);
            fill_uniform(x, p->numel, -b, b, &r);
        }
        return;
    }
    switch ((InitKind)kind) {
    case INIT_KAIMING_NORMAL:
    case INIT_KAIMING_UNIFORM:
    case INIT_XAVIER_NORMAL:
    case INIT_XAVIER_UNIFORM:
        if ((lk != LAYER_CONV && lk != LAYER_FC) || !is_weight) return;
        fans(p, &fi, &fo);
        if (kind == INIT_KAIMING_NORMAL) fill_normal(x, p->numel, sqrt(2.0 / fi), &r);
        else if (kind == INIT_KAIMING_UNIFORM) fill_uniform(x, p->numel, -sqrt(6.0 / fi), sqrt(6.0 / fi), &r);
        else if (kind == INIT_XAVIER_NORMAL) fill_normal(x, p->numel, sqrt(2.0 / (fi + fo)), &r);
        else fill_uniform(x, p->numel, -sqrt(6.0 / (fi + fo)), sqrt(6.0 / (fi + fo)), &r);
        return;
    case INIT_BN_UNIFORM:
    case INIT_BN_ONES:
        if (lk != LAYER_BN) return;
        if (is_weight) {
            if (kind == INIT_BN_UNIFORM) fill_uniform(x, p->numel, 0.0, 1.0, &r);
            else fill_const(x, p->numel, 1.0f);
        } else if (is_bias) {
            fill_const(x, p->numel, 0.0f);
        }
        return;
    case INIT_LINEAR_LOG_CONSTANT_BIAS:
        if (lk == LAYER_FC && is_bias) fill_const(x, p->numel, (float)-log((double)m->num_classes));
        return;
    default:
        return;
    }
}

/* The name prefix of the last BN of the block that owns parameter name ("layer1.0.bn3"), if any. */
static void last_bn_of_block(const Model *m, const char *name, char *out, size_t size) {
    out[0] = 0;
    if (strncmp(name, "layer", 5) != 0) return;
    const char *dot1 = strchr(name, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2) return;
    size_t plen = (size_t)(dot2 - name);
    char cand[96];
    snprintf(cand, sizeof cand, "%.*s.bn3.weight", (int)plen, name);
    if (model_find_param(m, cand) < 0) snprintf(cand, sizeof cand, "%.*s.bn2.weight", (int)plen, name);
    snprintf(out, size, "%.*s", (int)(strlen(cand) - strlen(".weight")), cand);
}

int init_weights(Model *m, const ResnetOptions *o, uint64_t seed, Error *err) {
    if (init_check_names(o, err)) return -1;
    int64_t max = 1;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].numel > max) max = m->params[i].numel;
    float *x = malloc((size_t)max * sizeof *x);
    if (!x) return error_set(err, "out of memory");
    Backend *be = m->be;
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        if (p->kind == PARAM_COUNTER) {
            m->counters[p->offset] = 0;
            continue;
        }
        if (p->kind == PARAM_BUFFER) {
            fill_const(x, p->numel, strstr(p->name, "running_var") ? 1.0f : 0.0f);
        } else {
            char last_bn[96];
            last_bn_of_block(m, p->name, last_bn, sizeof last_bn);
            bool is_last_bn = last_bn[0] && strncmp(p->name, last_bn, strlen(last_bn)) == 0 &&
                              p->name[strlen(last_bn)] == '.';
            apply_init(m, i, -1, x, seed, 0, o, is_last_bn ? last_bn : NULL);
            /* layers added by model surgery (SqueezeExcite's FCs) appear at Composer's INIT, after the model's
             * initializers ran: they keep PyTorch's default (nn.Linear: U(+-1/sqrt(fan_in))) */
            bool surgery = m->layers[p->layer].surgery;
            for (int k = 0; k < o->initializers.n && !surgery; k++)
                apply_init(m, i, init_lookup(o->initializers.v[k]), x, seed, k + 1, o, NULL);
        }
        be->ops->upload(be, model_param_data(m, i), x, (size_t)p->numel * sizeof *x);
    }
    free(x);
    return 0;
}
