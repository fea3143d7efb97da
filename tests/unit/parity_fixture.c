/* parity_fixture.c — runs one PyTorch parity fixture (written by tools/make_fixtures.py) on a backend: builds
 * the fixture's ResNet (with Composer's surgery when the fixture has any), loads its initial state_dict (Composer's
 * keys), checks the eval-mode logits when present, then trains the fixture's steps — feeding its
 * stochastic-depth masks when present — and checks logits and loss (relative 1e-4), every gradient and the BN
 * running statistics after the first step, the weights after the last and the num_batches_tracked counters
 * (relative 1e-3). Shared by test_parity.c and test_surgery.c. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"
#include "io/safetensors.h"
#include "model/resnet.h"
#include "parity_fixture.h"
#include "testutil.h"
#include "train/optim.h"

typedef struct Fixture {
    SafeTensors *st;
    cJSON *cfg;
} Fixture;

static const StTensor *need(const Fixture *f, const char *name) {
    const StTensor *t = st_get(f->st, name);
    if (!t) fprintf(stderr, "fixture lacks %s\n", name);
    assert_non_null(t);
    return t;
}

static float *read_f32(const Fixture *f, const char *name, int64_t *numel) {
    const StTensor *t = need(f, name);
    float *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
    Error err;
    assert_int_equal(st_read_f32(t, v, t->numel, &err), 0);
    if (numel) *numel = t->numel;
    return v;
}

static double cfg_num(const cJSON *o, const char *key) { return cJSON_GetObjectItem(o, key)->valuedouble; }
static const char *cfg_str(const cJSON *o, const char *key) { return cJSON_GetObjectItem(o, key)->valuestring; }
static bool cfg_true(const cJSON *o, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItem(o, key)); }

/* The fixture's key of parameter p: Composer's (the alias) where surgery renamed it. */
static const char *key_of(const Param *p) { return p->alias[0] ? p->alias : p->name; }

/* Compares every trainable parameter's (or float buffer's) value in the model with "<prefix><key>". */
static void compare_params(const Fixture *f, Model *m, const char *prefix, bool grads, bool buffers_only,
                           double tol) {
    char name[192];
    int bad = 0;
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        if (p->kind == PARAM_COUNTER) continue;
        if (buffers_only && p->kind != PARAM_BUFFER) continue;
        if (grads && p->kind != PARAM_TRAINABLE) continue;
        snprintf(name, sizeof name, "%s%s", prefix, key_of(p));
        int64_t n;
        float *ref = read_f32(f, name, &n);
        assert_int_equal(n, p->numel);
        float *got = malloc((size_t)n * sizeof *got);
        const float *src = grads ? model_param_grad(m, i) : model_param_data(m, i);
        m->be->ops->download(m->be, got, src, (size_t)n * sizeof *got);
        double e = tu_rel_error(got, ref, (size_t)n);
        if (e > tol) fprintf(stderr, "%s: relative error %.3g > %.3g\n", name, e, tol);
        bad += e > tol;
        free(got);
        free(ref);
    }
    assert_int_equal(bad, 0); /* every mismatch is printed above before this fails */
}

/* The fixture's stochastic-depth masks [blocks, n] of the current step, handed to DROP layers in order. */
typedef struct MaskFeed {
    float *mask; /* [blocks, n] */
    int blocks;
} MaskFeed;

static void feed_mask(void *ctx, const Model *m, int layer, int n, float *mask) {
    MaskFeed *f = ctx;
    int ordinal = 0;
    for (int i = 0; i < layer; i++) ordinal += m->layers[i].kind == LAYER_DROP;
    assert_true(ordinal < f->blocks);
    memcpy(mask, f->mask + (size_t)ordinal * n, (size_t)n * sizeof *mask);
}

/* ResnetSurgery from the fixture's "surgery" object (names as in ResnetSurgery; methods as strings). */
static ResnetSurgery surgery_of(const cJSON *s) {
    ResnetSurgery r = {0};
    if (cfg_true(s, "blurpool")) {
        r.blurpool = true;
        r.blur_convs = cfg_true(s, "blur_convs");
        r.blur_maxpools = cfg_true(s, "blur_maxpools");
        r.blur_first = cfg_true(s, "blur_first");
        r.blur_min_channels = (int)cfg_num(s, "blur_min_channels");
    }
    if (cfg_true(s, "stochastic_depth")) {
        r.stochastic_depth = true;
        r.sd_method = strcmp(cfg_str(s, "sd_method"), "sample") == 0 ? 1 : 0;
        r.sd_drop_rate = cfg_num(s, "sd_drop_rate");
        r.sd_distribution = strcmp(cfg_str(s, "sd_distribution"), "linear") == 0 ? 1 : 0;
    }
    if (cfg_true(s, "squeeze_excite")) {
        r.squeeze_excite = true;
        r.se_latent_channels = cfg_num(s, "se_latent_channels");
        r.se_min_channels = (int)cfg_num(s, "se_min_channels");
    }
    return r;
}

