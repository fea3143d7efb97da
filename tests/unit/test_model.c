/* test_model.c — the ResNet builders against torchvision's state_dict (names, order, shapes, parameter counts,
 * from tests/fixtures/torchvision_keys.json written by tools/make_fixtures.py), the CIFAR variants' structure,
 * initializers, gradient accumulation, eval-mode forward of the cpu backend against the ref backend, the
 * training plan's fused BN-ADD-ReLU against the ref backend's unfused layers, and bf16 steps (storage, Winograd)
 * against fp32. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_conv.h"
#include "core/fsutil.h"
#include "core/rng.h"
#include "model/init.h"
#include "model/resnet.h"
#include "testutil.h"

static ResnetOptions options(const char *name, int classes) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s", name);
    ResnetOptions o = {.model_name = buf, .num_classes = classes, .groups = 1, .width_per_group = 64};
    return o;
}

static void test_torchvision_state_dicts(void **state) {
    (void)state;
    uint8_t *text;
    size_t size;
    Error err;
    assert_int_equal(fs_read_all(tu_fixture("torchvision_keys.json"), &text, &size, &err), 0);
    cJSON *root = cJSON_Parse((const char *)text);
    assert_non_null(root);
    const char *archs[] = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"};
    for (int a = 0; a < 5; a++) {
        const cJSON *entry = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "models"), archs[a]);
        const cJSON *sd = cJSON_GetObjectItem(entry, "state_dict");
        ResnetOptions o = options(archs[a], 1000);
        Model m;
        assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
        assert_int_equal(m.n_params, cJSON_GetArraySize(sd));
        for (int i = 0; i < m.n_params; i++) {
            const cJSON *kv = cJSON_GetArrayItem(sd, i), *shape = cJSON_GetArrayItem(kv, 1);
            if (strcmp(m.params[i].name, cJSON_GetArrayItem(kv, 0)->valuestring) != 0)
                fprintf(stderr, "%s: param %d is %s, torchvision has %s\n", archs[a], i, m.params[i].name,
                        cJSON_GetArrayItem(kv, 0)->valuestring);
            assert_string_equal(m.params[i].name, cJSON_GetArrayItem(kv, 0)->valuestring);
            assert_int_equal(m.params[i].ndim, cJSON_GetArraySize(shape));
            for (int d = 0; d < m.params[i].ndim; d++)
                assert_int_equal(m.params[i].shape[d], cJSON_GetArrayItem(shape, d)->valuedouble);
        }
        assert_int_equal(model_num_parameters(&m), (int64_t)cJSON_GetObjectItem(entry, "num_parameters")->valuedouble);
        model_free(&m);
    }
    /* the number the issue states, independent of the fixture */
    ResnetOptions o = options("resnet50", 1000);
    Model m;
    assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
    assert_int_equal(model_num_parameters(&m), 25557032);
    model_free(&m);
    cJSON_Delete(root);
    free(text);
}

/* He et al.'s CIFAR ResNet parameter count with 1x1-conv (option B) shortcuts, from the paper's structure. */
static int64_t cifar_params(int n, int w, int cin, int classes) {
    int64_t total = (int64_t)cin * w * 9 + 2 * w, in = w;
    for (int s = 0; s < 3; s++) {
        int64_t planes = (int64_t)w << s;
        for (int b = 0; b < n; b++) {
            total += in * planes * 9 + planes * planes * 9 + 4 * planes;
            if ((b == 0 && s > 0) || in != planes) total += in * planes + 2 * planes;
            in = planes;
        }
    }
    return total + in * classes + classes;
}

static void test_cifar_resnets(void **state) {
    (void)state;
    Error err;
    const struct { const char *name; int n; } cases[] = {{"resnet20", 3}, {"resnet56", 9}, {"resnet8", 1}};
    for (int i = 0; i < 3; i++) {
        ResnetOptions o = options(cases[i].name, 10);
        Model m;
        assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
        assert_int_equal(model_num_parameters(&m), cifar_params(cases[i].n, 16, 3, 10));
    assert_int_equal(m.layers[0].k, 3);
        assert_int_equal(m.layers[0].stride, 1);
        for (int l = 0; l < m.n_layers; l++) assert_int_not_equal(m.layers[l].kind, LAYER_MAXPOOL);
        model_free(&m);
    }
    ResnetOptions bad = options("resnet21", 10);
    Model m;
    assert_int_equal(resnet_build(&bad, 3, &m, &err), -1);
    assert_non_null(strstr(err.msg, "unknown model 'resnet21'"));
}

