/* test_surgery.c — Composer 0.9's model surgery (BlurPool, StochasticDepth, SqueezeExcite) as ResNet building
 * options.
 *
 * Parity: fixtures written by tools/make_fixtures.py (parity_surgery_*) hold a small network after Composer's
 * surgery (reimplemented from Composer's source in PyTorch), with Composer's state_dict keys: the weights, a
 * batch, the logits, loss and every gradient of one training step, the BN statistics after it and the weights
 * after 3 optimizer steps; stochastic-depth fixtures add the masks each step used (fed to the model through
 * Model.drop_mask_hook) and the eval-mode logits. Each is checked on the ref and the cpu backend with
 * test_parity.c's tolerances (1e-4 logits and loss, 1e-3 gradients, statistics and weights).
 *
 * Structure: ResNet-50 with the recipe's BlurPool has 6 blurred convs and 1 blurred max-pool; with Composer's
 * SqueezeExcite defaults it has 42 SE blocks and 28,768,296 parameters (counted by the fixture script's
 * Composer modules on torchvision's resnet50); linear stochastic depth 0.1 gives the 16th block p = 0.1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/schema.h"
#include "model/init.h"
#include "model/resnet.h"
#include "parity_fixture.h"
#include "testutil.h"

/* ------------------------------------------------------------------ parity against PyTorch (parity_fixture.c) */

#define PARITY(fn, file)                                                   \
    static void fn##_ref(void **s) { (void)s; parity_run_fixture(file, "ref"); } \
    static void fn##_cpu(void **s) { (void)s; parity_run_fixture(file, "cpu"); }
PARITY(test_blurpool, "parity_surgery_blurpool.safetensors")
PARITY(test_blurpool_late, "parity_surgery_blurpool_late.safetensors")
PARITY(test_sd_sample, "parity_surgery_sd_sample.safetensors")
PARITY(test_sd_block, "parity_surgery_sd_block.safetensors")
PARITY(test_se, "parity_surgery_se.safetensors")

/* ------------------------------------------------------------------ structure */

static ResnetOptions options(const char *name, int classes) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s", name);
    ResnetOptions o = {.model_name = buf, .num_classes = classes, .groups = 1, .width_per_group = 64};
    return o;
}

/* The recipes' BlurPool: replace_convs, replace_maxpools, blur_first, min_channels 16. */
static ResnetSurgery recipe_blurpool(void) {
    ResnetSurgery s = {.blurpool = true, .blur_convs = true, .blur_maxpools = true, .blur_first = true,
                       .blur_min_channels = 16};
    return s;
}