void parity_run_fixture(const char *file, const char *backend) {
    Fixture f;
    Error err = {{0}};
    if (st_open(tu_fixture(file), &f.st, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(f.st);
    f.cfg = cJSON_Parse(st_metadata(f.st, "config"));
    assert_non_null(f.cfg);

    char model_name[64];
    snprintf(model_name, sizeof model_name, "%s", cfg_str(f.cfg, "model_name"));
    ResnetOptions o = {.model_name = model_name, .num_classes = (int)cfg_num(f.cfg, "num_classes"), .groups = 1,
                       .width_per_group = 64, .width = (int)cfg_num(f.cfg, "width"),
                       .stem = strcmp(cfg_str(f.cfg, "stem"), "cifar") == 0 ? STEM_CIFAR : STEM_IMAGENET};
    const cJSON *layers = cJSON_GetObjectItem(f.cfg, "layers");
    o.layers.n = cJSON_GetArraySize(layers);
    for (int i = 0; i < o.layers.n; i++) o.layers.v[i] = cJSON_GetArrayItem(layers, i)->valuedouble;
    ResnetSurgery sg = surgery_of(cJSON_GetObjectItem(f.cfg, "surgery"));
    int n = (int)cfg_num(f.cfg, "batch"), res = (int)cfg_num(f.cfg, "res"), c = (int)cfg_num(f.cfg, "in_channels");
    int classes = o.num_classes;
    LossKind loss_kind = strcmp(cfg_str(f.cfg, "loss"), "soft_cross_entropy") == 0 ? LOSS_SOFT_CROSS_ENTROPY
                                                                                 : LOSS_BCE_WITH_LOGITS;
    Backend *be;
    assert_int_equal(backend_create(backend, 2, &be, &err), 0);
    Model m;
    if (resnet_build_surgery(&o, c, &sg, &m, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(model_alloc(&m, be, &err), 0);

    /* the fixture holds exactly the model's state_dict (Composer's keys) */
    int n_init = 0;
    for (int i = 0; i < st_count(f.st); i++)
        if (strncmp(st_at(f.st, i)->name, "init.", 5) == 0) n_init++;
    assert_int_equal(n_init, m.n_params);
    char name[192];
    for (int i = 0; i < m.n_params; i++) {
        const Param *p = &m.params[i];
        snprintf(name, sizeof name, "init.%s", key_of(p));
        const StTensor *t = need(&f, name);
        assert_int_equal(t->ndim, p->ndim);
        for (int d = 0; d < p->ndim; d++) assert_int_equal(t->shape[d], p->shape[d]);
        if (p->kind == PARAM_COUNTER) {
            memcpy(&m.counters[p->offset], t->data, sizeof(int64_t));
            continue;
        }
        float *v = read_f32(&f, name, NULL);
        be->ops->upload(be, model_param_data(&m, i), v, (size_t)p->numel * sizeof *v);
        free(v);
    }
    float *x = read_f32(&f, "x", NULL), *target_h = read_f32(&f, "target", NULL);
    int out = model_output(&m);
    float *logits = malloc((size_t)n * classes * sizeof(float));

    /* eval mode at the initial weights: branches scaled by 1-p */
    if (st_get(f.st, "eval_logits")) {
        Plan *pe;
        assert_int_equal(plan_create(&m, n, res, res, false, &pe, &err), 0);
        be->ops->upload(be, pe->act[0], x, (size_t)n * res * res * c * sizeof *x);
        assert_int_equal(model_forward(&m, pe, false, &err), 0);
        be->ops->download(be, logits, pe->act[out], (size_t)n * classes * sizeof(float));
        float *ref_eval = read_f32(&f, "eval_logits", NULL);
        double e = tu_rel_error(logits, ref_eval, (size_t)n * classes);
        if (e > 1e-4) fprintf(stderr, "%s/%s: eval logits relative error %.3g\n", file, backend, e);
        assert_true(e <= 1e-4);
        free(ref_eval);
        plan_destroy(&m, pe);
    }

    Plan *plan;
    assert_int_equal(plan_create(&m, n, res, res, true, &plan, &err), 0);
    float *target = be->ops->alloc(be, (size_t)n * classes * sizeof(float));
    float *losses = be->ops->alloc(be, (size_t)n * sizeof(float));
    be->ops->upload(be, target, target_h, (size_t)n * classes * sizeof(float));
    float *ref_losses = read_f32(&f, "losses", NULL);
    const cJSON *oj = cJSON_GetObjectItem(f.cfg, "optimizer");
    SgdOptions so = {.lr = cfg_num(oj, "lr"), .momentum = cfg_num(oj, "momentum"),
                     .dampening = cfg_num(oj, "dampening"), .weight_decay = cfg_num(oj, "weight_decay"),
                     .nesterov = cJSON_IsTrue(cJSON_GetObjectItem(oj, "nesterov"))};
    Choice ch = {.entry = registry_find(&OPTIMIZER_REGISTRY, cfg_str(oj, "name")), .options = &so};
    assert_non_null(ch.entry);
    Optimizer opt;
    assert_int_equal(optim_create(&opt, &ch, m.n_weights, be, &err), 0);
    const cJSON *lrs = cJSON_GetObjectItem(f.cfg, "lrs");
    float *host_losses = malloc((size_t)n * sizeof *host_losses);
    MaskFeed feed = {NULL, model_count_layers(&m, LAYER_DROP)};

    for (int step = 0; step < cJSON_GetArraySize(lrs); step++) {
        char mk[32];
        snprintf(mk, sizeof mk, "mask.%d", step);
        if (st_get(f.st, mk)) {
            int64_t nm;
            free(feed.mask);
            feed.mask = read_f32(&f, mk, &nm);
            assert_int_equal(nm, (int64_t)feed.blocks * n);
            m.drop_mask_hook = feed_mask;
            m.drop_mask_hook_ctx = &feed;
        }
        m.rng_step = (uint64_t)step;
        be->ops->upload(be, plan->act[0], x, (size_t)n * res * res * c * sizeof *x);
        assert_int_equal(model_forward(&m, plan, true, &err), 0);
        be->ops->loss_forward_backward(be, loss_kind, n, classes, plan->act[out], target, 1.0f / n, losses,
                                       plan->grad[out]);
        be->ops->download(be, host_losses, losses, (size_t)n * sizeof(float));
        double l = 0;
        for (int i = 0; i < n; i++) l += host_losses[i];
        l /= n;
        double le = fabs(l - ref_losses[step]) / fabs(ref_losses[step]);
        if (le > 1e-4) fprintf(stderr, "%s/%s step %d: loss %.8g vs PyTorch %.8g\n", file, backend, step, l,
                               ref_losses[step]);
        assert_true(le <= 1e-4);
        assert_int_equal(model_backward(&m, plan, false, &err), 0);
        if (step == 0) {
            float *ref_logits = read_f32(&f, "logits", NULL);
            be->ops->download(be, logits, plan->act[out], (size_t)n * classes * sizeof(float));
            double e = tu_rel_error(logits, ref_logits, (size_t)n * classes);
            if (e > 1e-4) fprintf(stderr, "%s/%s: logits relative error %.3g\n", file, backend, e);
            assert_true(e <= 1e-4);
            free(ref_logits);
            compare_params(&f, &m, "grad.", true, false, 1e-3);
            compare_params(&f, &m, "after1.", false, true, 1e-3);
        }
        optim_step(&opt, be, m.weights, m.grads, cJSON_GetArrayItem(lrs, step)->valuedouble);
    }
    compare_params(&f, &m, "step3.", false, false, 1e-3);
    /* num_batches_tracked: the fixture's init count plus one per train-mode forward that ran the BN (a dropped
     * block's do not run) */
    for (int i = 0; i < m.n_params; i++) {
        const Param *p = &m.params[i];
        if (p->kind != PARAM_COUNTER) continue;
        snprintf(name, sizeof name, "step3.%s", key_of(p));
        int64_t ref;
        memcpy(&ref, need(&f, name)->data, sizeof ref);
        if (m.counters[p->offset] != ref) fprintf(stderr, "%s: %lld vs %lld\n", name,
                                                  (long long)m.counters[p->offset], (long long)ref);
        assert_int_equal(m.counters[p->offset], ref);
    }

    free(feed.mask);
    free(host_losses);
    free(logits);
    free(x);
    free(target_h);
    free(ref_losses);
    be->ops->free(be, target);
    be->ops->free(be, losses);
    optim_destroy(&opt, be);
    plan_destroy(&m, plan);
    model_free(&m);
    backend_destroy(be);
    cJSON_Delete(f.cfg);
    st_close(f.st);
}