static void test_initializers(void **state) {
    (void)state;
    Error err;
    Backend *be;
    assert_int_equal(backend_create("ref", 1, &be, &err), 0);
    ResnetOptions o = options("resnet50", 1000);
    char *names[3] = {"KAIMING_NORMAL", "bn_uniform", "LINEAR_LOG_CONSTANT_BIAS"};
    o.initializers.n = 3;
    for (int i = 0; i < 3; i++) o.initializers.v[i] = names[i];
    Model m;
    assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &o, 7, &err), 0);
    /* KAIMING_NORMAL: std sqrt(2 / fan_in) on a conv (layer3.0.conv2: 256*3*3 fan-in) and the fc */
    const char *wnames[2] = {"layer3.0.conv2.weight", "fc.weight"};
    double fan_in[2] = {256 * 9, 2048};
    for (int k = 0; k < 2; k++) {
        int p = model_find_param(&m, wnames[k]);
        const float *w = model_param_data(&m, p);
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < m.params[p].numel; i++) {
            s += w[i];
            s2 += (double)w[i] * w[i];
        }
        double mean = s / m.params[p].numel, sd = sqrt(s2 / m.params[p].numel - mean * mean);
        assert_true(fabs(sd / sqrt(2.0 / fan_in[k]) - 1.0) < 0.02);
        assert_true(fabs(mean) < 0.01 * sd + 1e-4);
    }
    /* BN_UNIFORM: weights in [0, 1), mean about 1/2; biases 0 */
    int bw = model_find_param(&m, "layer1.0.bn3.weight"), bb = model_find_param(&m, "layer1.0.bn3.bias");
    const float *g = model_param_data(&m, bw), *b = model_param_data(&m, bb);
    double s = 0;
    for (int i = 0; i < 256; i++) {
        assert_true(g[i] >= 0.0f && g[i] < 1.0f);
        assert_true(b[i] == 0.0f);
        s += g[i];
    }
    assert_true(fabs(s / 256 - 0.5) < 0.1);
    /* LINEAR_LOG_CONSTANT_BIAS: fc bias = -log(1000) */
    const float *fb = model_param_data(&m, model_find_param(&m, "fc.bias"));
    for (int i = 0; i < 1000; i++) assert_true(fabs(fb[i] + log(1000.0)) < 1e-6);
    /* running statistics start at mean 0, var 1 */
    const float *rv = model_param_data(&m, model_find_param(&m, "bn1.running_var"));
    assert_true(rv[0] == 1.0f && rv[63] == 1.0f);
    model_free(&m);

    /* torchvision defaults: conv fan_out std, BN ones, fc bias within 1/sqrt(fan_in); zero_init_residual */
    ResnetOptions d = options("resnet18", 10);
    d.zero_init_residual = true;
    assert_int_equal(resnet_build(&d, 3, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &d, 1, &err), 0);
    assert_true(model_param_data(&m, model_find_param(&m, "layer1.0.bn2.weight"))[5] == 0.0f);
    assert_true(model_param_data(&m, model_find_param(&m, "layer1.0.bn1.weight"))[5] == 1.0f);
    assert_true(model_param_data(&m, model_find_param(&m, "layer2.0.downsample.1.weight"))[5] == 1.0f);
    const float *fcb = model_param_data(&m, model_find_param(&m, "fc.bias"));
    for (int i = 0; i < 10; i++) assert_true(fabsf(fcb[i]) <= 1.0f / sqrtf(512.0f));
    model_free(&m);

    ResnetOptions u = options("resnet18", 10);
    char *bogus[1] = {"GLOROT"};
    u.initializers.n = 1;
    u.initializers.v[0] = bogus[0];
    assert_int_equal(init_check_names(&u, &err), -1);
    assert_non_null(strstr(err.msg, "GLOROT"));
    backend_destroy(be);
}

/* Two micro-batches with accumulate give the sum of their separate gradients; and a cpu forward in eval
 * mode matches the ref backend. */