static void test_resnet50_blurpool_structure(void **state) {
    (void)state;
    Error err;
    ResnetOptions o = options("resnet50", 1000);
    ResnetSurgery s = recipe_blurpool();
    Model m, plain;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    assert_int_equal(resnet_build(&o, 3, &plain, &err), 0);
    /* no parameters change: same names, shapes and count as torchvision */
    assert_int_equal(m.n_params, plain.n_params);
    for (int i = 0; i < m.n_params; i++) assert_string_equal(m.params[i].name, plain.params[i].name);
    assert_int_equal(model_num_parameters(&m), 25557032);
    assert_int_equal(model_count_layers(&m, LAYER_BLUR), 7);
    const char *blurred[] = {"layer2.0.conv2", "layer2.0.downsample.0", "layer3.0.conv2", "layer3.0.downsample.0",
                             "layer4.0.conv2", "layer4.0.downsample.0"};
    int convs = 0, pools = 0;
    for (int i = 0; i < m.n_layers; i++) {
        const Layer *l = &m.layers[i];
        if (l->kind != LAYER_BLUR) continue;
        assert_true(i + 1 < m.n_layers && i > 0);
        const Layer *next = &m.layers[i + 1], *prev = &m.layers[i - 1];
        if (prev->kind != LAYER_MAXPOOL) { /* blur (stride 1) before the strided conv */
            assert_int_equal(next->kind, LAYER_CONV);
            assert_int_equal(l->stride, 1);
            assert_int_equal(next->stride, 2);
            assert_int_equal(next->in, l->out);
            bool found = false;
            for (int k = 0; k < 6; k++) found |= strcmp(next->name, blurred[k]) == 0;
            if (!found) fprintf(stderr, "unexpected blur before %s\n", next->name);
            assert_true(found);
            char alias[96];
            snprintf(alias, sizeof alias, "%s.conv.weight", next->name);
            assert_string_equal(m.params[next->weight].alias, alias);
            convs++;
        } else { /* the max-pool: 3x3 stride 1 pad 1, then the blur takes stride 2 */
            assert_int_equal(prev->kind, LAYER_MAXPOOL);
            assert_int_equal(prev->stride, 1);
            assert_int_equal(prev->k, 3);
            assert_int_equal(prev->pad, 1);
            assert_int_equal(l->stride, 2);
            pools++;
        }
    }
    assert_int_equal(convs, 6);
    assert_int_equal(pools, 1);
    /* the stem conv (3 input channels < 16) and unstrided convs keep no alias */
    assert_string_equal(m.params[model_find_param(&m, "conv1.weight")].alias, "");
    assert_string_equal(m.params[model_find_param(&m, "layer2.1.conv2.weight")].alias, "");

    /* the same spatial sizes as torchvision at 224 px (and at an odd 225) */
    Backend *be;
    assert_int_equal(backend_create("ref", 1, &be, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(model_alloc(&plain, be, &err), 0);
    for (int res = 224; res <= 225; res++) {
        Plan *p, *q;
        assert_int_equal(plan_create(&m, 1, res, res, false, &p, &err), 0);
        assert_int_equal(plan_create(&plain, 1, res, res, false, &q, &err), 0);
        int before_pool = m.layers[m.n_layers - 2].in, before_pool_plain = plain.layers[plain.n_layers - 2].in;
        assert_int_equal(p->th[before_pool], q->th[before_pool_plain]);
        assert_int_equal(p->tw[before_pool], q->tw[before_pool_plain]);
        plan_destroy(&m, p);
        plan_destroy(&plain, q);
    }
    model_free(&m);
    model_free(&plain);

    /* blur_first false: the conv runs at stride 1 and the blur after it takes the stride */
    s.blur_first = false;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    int i = 0;
    while (strcmp(m.layers[i].name, "layer2.0.conv2") != 0) i++;
    assert_int_equal(m.layers[i].stride, 1);
    assert_int_equal(m.layers[i + 1].kind, LAYER_BLUR);
    assert_int_equal(m.layers[i + 1].stride, 2);
    assert_int_equal(model_count_layers(&m, LAYER_BLUR), 7);
    model_free(&m);
    backend_destroy(be);
}

static void test_resnet50_squeeze_excite_structure(void **state) {
    (void)state;
    Error err;
    ResnetOptions o = options("resnet50", 1000);
    ResnetSurgery s = {.squeeze_excite = true, .se_latent_channels = 64, .se_min_channels = 128};
    Model m;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    assert_int_equal(model_count_layers(&m, LAYER_CHANNEL_SCALE), 42);
    assert_int_equal(model_count_layers(&m, LAYER_SIGMOID), 42);
    assert_int_equal(model_num_parameters(&m), 28768296);
    /* layer1 (64 channels) has none; layer2.0.conv1 (256 -> 128) is the first */
    assert_int_equal(model_find_param(&m, "layer1.0.conv3.se.pool_and_mlp.2.weight"), -1);
    int w1 = model_find_param(&m, "layer2.0.conv1.se.pool_and_mlp.2.weight");
    int w2 = model_find_param(&m, "layer2.0.conv1.se.pool_and_mlp.4.weight");
    assert_true(w1 >= 0 && w2 == w1 + 1);
    assert_int_equal(m.params[w1].shape[0], 64);
    assert_int_equal(m.params[w1].shape[1], 128);
    assert_int_equal(m.params[w2].shape[0], 128);
    assert_int_equal(m.params[w2].shape[1], 64);
    /* state_dict order: the conv, its SE, then the BN */
    int cw = model_find_param(&m, "layer2.0.conv1.weight");
    assert_int_equal(w1, cw + 1);
    assert_string_equal(m.params[w2 + 1].name, "layer2.0.bn1.weight");
    assert_string_equal(m.params[cw].alias, "layer2.0.conv1.conv.weight");
    assert_string_equal(m.params[w1].alias, "");
    assert_true(m.layers[m.params[w1].layer].surgery);
    assert_int_equal(m.layers[m.params[w1].layer].bias, -1);
    assert_int_equal(m.num_classes, 1000);
    model_free(&m);

    /* with BlurPool first (the recipe order), SE wraps BlurConv2d's inner conv */
    ResnetSurgery both = recipe_blurpool();
    both.squeeze_excite = true;
    both.se_latent_channels = 64;
    both.se_min_channels = 128;
    assert_int_equal(resnet_build_surgery(&o, 3, &both, &m, &err), 0);
    cw = model_find_param(&m, "layer2.0.conv2.weight");
    assert_string_equal(m.params[cw].alias, "layer2.0.conv2.conv.conv.weight");
    assert_string_equal(m.params[cw + 1].alias, "layer2.0.conv2.conv.se.pool_and_mlp.2.weight");
    model_free(&m);

    /* fractional latent channels: int(0.25 * C); one that gives 0 channels is refused */
    s.se_latent_channels = 0.25;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    assert_int_equal(m.params[model_find_param(&m, "layer4.0.conv3.se.pool_and_mlp.2.weight")].shape[0], 512);
    model_free(&m);
    s.se_latent_channels = 0.001;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), -1);
    assert_non_null(strstr(err.msg, "latent_channels"));
}