static void test_accumulation_and_eval(void **state) {
    (void)state;
    Error err;
    Backend *be;
    assert_int_equal(backend_create("cpu", 2, &be, &err), 0);
    ResnetOptions o = options("resnet8", 5);
    o.width = 4;
    Model m;
    assert_int_equal(resnet_build(&o, 2, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &o, 3, &err), 0);
    int n = 4, res = 10, c = 2, classes = 5;
    Plan *p;
    assert_int_equal(plan_create(&m, n, res, res, true, &p, &err), 0);
    float *x = malloc((size_t)2 * n * res * res * c * sizeof *x);
    tu_fill_uniform(x, (size_t)2 * n * res * res * c, -1, 1, 11);
    float target[4 * 5] = {0}, loss[4];
    for (int i = 0; i < n; i++) target[i * classes + i % classes] = 1;
    int out = model_output(&m);
    float *sum = calloc((size_t)m.n_weights, sizeof *sum), *acc = malloc((size_t)m.n_weights * sizeof *acc);
    for (int k = 0; k < 2; k++) {
        memcpy(p->act[0], x + (size_t)k * n * res * res * c, (size_t)n * res * res * c * sizeof *x);
        assert_int_equal(model_forward(&m, p, true, &err), 0);
        be->ops->loss_forward_backward(be, LOSS_SOFT_CROSS_ENTROPY, n, classes, p->act[out], target, 0.125f, loss,
                                       p->grad[out]);
        assert_int_equal(model_backward(&m, p, false, &err), 0);
        for (int64_t i = 0; i < m.n_weights; i++) sum[i] += m.grads[i];
    }
    for (int k = 0; k < 2; k++) {
        memcpy(p->act[0], x + (size_t)k * n * res * res * c, (size_t)n * res * res * c * sizeof *x);
        assert_int_equal(model_forward(&m, p, true, &err), 0);
        be->ops->loss_forward_backward(be, LOSS_SOFT_CROSS_ENTROPY, n, classes, p->act[out], target, 0.125f, loss,
                                       p->grad[out]);
        assert_int_equal(model_backward(&m, p, k > 0, &err), 0);
    }
    memcpy(acc, m.grads, (size_t)m.n_weights * sizeof *acc);
    assert_close("accumulated gradients", acc, sum, (size_t)m.n_weights, 1e-7, 1e-5);

    /* eval forward: cpu vs ref on the same weights */
    Backend *rb;
    assert_int_equal(backend_create("ref", 1, &rb, &err), 0);
    Model r;
    assert_int_equal(resnet_build(&o, 2, &r, &err), 0);
    assert_int_equal(model_alloc(&r, rb, &err), 0);
    memcpy(r.weights, m.weights, (size_t)m.n_weights * sizeof(float));
    memcpy(r.buffers, m.buffers, (size_t)m.n_buffers * sizeof(float));
    Plan *pe, *re;
    assert_int_equal(plan_create(&m, n, res, res, false, &pe, &err), 0);
    assert_int_equal(plan_create(&r, n, res, res, false, &re, &err), 0);
    memcpy(pe->act[0], x, (size_t)n * res * res * c * sizeof *x);
    memcpy(re->act[0], x, (size_t)n * res * res * c * sizeof *x);
    assert_int_equal(model_forward(&m, pe, false, &err), 0);
    assert_int_equal(model_forward(&r, re, false, &err), 0);
    assert_close("eval logits", pe->act[out], re->act[out], (size_t)n * classes, 1e-5, 1e-4);
    /* a train-mode forward needs a train plan; a micro-batch of 1 at 1x1 would give BN one value */
    assert_int_equal(model_forward(&m, pe, true, &err), -1);
    plan_destroy(&m, pe);
    plan_destroy(&r, re);
    model_free(&r);
    backend_destroy(rb);
    free(x);
    free(sum);
    free(acc);
    plan_destroy(&m, p);
    model_free(&m);
    backend_destroy(be);
}

static void test_plan_errors(void **state) {
    (void)state;
    Error err;
    Backend *be;
    assert_int_equal(backend_create("cpu", 1, &be, &err), 0);
    ResnetOptions o = options("resnet18", 10);
    Model m;
    assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    Plan *p = NULL;
    /* 1x1 images: the 7x7/2 stem gives 1x1, the max-pool 1x1, then the stride-2 stages still 1x1 — fine;
     * but batch 1 in training gives BN a single value per channel at the last stage */
    assert_int_equal(plan_create(&m, 1, 16, 16, true, &p, &err), 0);
    assert_int_equal(model_forward(&m, p, true, &err), -1);
    assert_non_null(strstr(err.msg, "1 value per channel"));
    plan_destroy(&m, p);
    model_free(&m);
    backend_destroy(be);
}

/* A residual ADD's two inputs share one gradient buffer (the ADD writes it once, no copy) in every block of a
 * ResNet-50, identity and downsample alike; not when the second input is read again (by the first input's
 * producer) after the ADD's backward, where sharing would change a gradient still to be read. */
static void test_add_gradient_sharing(void **state) {
    (void)state;
    Error err;
    Backend *be;
    assert_int_equal(backend_create("ref", 1, &be, &err), 0);
    ResnetOptions o = options("resnet50", 10);
    o.width = 8;
    Model m;
    assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    Plan *p;
    assert_int_equal(plan_create(&m, 2, 32, 32, true, &p, &err), 0);
    int adds = 0;
    for (int i = 0; i < m.n_layers; i++) {
        const Layer *l = &m.layers[i];
        if (l->kind != LAYER_ADD) continue;
        adds++;
        assert_non_null(p->grad[l->in]);
        assert_ptr_equal(p->grad[l->in], p->grad[l->in2]);
    }
    assert_int_equal(adds, 16);
    plan_destroy(&m, p);
    model_free(&m);

    /* y = bn(conv(x)) + conv(x): the BN reads conv(x) after the ADD's backward */
    Model h;
    assert_int_equal(model_init(&h, 2, &err), 0);
    int t1 = model_conv(&h, "conv", 0, 4, 3, 1, 1, &err);
    int t2 = model_bn(&h, "bn", t1, &err);
    int t3 = model_add(&h, t2, t1, &err);
    assert_true(model_fc(&h, "fc", model_avgpool(&h, t3, &err), 3, &err) > 0);
    assert_int_equal(model_alloc(&h, be, &err), 0);
    assert_int_equal(plan_create(&h, 2, 4, 4, true, &p, &err), 0);
    assert_non_null(p->grad[t1]);
    assert_non_null(p->grad[t2]);
    assert_ptr_not_equal(p->grad[t1], p->grad[t2]);
    plan_destroy(&h, p);
    model_free(&h);
    backend_destroy(be);
}

/* Whether got [n] and want [n] hold the same bits; else prints where they first differ. */
static bool same_floats(const char *name, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof *got)) {
            fprintf(stderr, "%s: element %zu of %zu: got %.9g, want %.9g\n", name, i, n, got[i], want[i]);
            return false;
        }
    return true;
}

/* One training step (forward, loss, backward) of model m on plan p; returns the loss of sample 0. */
static float train_step(Model *m, Plan *p, const float *x, const float *target, int classes) {
    Error err;
    int out = model_output(m);
    float loss[8];
    memcpy(p->act[0], x, (size_t)p->n * p->h * p->w * m->channels[0] * sizeof *x);
    assert_int_equal(model_forward(m, p, true, &err), 0);
    m->be->ops->loss_forward_backward(m->be, LOSS_SOFT_CROSS_ENTROPY, p->n, classes, p->act[out], target,
                                      1.0f / p->n, loss, p->grad[out]);
    assert_int_equal(model_backward(m, p, false, &err), 0);
    return loss[0];
}

/* On the cpu backend a ResNet-50's training plan runs the forward of each block's last BN (bn3, or downsample.1
 * where the block has one) with the residual ADD and the ReLU after it, stores neither's output, needs no more
 * memory, and its step is bit-identical to the same backend's without its fused bn_relu ops (every BN on its
 * own): loss, every parameter's gradient, the running statistics, and an eval forward on the training plan.
 * The forward is fused where the ADD's other input is the BN's input, not where the BN's output has another
 * reader. */