/* SE's FCs keep nn.Linear's default init (they appear after Composer's initializers ran). */
static void test_squeeze_excite_init(void **state) {
    (void)state;
    Error err;
    Backend *be;
    assert_int_equal(backend_create("cpu", 2, &be, &err), 0);
    ResnetOptions o = options("resnet18", 10);
    char kn[] = "KAIMING_NORMAL", llcb[] = "LINEAR_LOG_CONSTANT_BIAS";
    o.initializers.v[0] = kn;
    o.initializers.v[1] = llcb;
    o.initializers.n = 2;
    ResnetSurgery s = {.squeeze_excite = true, .se_latent_channels = 16, .se_min_channels = 128};
    Model m;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    assert_int_equal(model_count_layers(&m, LAYER_CHANNEL_SCALE), 13); /* Composer: 13 on resnet18 */
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &o, 7, &err), 0);
    for (int i = 0; i < m.n_params; i++) {
        const Param *p = &m.params[i];
        if (!strstr(p->name, ".se.")) continue;
        double bound = 1.0 / sqrt((double)p->shape[1]), mx = 0;
        for (int64_t k = 0; k < p->numel; k++) mx = fmax(mx, fabs(model_param_data(&m, i)[k]));
        assert_true(mx <= bound && mx > 0.5 * bound); /* uniform, not kaiming_normal's unbounded values */
    }
    assert_int_equal(m.num_classes, 10);
    float fc_bias = model_param_data(&m, model_find_param(&m, "fc.bias"))[0];
    assert_true(fabs(fc_bias + log(10.0)) < 1e-6);
    model_free(&m);
    backend_destroy(be);
}