static void test_bn_add_relu_fusion(void **state) {
    (void)state;
    Error err;
    Backend *be, *rb;
    assert_int_equal(backend_create("cpu", 2, &be, &err), 0);
    assert_int_equal(backend_create("cpu", 2, &rb, &err), 0);
    BackendOps plain = *rb->ops;
    plain.bn_relu_forward_train = NULL;
    plain.bn_relu_backward = NULL;
    plain.relu_backward_add = NULL;
    rb->ops = &plain;
    ResnetOptions o = options("resnet50", 5);
    o.width = 8;
    Model m, r;
    assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
    assert_int_equal(resnet_build(&o, 3, &r, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(model_alloc(&r, rb, &err), 0);
    assert_int_equal(init_weights(&m, &o, 5, &err), 0);
    memcpy(r.weights, m.weights, (size_t)m.n_weights * sizeof(float));
    memcpy(r.buffers, m.buffers, (size_t)m.n_buffers * sizeof(float));
    int n = 4, res = 32, classes = 5;
    Plan *p, *q;
    assert_int_equal(plan_create(&m, n, res, res, true, &p, &err), 0);
    assert_int_equal(plan_create(&r, n, res, res, true, &q, &err), 0);
    int fused = 0, downsample = 0;
    for (int i = 0; i < m.n_layers; i++) {
        assert_int_not_equal(q->fuse[i], FUSE_ADD_RELU);
        if (p->fuse[i] != FUSE_ADD_RELU) continue;
        fused++;
        assert_int_equal(m.layers[i].kind, LAYER_BN);
        assert_int_equal(m.layers[i + 1].kind, LAYER_ADD);
        assert_int_equal(p->fuse[i + 1], FUSE_RELU);
        assert_null(p->act[m.layers[i].out]);
        assert_null(p->act[m.layers[i + 1].out]);
        assert_ptr_equal(p->grad[m.layers[i + 1].in], p->grad[m.layers[i + 1].in2]);
        downsample += strstr(m.layers[i].name, "downsample") != NULL;
    }
    assert_int_equal(fused, 16);
    assert_int_equal(downsample, 4);
    assert_true(p->pool_bytes <= q->pool_bytes);

    size_t nx = (size_t)n * res * res * 3;
    float *x = malloc(nx * sizeof *x), target[4 * 5] = {0};
    tu_fill_uniform(x, nx, -1, 1, 21);
    for (int i = 0; i < n; i++) target[i * classes + (i + 2) % classes] = 1;
    for (int step = 0; step < 2; step++) { /* the second after an SGD-like update, so the BN inputs move */
        float l0 = train_step(&r, q, x, target, classes), l1 = train_step(&m, p, x, target, classes);
        assert_true(l1 == l0);
        assert_true(same_floats("gradients", m.grads, r.grads, (size_t)m.n_weights));
        assert_true(same_floats("running statistics", m.buffers, r.buffers, (size_t)m.n_buffers));
        for (int64_t i = 0; i < m.n_weights; i++) m.weights[i] = r.weights[i] -= 0.1f * m.grads[i];
    }
    int out = model_output(&m);
    assert_int_equal(model_forward(&m, p, false, &err), 0);
    assert_int_equal(model_forward(&r, q, false, &err), 0);
    assert_true(same_floats("eval logits", p->act[out], q->act[out], (size_t)n * classes));
    plan_destroy(&m, p);
    plan_destroy(&r, q);
    model_free(&m);
    model_free(&r);

    /* relu(bn(conv(x)) + conv(x)): fused; with bn(conv(x)) read again by a second conv: not */
    for (int k = 0; k < 2; k++) {
        Model h;
        assert_int_equal(model_init(&h, 2, &err), 0);
        int t1 = model_conv(&h, "conv", 0, 2, 3, 1, 1, &err), t2 = model_bn(&h, "bn", t1, &err);
        int t3 = model_relu(&h, model_add(&h, t2, t1, &err), &err);
        if (k) t3 = model_add(&h, t3, model_conv(&h, "conv2", t2, 2, 1, 1, 0, &err), &err);
        assert_true(model_fc(&h, "fc", model_avgpool(&h, t3, &err), 3, &err) > 0);
        assert_int_equal(model_alloc(&h, be, &err), 0);
        assert_int_equal(plan_create(&h, 2, 4, 4, true, &p, &err), 0);
        assert_int_equal(p->fuse[1], k ? FUSE_NONE : FUSE_ADD_RELU);
        plan_destroy(&h, p);
        model_free(&h);
    }
    free(x);
    backend_destroy(be);
    backend_destroy(rb);
}

/* Cosine similarity of a and b [n], in double. */
static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb + 1e-300);
}

/* A bf16 cpu backend (AVX512_BF16), with bf16_store or (plain) without; NULL after a note when the CPU has no
 * native bf16. */
static Backend *bf16_backend(bool store, BackendOps *ops) {
    Error err;
    Backend *be;
    assert_int_equal(backend_create("cpu", 2, &be, &err), 0);
    if (!be->ops->bf16) {
        fprintf(stderr, "note: this CPU has no AVX512_BF16: no bf16 plans to check\n");
        backend_destroy(be);
        return NULL;
    }
    *ops = *be->ops;
    ops->bf16_store = store;
    be->ops = ops;
    be->bf16 = true;
    return be;
}

/* A small residual network on be, its weights uniform in [-0.2, 0.2] (seed 31) and its BN scales 1:
 * a = relu(bn(conv(x))); b = relu(bn(conv(relu(bn(conv(a))))) + a); relu(bn(conv(b)) + b) -> avgpool -> fc, with
 * 3x3 convolutions of c channels; *bt is b's tensor. */
static void tiny_resnet(Model *h, Backend *be, int c, int classes, int *bt) {
    Error err;
    assert_int_equal(model_init(h, 3, &err), 0);
    int a = model_relu(h, model_bn(h, "bn0", model_conv(h, "conv0", 0, c, 3, 1, 1, &err), &err), &err);
    int t = model_relu(h, model_bn(h, "bn1", model_conv(h, "conv1", a, c, 3, 1, 1, &err), &err), &err);
    t = model_bn(h, "bn2", model_conv(h, "conv2", t, c, 3, 1, 1, &err), &err);
    *bt = model_relu(h, model_add(h, t, a, &err), &err);
    t = model_bn(h, "bn3", model_conv(h, "conv3", *bt, c, 3, 1, 1, &err), &err);
    t = model_relu(h, model_add(h, t, *bt, &err), &err);
    assert_true(model_fc(h, "fc", model_avgpool(h, t, &err), classes, &err) > 0);
    assert_int_equal(model_alloc(h, be, &err), 0);
    tu_fill_uniform(h->weights, (size_t)h->n_weights, -0.2f, 0.2f, 31);
    for (int i = 0; i < h->n_params; i++)
        if (strstr(h->params[i].name, "bn") && strstr(h->params[i].name, ".weight"))
            for (int64_t j = 0; j < h->params[i].numel; j++) model_param_data(h, i)[j] = 1.0f;
}

/* In a bf16 training plan with bf16 storage the block output b of tiny_resnet (stored bf16, its gradient fp32) gets
 * its two gradient parts added inside the ADD's ReLU mask (relu_backward_add with a bf16 y): two steps give the
 * same loss and gradients, bit for bit, as the same backend without that op (axpy, then relu_backward_bf16). */
static void test_bf16_relu_backward_add(void **state) {
    (void)state;
    BackendOps o1, o2;
    Backend *be = bf16_backend(true, &o1), *rb = be ? bf16_backend(true, &o2) : NULL;
    if (!be) skip();
    o2.relu_backward_add = NULL;
    Error err;
    Model m, r;
    Plan *p, *q;
    int bt = -1, classes = 5, n = 8, res = 16;
    tiny_resnet(&m, be, 32, classes, &bt);
    tiny_resnet(&r, rb, 32, classes, &bt);
    assert_int_equal(plan_create(&m, n, res, res, true, &p, &err), 0);
    assert_int_equal(plan_create(&r, n, res, res, true, &q, &err), 0);
    assert_int_equal(p->atype[bt], ACT_BF16);
    assert_int_equal(p->gtype[bt], ACT_F32);
    size_t nx = (size_t)n * res * res * 3;
    float *x = malloc(nx * sizeof *x), target[8 * 5] = {0};
    tu_fill_uniform(x, nx, -1, 1, 25);
    for (int i = 0; i < n; i++) target[i * classes + (i + 3) % classes] = 1;
    for (int step = 0; step < 2; step++) {
        float l0 = train_step(&r, q, x, target, classes), l1 = train_step(&m, p, x, target, classes);
        assert_true(l1 == l0);
        assert_true(same_floats("gradients", m.grads, r.grads, (size_t)m.n_weights));
        for (int64_t i = 0; i < m.n_weights; i++) m.weights[i] = r.weights[i] -= 0.1f * m.grads[i];
    }
    plan_destroy(&m, p);
    plan_destroy(&r, q);
    model_free(&m);
    model_free(&r);
    free(x);
    backend_destroy(be);
    backend_destroy(rb);
}

/* In a bf16 training plan on the cpu backend (bf16_store, AVX512_BF16) a ResNet-50 keeps in bf16 exactly the
 * tensors that pass only between convolutions and fused BNs: every conv output whose only reader is a fused BN
 * (49 of 53: not the shortcut blocks' conv3, whose bn3 runs on its own) and the ReLU outputs of bn1 and bn2 in
 * the 16 blocks, with their gradients, and the block outputs but the last (read by the average pool), without
 * theirs; the stem's ReLU output (read by the max pool), the max pool's and the logits stay fp32, the pool
 * shrinks, the steps run, and the plan refuses an eval forward; an fp32 plan stores nothing in bf16. How close
 * the numbers stay is checked where it is well-conditioned: a small residual network's step with bf16 storage
 * is within bf16 rounding of the same bf16 step on fp32 storage (loss to 1e-3, gradients at cosine >= 0.999,
 * norms within 0.5%). (A random width-8 ResNet-50 amplifies any rounding
 * difference, bf16 against fp32 as much as storage against none, to several percent of its loss; the ops
 * themselves are checked bit for bit in test_backend_ops.) */