static void test_stochastic_depth_structure(void **state) {
    (void)state;
    Error err;
    ResnetOptions o = options("resnet50", 1000);
    ResnetSurgery s = {.stochastic_depth = true, .sd_method = 1, .sd_drop_rate = 0.1, .sd_distribution = 1};
    Model m;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    assert_int_equal(model_count_layers(&m, LAYER_DROP), 16);
    assert_int_equal(model_num_parameters(&m), 25557032);
    int k = 0;
    for (int i = 0; i < m.n_layers; i++) {
        const Layer *l = &m.layers[i];
        if (l->kind != LAYER_DROP) continue;
        k++;
        assert_false(l->drop_block);
        assert_true(l->drop_p == (float)(((double)k / 16) * 0.1)); /* Composer: ((i + 1) / count) * drop_rate */
        /* it scales the block's bn3 output, before the residual add; the branch starts at the block's conv1 */
        assert_int_equal(m.layers[i - 1].kind, LAYER_BN);
        assert_non_null(strstr(m.layers[i - 1].name, ".bn3"));
        assert_non_null(strstr(m.layers[l->branch_first].name, ".conv1"));
        int j = i + 1;
        while (m.layers[j].kind != LAYER_ADD) j++;
        assert_int_equal(m.layers[j].in, l->out);
    }
    const Layer *last = NULL;
    for (int i = 0; i < m.n_layers; i++)
        if (m.layers[i].kind == LAYER_DROP) last = &m.layers[i];
    assert_true(last->drop_p == 0.1f);
    /* drop_warmup: the rates follow frac * (factor * drop_rate) */
    model_set_drop_scale(&m, 0.5);
    assert_true(last->drop_p == (float)(1.0 * (0.5 * 0.1)));
    model_set_drop_scale(&m, 1.0);
    assert_true(last->drop_p == 0.1f);
    model_free(&m);

    /* uniform distribution, block method */
    s.sd_method = 0;
    s.sd_distribution = 0;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    for (int i = 0; i < m.n_layers; i++)
        if (m.layers[i].kind == LAYER_DROP) assert_true(m.layers[i].drop_block && m.layers[i].drop_p == 0.1f);
    model_free(&m);

    /* BasicBlock networks: Composer targets Bottlenecks only (a no-op); ctrain's sd_basic_blocks adds them */
    ResnetOptions r18 = options("resnet18", 10);
    assert_int_equal(resnet_build_surgery(&r18, 3, &s, &m, &err), 0);
    assert_int_equal(model_count_layers(&m, LAYER_DROP), 0);
    model_free(&m);
    s.sd_basic_blocks = true;
    assert_int_equal(resnet_build_surgery(&r18, 3, &s, &m, &err), 0);
    assert_int_equal(model_count_layers(&m, LAYER_DROP), 8);
    for (int i = 0; i < m.n_layers; i++)
        if (m.layers[i].kind == LAYER_DROP) assert_non_null(strstr(m.layers[i - 1].name, ".bn2"));
    model_free(&m);

    s.sd_drop_rate = 1.5;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), -1);
    assert_non_null(strstr(err.msg, "drop_rate"));
}

/* Records every DROP layer's mask of the last forward ([layers][n]) without changing it. */
typedef struct MaskLog {
    float mask[16][512];
    int count;
} MaskLog;

static void log_mask(void *ctx, const Model *m, int layer, int n, float *mask) {
    MaskLog *g = ctx;
    (void)m;
    (void)layer;
    memcpy(g->mask[g->count++], mask, (size_t)n * sizeof *mask);
}

/* Runs one training forward of m on p with the given rng_step; the masks land in g. */
static void forward_logged(Model *m, Plan *p, uint64_t step, MaskLog *g) {
    Error err;
    g->count = 0;
    m->rng_step = step;
    m->drop_mask_hook = log_mask;
    m->drop_mask_hook_ctx = g;
    assert_int_equal(model_forward(m, p, true, &err), 0);
}

/* The masks come from (seed, RNG_ALGO, layer, step): the same on both backends and any thread count, new
 * ones each step, 1 with probability 1-p (sample) and one value per batch (block). */
static void test_stochastic_depth_masks(void **state) {
    (void)state;
    Error err;
    ResnetOptions o = options("resnet20", 4);
    o.width = 2;
    ResnetSurgery s = {.stochastic_depth = true, .sd_method = 1, .sd_drop_rate = 0.5, .sd_distribution = 1,
                       .sd_basic_blocks = true};
    const char *backends[] = {"ref", "cpu", "cpu"};
    const int threads[] = {1, 1, 3};
    static MaskLog logs[3], other;
    int n = 512;
    for (int b = 0; b < 3; b++) {
        Backend *be;
        assert_int_equal(backend_create(backends[b], threads[b], &be, &err), 0);
        Model m;
        assert_int_equal(resnet_build_surgery(&o, 1, &s, &m, &err), 0);
        assert_int_equal(model_alloc(&m, be, &err), 0);
        assert_int_equal(init_weights(&m, &o, 1, &err), 0);
        m.rng_seed = 42;
        Plan *p;
        assert_int_equal(plan_create(&m, n, 4, 4, true, &p, &err), 0);
        float *x = malloc((size_t)n * 16 * sizeof *x);
        tu_fill_uniform(x, (size_t)n * 16, -1, 1, 3);
        be->ops->upload(be, p->act[0], x, (size_t)n * 16 * sizeof *x);
        forward_logged(&m, p, 7, &logs[b]);
        assert_int_equal(logs[b].count, 9);
        if (b == 0) {
            forward_logged(&m, p, 8, &other);
            assert_true(memcmp(other.mask, logs[0].mask, sizeof other.mask) != 0);
            /* kept fraction ~ 1 - p_i, p_i = i/9 * 0.5 */
            for (int l = 0; l < 9; l++) {
                double kept = 0, keep = 1 - (l + 1) / 9.0 * 0.5;
                for (int k = 0; k < n; k++) kept += logs[0].mask[l][k];
                kept /= n;
                assert_true(fabs(kept - keep) < 5 * sqrt(keep * (1 - keep) / n) + 1e-9);
            }
        }
        free(x);
        plan_destroy(&m, p);
        model_free(&m);
        backend_destroy(be);
    }
    assert_memory_equal(logs[1].mask, logs[0].mask, sizeof logs[0].mask);
    assert_memory_equal(logs[2].mask, logs[0].mask, sizeof logs[0].mask);

    /* block method: one value per layer and forward */
    s.sd_method = 0;
    Backend *be;
    assert_int_equal(backend_create("cpu", 2, &be, &err), 0);
    Model m;
    assert_int_equal(resnet_build_surgery(&o, 1, &s, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &o, 1, &err), 0);
    Plan *p;
    assert_int_equal(plan_create(&m, 4, 4, 4, true, &p, &err), 0);
    int dropped = 0;
    for (uint64_t step = 0; step < 20; step++) {
        forward_logged(&m, p, step, &other);
        for (int l = 0; l < 9; l++) {
            for (int k = 1; k < 4; k++) assert_true(other.mask[l][k] == other.mask[l][0]);
            dropped += other.mask[l][0] == 0;
        }
    }
    assert_true(dropped > 0 && dropped < 180);
    plan_destroy(&m, p);
    model_free(&m);
    backend_destroy(be);
}

/* Gradient accumulation through every surgery layer (bias-less FCs, channel scale, blur, drop). */
static void test_surgery_accumulation(void **state) {
    (void)state;
    Error err;
    Backend *be;
    assert_int_equal(backend_create("cpu", 2, &be, &err), 0);
    ResnetOptions o = options("resnet50", 5);
    o.width = 4;
    o.layers.n = 2;
    o.layers.v[0] = o.layers.v[1] = 1;
    ResnetSurgery s = recipe_blurpool();
    s.blur_min_channels = 4;
    s.squeeze_excite = true;
    s.se_latent_channels = 0.5;
    s.se_min_channels = 8;
    s.stochastic_depth = true;
    s.sd_method = 1;
    s.sd_drop_rate = 0.5;
    s.sd_distribution = 1;
    Model m;
    assert_int_equal(resnet_build_surgery(&o, 2, &s, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &o, 3, &err), 0);
    int n = 4, res = 16, c = 2, classes = 5;
    Plan *p;
    assert_int_equal(plan_create(&m, n, res, res, true, &p, &err), 0);
    float *x = malloc((size_t)n * res * res * c * sizeof *x);
    tu_fill_uniform(x, (size_t)n * res * res * c, -1, 1, 11);
    float target[4 * 5] = {0}, loss[4];
    for (int i = 0; i < n; i++) target[i * classes + i % classes] = 1;
    int out = model_output(&m);
    float *sum = calloc((size_t)m.n_weights, sizeof *sum), *acc = malloc((size_t)m.n_weights * sizeof *acc);
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < 2; k++) {
            m.rng_step = (uint64_t)k;
            memcpy(p->act[0], x, (size_t)n * res * res * c * sizeof *x);
            assert_int_equal(model_forward(&m, p, true, &err), 0);
            be->ops->loss_forward_backward(be, LOSS_SOFT_CROSS_ENTROPY, n, classes, p->act[out], target, 0.25f,
                                           loss, p->grad[out]);
            assert_int_equal(model_backward(&m, p, pass == 1 && k > 0, &err), 0);
            if (pass == 0)
                for (int64_t i = 0; i < m.n_weights; i++) sum[i] += m.grads[i];
        }
    memcpy(acc, m.grads, (size_t)m.n_weights * sizeof *acc);
    assert_close("accumulated gradients", acc, sum, (size_t)m.n_weights, 1e-7, 1e-5);
    free(x);
    free(sum);
    free(acc);
    plan_destroy(&m, p);
    model_free(&m);
    backend_destroy(be);
}