static void test_bf16_storage(void **state) {
    (void)state;
    Error err;
    BackendOps o1, o2;
    Backend *be = bf16_backend(true, &o1), *rb = be ? bf16_backend(false, &o2) : NULL;
    if (!be) skip();
    ResnetOptions o = options("resnet50", 5);
    o.width = 8;
    Model m, r;
    assert_int_equal(resnet_build(&o, 3, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    assert_int_equal(init_weights(&m, &o, 5, &err), 0);
    int n = 4, res = 32, classes = 5;
    Plan *p, *q;
    be->bf16 = false;
    assert_int_equal(plan_create(&m, n, res, res, true, &p, &err), 0);
    assert_false(p->bf16_store);
    plan_destroy(&m, p);
    be->bf16 = true;
    assert_int_equal(plan_create(&m, n, res, res, true, &p, &err), 0);
    assert_true(p->bf16_store);
    int conv_out = 0, relu_out = 0, block_out = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        if (p->atype[t] != ACT_BF16) {
            assert_int_equal(p->gtype[t], ACT_F32);
            continue;
        }
        int w = -1;
        for (int i = 0; i < m.n_layers; i++)
            if (m.layers[i].out == t) w = i;
        assert_true(w >= 0);
        bool block = m.layers[w].kind == LAYER_RELU && m.layers[w - 1].kind == LAYER_ADD;
        assert_int_equal(p->gtype[t], block ? ACT_F32 : ACT_BF16);
        conv_out += m.layers[w].kind == LAYER_CONV;
        block_out += block;
        relu_out += !block && m.layers[w].kind == LAYER_RELU;
        assert_true(m.layers[w].kind == LAYER_CONV || block || strstr(m.layers[w - 1].name, ".bn1") ||
                    strstr(m.layers[w - 1].name, ".bn2"));
    }
    assert_int_equal(conv_out, 49);
    assert_int_equal(relu_out, 32);
    assert_int_equal(block_out, 15);
    assert_int_equal(p->atype[0], ACT_F32);
    assert_int_equal(p->atype[model_output(&m)], ACT_F32);
    be->ops = &o2;
    assert_int_equal(plan_create(&m, n, res, res, true, &q, &err), 0);
    be->ops = &o1;
    assert_false(q->bf16_store);
    assert_true(p->pool_bytes < q->pool_bytes);
    plan_destroy(&m, q);
    size_t nx = (size_t)n * res * res * 3;
    float *x = malloc(nx * sizeof *x), target[8 * 5] = {0};
    tu_fill_uniform(x, nx, -1, 1, 23);
    for (int i = 0; i < 8; i++) target[i * classes + (i + 1) % classes] = 1;
    for (int step = 0; step < 2; step++) {
        assert_true(isfinite(train_step(&m, p, x, target, classes)));
        for (int64_t i = 0; i < m.n_weights; i++) m.weights[i] -= 0.1f * m.grads[i];
    }
    assert_int_not_equal(model_forward(&m, p, false, &err), 0);
    assert_non_null(strstr(err.msg, "evaluation plan"));
    plan_destroy(&m, p);
    model_free(&m);
    free(x);

    /* a = relu(bn(conv(x))); b = relu(bn(conv(relu(bn(conv(a))))) + a); relu(bn(conv(b)) + b) -> avgpool -> fc:
     * 3x3 convolutions of 32 channels, batch 8 at 16x16; b is a block output kept in bf16 */
    Model *ms[2] = {&m, &r};
    Backend *bes[2] = {be, rb};
    Plan *ps[2];
    int bt = -1;
    for (int k = 0; k < 2; k++) {
        tiny_resnet(ms[k], bes[k], 32, classes, &bt);
        assert_int_equal(plan_create(ms[k], 8, 16, 16, true, &ps[k], &err), 0);
    }
    assert_true(ps[0]->bf16_store);
    assert_int_equal(ps[0]->atype[bt], ACT_BF16);
    assert_false(ps[1]->bf16_store);
    nx = (size_t)8 * 16 * 16 * 3;
    x = malloc(nx * sizeof *x);
    tu_fill_uniform(x, nx, -1, 1, 29);
    size_t nw = (size_t)m.n_weights;
    for (int step = 0; step < 2; step++) {
        float l0 = train_step(&r, ps[1], x, target, classes), l1 = train_step(&m, ps[0], x, target, classes);
        double c = cosine(m.grads, r.grads, nw), g1 = 0, g0 = 0;
        for (size_t i = 0; i < nw; i++) g1 += (double)m.grads[i] * m.grads[i], g0 += (double)r.grads[i] * r.grads[i];
        if (fabsf(l1 - l0) > 1e-3f * fabsf(l0) || c < 0.999 || fabs(sqrt(g1 / g0) - 1) > 0.005)
            fprintf(stderr, "step %d: loss %.7g vs %.7g, gradient cosine %.7f, norm ratio %.5f\n", step, l1, l0, c,
                    sqrt(g1 / g0));
        assert_true(fabsf(l1 - l0) <= 1e-3f * fabsf(l0));
        assert_true(c >= 0.999);
        assert_true(fabs(sqrt(g1 / g0) - 1) <= 0.005);
        for (size_t i = 0; i < nw; i++) m.weights[i] = r.weights[i] -= 0.1f * r.grads[i];
    }
    for (int k = 0; k < 2; k++) {
        plan_destroy(ms[k], ps[k]);
        model_free(ms[k]);
    }
    free(x);
    backend_destroy(be);
    backend_destroy(rb);
}

/* bf16 Winograd in a training step (a bf16 plan's 3x3 layers of 64 channels on 16x16, cpu_conv.c's rule): the
 * small residual network's gradients are no further from the fp32 step's (oneDNN, direct) than 2.5 times the same
 * bf16 step's with Winograd off (oneDNN's direct bf16 kernels), at cosine >= 0.999, and its loss within 1e-3; and
 * Winograd did run (the two bf16 steps differ). (In the step the rest of bf16's rounding dominates: the two
 * errors measured 0.0129 and 0.0121; test_backend_ops bounds the convolutions themselves.) Not on a CPU with AMX,
 * where no pass runs bf16 Winograd. */
static void test_bf16_winograd_step(void **state) {
    (void)state;
    Error err;
    BackendOps o1, o2;
    if (cpu_conv_amx()) {
        fprintf(stderr, "note: this CPU has AMX: bf16 plans run no Winograd, nothing to compare\n");
        skip();
    }
    Backend *bw = bf16_backend(true, &o1), *bd = bw ? bf16_backend(true, &o2) : NULL, *bf;
    if (!bw) skip();
    assert_int_equal(backend_create("cpu", 2, &bf, &err), 0);
    bd->winograd = bf->winograd = false;
    int classes = 5, n = 8, res = 16, bt;
    Model ms[3];
    Backend *bes[3] = {bf, bw, bd};
    Plan *ps[3];
    size_t nx = (size_t)n * res * res * 3;
    float *x = malloc(nx * sizeof *x), target[8 * 5] = {0}, loss[3];
    tu_fill_uniform(x, nx, -1, 1, 37);
    for (int i = 0; i < n; i++) target[i * classes + (i + 2) % classes] = 1;
    for (int k = 0; k < 3; k++) {
        tiny_resnet(&ms[k], bes[k], 64, classes, &bt);
        assert_int_equal(plan_create(&ms[k], n, res, res, true, &ps[k], &err), 0);
        loss[k] = train_step(&ms[k], ps[k], x, target, classes);
    }
    size_t nw = (size_t)ms[0].n_weights;
    double e[3] = {0}, ref = 0;
    for (size_t i = 0; i < nw; i++) {
        ref += (double)ms[0].grads[i] * ms[0].grads[i];
        for (int k = 1; k < 3; k++) {
            double dk = (double)ms[k].grads[i] - ms[0].grads[i];
            e[k] += dk * dk;
        }
    }
    double ew = sqrt(e[1] / ref), ed = sqrt(e[2] / ref), c = cosine(ms[1].grads, ms[0].grads, nw);
    if (ew > 2.5 * ed || c < 0.999 || fabsf(loss[1] - loss[0]) > 1e-3f * fabsf(loss[0]))
        fprintf(stderr, "bf16 step against fp32: gradient error %.3g with Winograd, %.3g without; cosine %.6f; "
                "loss %.6g, %.6g, fp32 %.6g\n", ew, ed, c, loss[1], loss[2], loss[0]);
    assert_true(memcmp(ms[1].grads, ms[2].grads, nw * sizeof(float)) != 0);
    assert_true(ew <= 2.5 * ed);
    assert_true(c >= 0.999);
    assert_true(fabsf(loss[1] - loss[0]) <= 1e-3f * fabsf(loss[0]));
    for (int k = 0; k < 3; k++) {
        plan_destroy(&ms[k], ps[k]);
        model_free(&ms[k]);
    }
    free(x);
    backend_destroy(bw);
    backend_destroy(bd);
    backend_destroy(bf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torchvision_state_dicts),
        cmocka_unit_test(test_cifar_resnets),
        cmocka_unit_test(test_initializers),
        cmocka_unit_test(test_accumulation_and_eval),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_add_gradient_sharing),
        cmocka_unit_test(test_bn_add_relu_fusion),
        cmocka_unit_test(test_bf16_storage),
        cmocka_unit_test(test_bf16_relu_backward_add),
        cmocka_unit_test(test_bf16_winograd_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