/* ResNet-50 with all three surgeries (the Hot recipe's BlurPool and StochasticDepth, plus Composer's default
 * SqueezeExcite) trains and evaluates on the cpu backend with finite results. */
static void test_resnet50_all_surgery_runs(void **state) {
    (void)state;
    Error err = {{0}};
    Backend *be;
    assert_int_equal(backend_create("cpu", 2, &be, &err), 0);
    ResnetOptions o = options("resnet50", 10);
    ResnetSurgery s = recipe_blurpool();
    s.stochastic_depth = true;
    s.sd_method = 1;
    s.sd_drop_rate = 0.1;
    s.sd_distribution = 1;
    s.squeeze_excite = true;
    s.se_latent_channels = 64;
    s.se_min_channels = 128;
    Model m;
    assert_int_equal(resnet_build_surgery(&o, 3, &s, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &o, 5, &err), 0);
    int n = 2, res = 64, classes = 10, out = model_output(&m);
    Plan *p, *pe;
    assert_int_equal(plan_create(&m, n, res, res, true, &p, &err), 0);
    assert_int_equal(plan_create(&m, n, res, res, false, &pe, &err), 0);
    size_t nx = (size_t)n * res * res * 3;
    float *x = malloc(nx * sizeof *x), target[2 * 10] = {0}, loss[2], logits[2 * 10];
    tu_fill_uniform(x, nx, -2, 2, 21);
    target[3] = target[10 + 7] = 1;
    memcpy(p->act[0], x, nx * sizeof *x);
    memcpy(pe->act[0], x, nx * sizeof *x);
    m.rng_seed = 9;
    m.rng_step = 1;
    assert_int_equal(model_forward(&m, p, true, &err), 0);
    be->ops->loss_forward_backward(be, LOSS_BCE_WITH_LOGITS, n, classes, p->act[out], target, 0.5f, loss, p->grad[out]);
    assert_int_equal(model_backward(&m, p, false, &err), 0);
    double g2 = 0;
    for (int64_t i = 0; i < m.n_weights; i++) g2 += (double)m.grads[i] * m.grads[i];
    assert_true(isfinite(g2) && g2 > 0);
    assert_int_equal(model_forward(&m, pe, false, &err), 0);
    memcpy(logits, pe->act[out], sizeof logits);
    for (int i = 0; i < n * classes; i++) assert_true(isfinite(logits[i]));
    free(x);
    plan_destroy(&m, p);
    plan_destroy(&m, pe);
    model_free(&m);
    backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blurpool_ref),
        cmocka_unit_test(test_blurpool_cpu),
        cmocka_unit_test(test_blurpool_late_ref),
        cmocka_unit_test(test_blurpool_late_cpu),
        cmocka_unit_test(test_sd_sample_ref),
        cmocka_unit_test(test_sd_sample_cpu),
        cmocka_unit_test(test_sd_block_ref),
        cmocka_unit_test(test_sd_block_cpu),
        cmocka_unit_test(test_se_ref),
        cmocka_unit_test(test_se_cpu),
        cmocka_unit_test(test_resnet50_blurpool_structure),
        cmocka_unit_test(test_resnet50_squeeze_excite_structure),
        cmocka_unit_test(test_squeeze_excite_init),
        cmocka_unit_test(test_stochastic_depth_structure),
        cmocka_unit_test(test_stochastic_depth_masks),
        cmocka_unit_test(test_surgery_accumulation),
        cmocka_unit_test(test_resnet50_all_surgery_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
