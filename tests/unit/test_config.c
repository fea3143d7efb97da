/* test_config.c — the configuration module: the six shared Composer recipes load with the right values,
 * yahp-style command-line overrides, every error message (file:line, key, suggestion), notes for ignored
 * keys, algorithm option checks, and the config_emit → config_load round trip. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"
#include "config/config.h"
#include "data/loader.h"
#include "model/resnet.h"
#include "testutil.h"
#include "train/optim.h"
#include "train/sched.h"

/* cmocka 1.1.5 has no assert_double_equal. */
#define assert_double_equal(a, b, eps)                                                              \
    do {                                                                                            \
        double a_ = (a), b_ = (b);                                                                  \
        if (!(fabs(a_ - b_) <= (eps))) fprintf(stderr, "%s = %.17g, expected %.17g\n", #a, a_, b_); \
        assert_true(fabs(a_ - b_) <= (eps));                                                        \
    } while (0)

#define RECIPE(name) tu_shared("reference/composer-recipes/" name)

static const char *const RECIPES[] = {
    "mlperf-v2.0-methods.yaml", "resnet50_baseline_models_resnet50.yaml", "resnet50_hot_benchmarks-0.7.1.yaml",
    "resnet50_medium.yaml",     "resnet50_mild.yaml",                     "resnet50_spicy.yaml",
};

/* ---- helpers */

static char *path_of(const char *recipe) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", tu_shared(recipe));
    return buf;
}

static void load_ok(const char *path, int n, char **argv, Config *cfg) {
    Error err = {{0}};
    int rc = config_load(path, n, argv, cfg, &err);
    if (rc != 0) fprintf(stderr, "config_load(%s): %s\n", path ? path : "(none)", err.msg);
    assert_int_equal(rc, 0);
}

/* Loads a recipe that must fail; returns the message (static buffer). */
static const char *load_err(const char *path, int n, char **argv) {
    static Error err;
    Config cfg;
    memset(&err, 0, sizeof err);
    int rc = config_load(path, n, argv, &cfg, &err);
    if (rc == 0) config_free(&cfg);
    assert_int_equal(rc, -1);
    fprintf(stderr, "  (expected error) %s\n", err.msg);
    return err.msg;
}

static char g_dir[3000];        /* one temporary folder for the recipes the tests write */
static char *g_written[64];
static int g_nwritten;

/* Writes text to <tempdir>/name and returns the path (static buffer). */
static const char *write_recipe(const char *name, const char *text) {
    static char path[4096];
    if (!g_dir[0]) snprintf(g_dir, sizeof g_dir, "%s", tu_tempdir());
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    bool seen = false;
    for (int i = 0; i < g_nwritten; i++) seen |= !strcmp(g_written[i], path);
    if (!seen && g_nwritten < 64) g_written[g_nwritten++] = strdup(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#define assert_contains(hay, needle)                                                  \
    do {                                                                              \
        const char *h_ = (hay), *n_ = (needle);                                       \
        if (!strstr(h_, n_)) fprintf(stderr, "'%s' lacks '%s'\n", h_, n_);           \
        assert_non_null(strstr(h_, n_));                                              \
    } while (0)

static const void *algo(const Config *c, const char *name) {
    const Choice *ch = choice_list_find(&c->algorithms, name);
    assert_non_null(ch);
    return ch->options;
}

static const SgdOptions *sgd(const Config *c) {
    assert_non_null(c->optimizers.entry);
    return c->optimizers.options;
}

static int count_notes(const Config *c, const char *prefix) {
    int n = 0;
    for (int i = 0; i < c->notes.n; i++) n += strncmp(c->notes.v[i], prefix, strlen(prefix)) == 0;
    return n;
}

/* Warmup of the (single) scheduler in batches, at 625 batches per epoch. */
static double warmup_batches(const Config *c) {
    SchedContext ctx = {.steps_per_epoch = 625, .batch_size = 2048, .max_duration = c->max_duration, .ssr = 1};
    Schedule s;
    Error err;
    assert_int_equal(sched_compile(&s, &c->schedulers, &ctx, &err), 0);
    return s.warmup;
}

/* ---- the shared recipes */

static void test_mild(void **state) {
    (void)state;
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 0, NULL, &c);
    assert_int_equal(c.algorithms.n, 5);
    const char *order[] = {"blurpool", "channels_last", "ema", "label_smoothing", "progressive_resizing"};
    for (int i = 0; i < 5; i++) assert_string_equal(c.algorithms.items[i].entry->name, order[i]);
    assert_double_equal(((const LabelSmoothingOptions *)algo(&c, "label_smoothing"))->smoothing, 0.08, 1e-12);
    assert_string_equal(c.optimizers.entry->name, "decoupled_sgdw");
    assert_double_equal(sgd(&c)->lr, 2.048, 1e-12);
    assert_double_equal(sgd(&c)->momentum, 0.875, 1e-12);
    assert_double_equal(sgd(&c)->weight_decay, 5e-4, 1e-15);
    assert_false(sgd(&c)->nesterov);
    assert_int_equal(c.schedulers.n, 1);
    assert_string_equal(c.schedulers.items[0].entry->name, "cosine_decay_with_warmup");
    assert_double_equal(warmup_batches(&c), 8 * 625, 0);
    assert_true(c.max_duration.set);
    assert_int_equal(c.max_duration.unit, TIME_EPOCH);
    assert_double_equal(c.max_duration.value, 90, 0);
    assert_double_equal(c.scale_schedule_ratio, 0.4, 1e-12);
    assert_int_equal(c.train_batch_size, 2048);
    assert_int_equal(c.eval_batch_size, 2048);
    assert_int_equal(c.precision, PRECISION_AMP);
    assert_string_equal(c.device.entry->name, "gpu");
    assert_int_equal(c.seed, 42);
    assert_int_equal(config_grad_accum(&c), 1);
    assert_int_equal(c.eval_interval.unit, TIME_EPOCH);
    assert_double_equal(c.eval_interval.value, 1, 0);
    const EmaOptions *ema = algo(&c, "ema");
    assert_int_equal(ema->half_life.unit, TIME_BATCH);
    assert_double_equal(ema->half_life.value, 100, 0);
    assert_double_equal(ema->update_interval.value, 20, 0);
    const ProgressiveResizingOptions *pr = algo(&c, "progressive_resizing");
    assert_double_equal(pr->delay_fraction, 0.4, 1e-12);
    assert_int_equal(pr->size_increment, 4);
    const BlurpoolOptions *bp = algo(&c, "blurpool");
    assert_true(bp->blur_first);
    assert_int_equal(bp->min_channels, 16);
    const ResnetOptions *m = c.model.options;
    assert_string_equal(m->model_name, "resnet50");
    assert_int_equal(m->initializers.n, 3);
    assert_string_equal(m->initializers.v[2], "LINEAR_LOG_CONSTANT_BIAS");
    assert_int_equal(m->loss_name, RESNET_LOSS_BCE);
    const ImagenetOptions *tr = c.train_dataset.options, *va = c.val_dataset.options;
    assert_string_equal(tr->ffcv_dir, "/path/to/ffcv");
    assert_int_equal(tr->crop_size, 176);
    assert_true(tr->use_ffcv);
    assert_int_equal(va->resize_size, 232);
    assert_false(va->shuffle);
    assert_int_equal(c.callbacks.n, 2);
    assert_int_equal(c.loggers.n, 1);
    assert_non_null(c.tree);
    config_free(&c);
}

static void test_medium(void **state) {
    (void)state;
    Config c;
    load_ok(RECIPE("resnet50_medium.yaml"), 0, NULL, &c);
    assert_int_equal(c.algorithms.n, 7);
    assert_double_equal(((const MixupOptions *)algo(&c, "mixup"))->alpha, 0.2, 1e-12);
    const SamOptions *sam = algo(&c, "sam");
    assert_double_equal(sam->epsilon, 1e-12, 1e-20);
    assert_double_equal(sam->rho, 0.5, 1e-12);
    assert_int_equal(sam->interval, 10);
    assert_double_equal(((const LabelSmoothingOptions *)algo(&c, "label_smoothing"))->smoothing, 0.1, 1e-12);
    assert_double_equal(c.scale_schedule_ratio, 1.5, 1e-12);
    config_free(&c);
}

static void test_spicy(void **state) {
    (void)state;
    Config c;
    load_ok(RECIPE("resnet50_spicy.yaml"), 0, NULL, &c);
    assert_int_equal(c.algorithms.n, 10);
    assert_double_equal(c.scale_schedule_ratio, 3.0, 0); /* an int for a float */
    const StochasticDepthOptions *sd = algo(&c, "stochastic_depth");
    assert_int_equal(sd->stochastic_method, SD_METHOD_SAMPLE);
    assert_int_equal(sd->drop_distribution, SD_DIST_LINEAR);
    assert_int_equal(sd->drop_warmup.unit, TIME_DURATION);
    assert_double_equal(sd->drop_warmup.value, 0, 0);
    assert_string_equal(sd->target_layer_name, "ResNetBottleneck");
    const RandaugmentOptions *ra = algo(&c, "randaugment");
    assert_int_equal(ra->severity, 10);
    assert_int_equal(ra->depth, 1);
    assert_int_equal(ra->augmentation_set, RA_SET_ALL);
    const ColoutOptions *co = algo(&c, "colout");
    assert_double_equal(co->p_row, 0.05, 1e-12);
    assert_int_equal(co->resize_target, COLOUT_TARGET_AUTO);
    assert_int_equal(c.eval_interval.value, 1); /* no eval_interval: the default, every epoch */
    assert_int_equal(c.train_subset_num_batches, -1);
    assert_double_equal(sgd(&c)->weight_decay, 3e-4, 1e-15);
    assert_string_equal(((const ImagenetOptions *)c.train_dataset.options)->datadir, "/path/to/imagenet");
    config_free(&c);
}

static void test_hot_071_dict_form(void **state) {
    (void)state;
    Config c;
    load_ok(RECIPE("resnet50_hot_benchmarks-0.7.1.yaml"), 0, NULL, &c);
    const char *order[] = {"blurpool",    "channels_last",        "colout",      "ema", "label_smoothing",
                           "mixup",       "progressive_resizing", "randaugment", "sam", "stochastic_depth"};
    assert_int_equal(c.algorithms.n, 10);
    for (int i = 0; i < 10; i++) assert_string_equal(c.algorithms.items[i].entry->name, order[i]);
    assert_false(((const StochasticDepthOptions *)algo(&c, "stochastic_depth"))->use_same_gpu_seed);
    assert_string_equal(c.optimizers.entry->name, "decoupled_sgdw"); /* 0.7's `optimizer:` */
    assert_double_equal(sgd(&c)->weight_decay, 3e-4, 1e-15);
    assert_int_equal(c.schedulers.n, 1); /* a map, not a list */
    assert_int_equal(c.callbacks.n, 2);
    assert_int_equal(c.loggers.n, 1);
    assert_double_equal(c.scale_schedule_ratio, 1.0, 0);
    assert_int_equal(c.precision, PRECISION_AMP);
    assert_false(((const ResnetOptions *)c.model.options)->pretrained);
    config_free(&c);
}

static void test_mlperf(void **state) {
    (void)state;
    Config c;
    load_ok(RECIPE("mlperf-v2.0-methods.yaml"), 0, NULL, &c);
    const EmaOptions *ema = algo(&c, "ema");
    assert_true(ema->half_life.set); /* omitted: Composer 0.7's default */
    assert_int_equal(ema->half_life.unit, TIME_BATCH);
    assert_double_equal(ema->half_life.value, 100, 0);
    assert_double_equal(ema->update_interval.value, 20, 0);
    const ProgressiveResizingOptions *pr = algo(&c, "progressive_resizing");
    assert_double_equal(pr->initial_scale, 0.5, 0);
    assert_double_equal(pr->finetune_fraction, 0.2, 1e-12);
    assert_double_equal(pr->delay_fraction, 0.4, 1e-12);
    assert_int_equal(pr->mode, PR_MODE_RESIZE);
    assert_true(((const BlurpoolOptions *)algo(&c, "blurpool"))->replace_maxpools);
    assert_double_equal(c.scale_schedule_ratio, 0.32, 1e-12);
    assert_int_equal(c.seed, 17);
    assert_double_equal(c.eval_interval.value, 3, 0);
    assert_string_equal(c.run_name, "resnet50-methods");
    assert_int_equal(c.precision, PRECISION_AMP); /* lower case */
    assert_double_equal(sgd(&c)->dampening, 0, 0); /* an int for a float */
    assert_double_equal(warmup_batches(&c), 5000, 0); /* "8ep" quoted */
    assert_int_equal(c.callbacks.n, 2);               /* mlperf and speed_monitor with a null value */
    assert_string_equal(c.callbacks.items[1].entry->name, "speed_monitor");
    const ResnetOptions *m = c.model.options;
    assert_string_equal(m->initializers.v[0], "kaiming_normal");
    config_free(&c);
}

static void test_baseline(void **state) {
    (void)state;
    Config c;
    load_ok(RECIPE("resnet50_baseline_models_resnet50.yaml"), 0, NULL, &c);
    assert_int_equal(c.algorithms.n, 0);
    assert_int_equal(c.schedulers.n, 1); /* a one-item list */
    assert_int_equal(c.precision, PRECISION_AUTO);
    assert_int_equal(c.seed, 17);
    assert_null(c.device.entry);
    assert_int_equal(((const ResnetOptions *)c.model.options)->loss_name, RESNET_LOSS_SOFT_CE);
    assert_string_equal(((const ImagenetOptions *)c.val_dataset.options)->datadir, "/datasets/ImageNet");
    assert_true(c.step_schedulers_every_batch);
    assert_int_equal(c.save_num_checkpoints_to_keep, -1);
    assert_true(c.save_interval.set);
    assert_null(c.save_folder);
    config_free(&c);
}

/* ---- command-line overrides */

static void test_seed_command_line(void **state) {
    (void)state;
    char *argv[] = {"--scale_schedule_ratio", "0.36", "--train_dataset.imagenet.ffcv_dir", "/x",
                    "--val_dataset.imagenet.ffcv_dir", "/x"};
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 6, argv, &c);
    assert_double_equal(c.scale_schedule_ratio, 0.36, 1e-12);
    assert_string_equal(((const ImagenetOptions *)c.train_dataset.options)->ffcv_dir, "/x");
    assert_string_equal(((const ImagenetOptions *)c.val_dataset.options)->ffcv_dir, "/x");
    /* the merged tree holds the overrides */
    YNode *tr = ytree_get(ytree_get(ytree_get(c.tree, "train_dataset"), "imagenet"), "ffcv_dir");
    assert_string_equal(tr->scalar, "/x");
    config_free(&c);
}

static void test_ambiguous_alias(void **state) {
    (void)state;
    char *argv[] = {"--ffcv_dir", "/x"};
    const char *m = load_err(RECIPE("resnet50_mild.yaml"), 2, argv);
    assert_contains(m, "--ffcv_dir: ambiguous");
    assert_contains(m, "--train_dataset.imagenet.ffcv_dir");
    assert_contains(m, "--val_dataset.imagenet.ffcv_dir");
}

static void test_unknown_override(void **state) {
    (void)state;
    char *argv[] = {"--scale_schedul_ratio", "0.3"};
    assert_string_equal(load_err(RECIPE("resnet50_mild.yaml"), 2, argv),
                        "--scale_schedul_ratio: unknown option; did you mean --scale_schedule_ratio?");
    char *argv2[] = {"--algorithms.ema.half_lif", "5ba"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 2, argv2), "did you mean --algorithms.ema.half_life?");
    char *argv3[] = {"--optimizers.adam.lr", "0.1"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 2, argv3),
                    "--optimizers.adam.lr: unknown optimizer 'adam' (ctrain has: decoupled_sgdw, sgd)");
    char *argv4[] = {"0.1"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 1, argv4), "unexpected '0.1'");
}

static void test_alias_and_bare_flag(void **state) {
    (void)state;
    char *argv[] = {"--lr", "0.1", "--train_dataset.imagenet.ffcv_write_dataset", "--save_overwrite",
                    "--seed", "3", "--smoothing", "0.2", "--pin_memory", "false"};
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 10, argv, &c);
    assert_double_equal(sgd(&c)->lr, 0.1, 1e-12);
    assert_true(((const ImagenetOptions *)c.train_dataset.options)->ffcv_write_dataset);
    assert_false(((const ImagenetOptions *)c.val_dataset.options)->ffcv_write_dataset);
    assert_true(c.save_overwrite);
    assert_int_equal(c.seed, 3);
    assert_double_equal(((const LabelSmoothingOptions *)algo(&c, "label_smoothing"))->smoothing, 0.2, 1e-12);
    config_free(&c);
    char *argv2[] = {"--scale_schedule_ratio"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 1, argv2), "--scale_schedule_ratio: needs a value");
    char *argv3[] = {"--seed", "1", "2"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 3, argv3), "--seed: takes one value, got 2");
}

static void test_list_override(void **state) {
    (void)state;
    char *argv[] = {"--model.resnet.initializers", "KAIMING_NORMAL", "BN_UNIFORM", "--eval_interval", "2"};
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 5, argv, &c);
    const ResnetOptions *m = c.model.options;
    assert_int_equal(m->initializers.n, 2);
    assert_string_equal(m->initializers.v[0], "KAIMING_NORMAL");
    assert_string_equal(m->initializers.v[1], "BN_UNIFORM");
    assert_double_equal(c.eval_interval.value, 2, 0);
    config_free(&c);
    char *argv2[] = {"--load_ignore_keys", "fc.weight", "fc.bias", "--initializers"};
    load_ok(RECIPE("resnet50_mild.yaml"), 4, argv2, &c);
    assert_int_equal(c.load_ignore_keys.n, 2);
    assert_string_equal(c.load_ignore_keys.v[1], "fc.bias");
    assert_int_equal(((const ResnetOptions *)c.model.options)->initializers.n, 0); /* bare: an empty list */
    config_free(&c);
}

static void test_key_equals_value(void **state) {
    (void)state;
    char *argv[] = {"--seed=7", "--run_name=", "--max_duration=2ep", "--precision=BF16"};
    Config c;
    load_ok(RECIPE("mlperf-v2.0-methods.yaml"), 4, argv, &c);
    assert_int_equal(c.seed, 7);
    assert_null(c.run_name);
    assert_double_equal(c.max_duration.value, 2, 0);
    assert_int_equal(c.precision, PRECISION_BF16);
    config_free(&c);
}

static void test_choice_replacement(void **state) {
    (void)state;
    char *argv[] = {"--device", "cpu", "--optimizers.sgd.lr", "0.1", "--momentum", "0.9"};
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 6, argv, &c);
    assert_string_equal(c.device.entry->name, "cpu");
    assert_string_equal(c.optimizers.entry->name, "sgd");
    assert_double_equal(sgd(&c)->lr, 0.1, 1e-12);
    assert_double_equal(sgd(&c)->momentum, 0.9, 1e-12);   /* the alias now finds sgd's momentum */
    assert_double_equal(sgd(&c)->weight_decay, 0, 0);     /* the old choice's options are gone */
    config_free(&c);
    /* through 0.7's `optimizer:` key, and without a device key at all */
    char *argv2[] = {"--optimizers.sgd.lr", "0.5", "--device", "cpu"};
    load_ok(RECIPE("mlperf-v2.0-methods.yaml"), 4, argv2, &c);
    assert_string_equal(c.optimizers.entry->name, "sgd");
    assert_double_equal(sgd(&c)->lr, 0.5, 1e-12);
    assert_string_equal(c.device.entry->name, "cpu");
    config_free(&c);
    load_ok(RECIPE("resnet50_baseline_models_resnet50.yaml"), 4, argv2, &c);
    assert_string_equal(c.device.entry->name, "cpu");
    config_free(&c);
    char *argv3[] = {"--device", "tpu"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 2, argv3),
                    "--device: unknown device 'tpu' (ctrain has: cpu, gpu)");
}

static void test_list_registry_overrides(void **state) {
    (void)state;
    char *argv[] = {"--algorithms.ema.half_life", "50ba", "--algorithms.cutmix.alpha", "0.5"};
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 4, argv, &c);
    assert_int_equal(c.algorithms.n, 6);
    assert_double_equal(((const EmaOptions *)algo(&c, "ema"))->half_life.value, 50, 0);
    assert_string_equal(c.algorithms.items[5].entry->name, "cutmix");
    assert_double_equal(((const CutmixOptions *)algo(&c, "cutmix"))->alpha, 0.5, 0);
    config_free(&c);
    /* no algorithms key; then the 0.7 dict form */
    char *argv2[] = {"--algorithms.label_smoothing.smoothing", "0.1", "--algorithms.blurpool.min_channels", "8"};
    load_ok(RECIPE("resnet50_baseline_models_resnet50.yaml"), 4, argv2, &c);
    assert_int_equal(c.algorithms.n, 2);
    assert_double_equal(((const LabelSmoothingOptions *)algo(&c, "label_smoothing"))->smoothing, 0.1, 1e-12);
    assert_int_equal(((const BlurpoolOptions *)algo(&c, "blurpool"))->min_channels, 8);
    config_free(&c);
    char *argv3[] = {"--algorithms.label_smoothing.smoothing", "0.2", "--algorithms.cutmix.alpha", "2"};
    load_ok(RECIPE("resnet50_hot_benchmarks-0.7.1.yaml"), 4, argv3, &c);
    assert_int_equal(c.algorithms.n, 11);
    assert_double_equal(((const LabelSmoothingOptions *)algo(&c, "label_smoothing"))->smoothing, 0.2, 1e-12);
    config_free(&c);
    /* the whole list from names; options of kept entries stay */
    char *argv4[] = {"--algorithms", "ema", "blurpool", "--callbacks", "none"};
    load_ok(RECIPE("resnet50_mild.yaml"), 5, argv4, &c);
    assert_int_equal(c.algorithms.n, 2);
    assert_string_equal(c.algorithms.items[0].entry->name, "ema");
    assert_double_equal(((const EmaOptions *)algo(&c, "ema"))->update_interval.value, 20, 0);
    assert_int_equal(c.callbacks.n, 0);
    config_free(&c);
}

static void test_none_unsets(void **state) {
    (void)state;
    char *argv[] = {"--train_dataset.imagenet.ffcv_dir", "none"};
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 2, argv, &c);
    assert_null(((const ImagenetOptions *)c.train_dataset.options)->ffcv_dir);
    config_free(&c);
    char *argv2[] = {"--run_name", "none", "--seed", "none"};
    load_ok(RECIPE("mlperf-v2.0-methods.yaml"), 4, argv2, &c);
    assert_null(c.run_name);
    assert_int_equal(c.seed, 42); /* unset: the default */
    config_free(&c);
    char *argv3[] = {"--train_dataset.imagenet.ffcv_dir", ""};
    load_ok(RECIPE("resnet50_mild.yaml"), 2, argv3, &c);
    assert_null(((const ImagenetOptions *)c.train_dataset.options)->ffcv_dir);
    config_free(&c);
}

static void test_no_recipe(void **state) {
    (void)state;
    char *argv[] = {"--model.resnet.model_name", "resnet18", "--train_dataset.synthetic.num_samples", "64",
                    "--max_duration", "1ep", "--train_batch_size", "32"};
    Config c;
    load_ok(NULL, 8, argv, &c);
    assert_string_equal(((const ResnetOptions *)c.model.options)->model_name, "resnet18");
    assert_string_equal(c.train_dataset.entry->name, "synthetic");
    assert_int_equal(c.train_batch_size, 32);
    assert_null(c.val_dataset.entry);
    assert_int_equal(c.precision, PRECISION_AUTO);
    config_free(&c);
}

/* ---- recipe errors */

static void test_unknown_key(void **state) {
    (void)state;
    const char *p = write_recipe("typo.yaml", "optimizers:\n  decoupled_sgdw:\n    lr: 0.1\n    momentun: 0.9\n");
    const char *m = load_err(p, 0, NULL);
    assert_contains(m, "typo.yaml:4: unknown key 'optimizers.decoupled_sgdw.momentun'; did you mean 'momentum'?");
    p = write_recipe("top.yaml", "seed: 1\nscale_schedule_ration: 0.5\n");
    assert_contains(load_err(p, 0, NULL), "top.yaml:2: unknown key 'scale_schedule_ration'; did you mean "
                                          "'scale_schedule_ratio'?");
    p = write_recipe("far.yaml", "seed: 1\n\nbanana: 3\n");
    m = load_err(p, 0, NULL);
    assert_contains(m, "far.yaml:3: unknown key 'banana'");
    assert_null(strstr(m, "did you mean"));
    p = write_recipe("dl.yaml", "dataloader:\n  num_worker: 8\n");
    assert_contains(load_err(p, 0, NULL), "dl.yaml:2: unknown key 'dataloader.num_worker'; did you mean "
                                          "'num_workers'?");
    p = write_recipe("both.yaml", "optimizer: {sgd: {lr: 1}}\noptimizers: {sgd: {lr: 1}}\n");
    assert_contains(load_err(p, 0, NULL), "both.yaml:1: 'optimizers' and its older spelling 'optimizer'");
}

static void test_unknown_algorithm(void **state) {
    (void)state;
    const char *p = write_recipe("alibi.yaml", "algorithms:\n  - blurpool: {}\n  - alibi: {}\n");
    assert_contains(load_err(p, 0, NULL),
                    "alibi.yaml:3: algorithms: unknown algorithm 'alibi' (ctrain has: blurpool, channels_last, ema,");
    const char *m;
    p = write_recipe("augmix.yaml", "algorithms:\n  augmix:\n    severity: 3\n");
    m = load_err(p, 0, NULL);
    assert_contains(m, "augmix.yaml:2: algorithms: unknown algorithm 'augmix' (ctrain has: blurpool,");
    assert_null(strstr(m, "did you mean"));
    p = write_recipe("blur.yaml", "algorithms:\n  - blurpol: {}\n");
    assert_contains(load_err(p, 0, NULL), "did you mean 'blurpool'?");
    p = write_recipe("cb.yaml", "callbacks:\n  - lr_monitor: {}\n  - benchmarker: {}\n");
    assert_contains(load_err(p, 0, NULL), "cb.yaml:3: callbacks: unknown callback 'benchmarker'");
    p = write_recipe("twice.yaml", "algorithms:\n  - ema: {}\n  - ema: {}\n");
    assert_contains(load_err(p, 0, NULL), "twice.yaml:3: algorithms: 'ema' is given twice");
    p = write_recipe("two.yaml", "optimizers:\n  sgd: {lr: 1}\n  decoupled_sgdw: {lr: 1}\n");
    assert_contains(load_err(p, 0, NULL), "two.yaml:2: optimizers: give one optimizer, not 2");
}

static void test_bad_yaml(void **state) {
    (void)state;
    const char *p = write_recipe("tab.yaml", "seed: 1\noptimizers:\n\tsgd: {lr: 1}\n");
    const char *m = load_err(p, 0, NULL);
    assert_contains(m, "tab.yaml:3:");
    assert_contains(m, "found character that cannot start any token");
    p = write_recipe("bracket.yaml", "seed: 1\nschedulers: [{cosine_decay: {}}\nmax_duration: 90ep\n");
    m = load_err(p, 0, NULL);
    assert_contains(m, "bracket.yaml:");
    assert_contains(m, "flow sequence");
    assert_contains(m, "at line 2");
    p = write_recipe("dup.yaml", "seed: 1\nseed: 2\n");
    assert_contains(load_err(p, 0, NULL), "dup.yaml:2: duplicate key 'seed'");
    p = write_recipe("list.yaml", "- seed: 1\n");
    assert_contains(load_err(p, 0, NULL), "list.yaml:1: a recipe is a map of keys");
    p = write_recipe("tag.yaml", "seed: !!python/tuple [1, 2]\n");
    assert_contains(load_err(p, 0, NULL), "tag.yaml:1: unsupported YAML tag");
}

static void test_missing_file(void **state) {
    (void)state;
    assert_string_equal(load_err("/nonexistent/recipe.yaml", 0, NULL),
                        "/nonexistent/recipe.yaml: cannot open recipe: No such file or directory");
}

static void test_type_errors(void **state) {
    (void)state;
    const char *p = write_recipe("type.yaml", "seed: 1\noptimizers:\n  decoupled_sgdw: {lr: fast}\n");
    char want[4200];
    snprintf(want, sizeof want, "%s:3: optimizers.decoupled_sgdw.lr: expected a number, got 'fast'", p);
    assert_string_equal(load_err(p, 0, NULL), want);
    p = write_recipe("int.yaml", "train_batch_size: 2.5\n");
    assert_contains(load_err(p, 0, NULL), "int.yaml:1: train_batch_size: expected an integer, got '2.5'");
    p = write_recipe("bool.yaml", "save_overwrite: maybe\n");
    assert_contains(load_err(p, 0, NULL), "bool.yaml:1: save_overwrite: expected true or false, got 'maybe'");
    p = write_recipe("enum.yaml", "precision: fp8\n");
    assert_contains(load_err(p, 0, NULL), "enum.yaml:1: precision: expected one of fp32, amp, bf16, fp16, auto");
    p = write_recipe("time.yaml", "max_duration: 90 epochs\n");
    assert_contains(load_err(p, 0, NULL), "time.yaml:1: max_duration: expected a time such as 90ep");
    p = write_recipe("range.yaml", "train_batch_size: 0\n");
    assert_contains(load_err(p, 0, NULL), "range.yaml:1: train_batch_size: must be >= 1, got 0");
    p = write_recipe("map.yaml", "seed: {a: 1}\n");
    assert_contains(load_err(p, 0, NULL), "map.yaml:1: seed: expected a single value, got a map");
    char *argv[] = {"--train_batch_size", "2.5"};
    assert_string_equal(load_err(RECIPE("resnet50_mild.yaml"), 2, argv),
                        "command line: train_batch_size: expected an integer, got '2.5'");
    char *argv2[] = {"--lr", "fast"};
    assert_string_equal(load_err(RECIPE("resnet50_mild.yaml"), 2, argv2),
                        "command line: optimizers.decoupled_sgdw.lr: expected a number, got 'fast'");
    /* YAML 1.1 booleans and float spellings are fine */
    p = write_recipe("ok.yaml", "save_overwrite: yes\nautoresume: No\nscale_schedule_ratio: 1\n"
                                "optimizers: {sgd: {lr: 1.0e-3, weight_decay: 5.0E-4, nesterov: off}}\n"
                                "schedulers: {constant: {}}\n");
    Config c;
    load_ok(p, 0, NULL, &c);
    assert_true(c.save_overwrite);
    assert_false(c.autoresume);
    assert_double_equal(sgd(&c)->lr, 1e-3, 1e-18);
    config_free(&c);
}

static void test_required_missing(void **state) {
    (void)state;
    const char *p = write_recipe("req.yaml", "seed: 1\noptimizers:\n  decoupled_sgdw:\n    momentum: 0.9\n");
    const char *m = load_err(p, 0, NULL);
    assert_contains(m, "req.yaml:4: optimizers.decoupled_sgdw: missing required key 'lr'");
    p = write_recipe("sd.yaml", "algorithms:\n  - stochastic_depth: {drop_rate: 0.1}\n");
    assert_contains(load_err(p, 0, NULL), "algorithms.stochastic_depth: missing required key 'target_layer_name'");
    char *argv[] = {"--optimizers.sgd.momentum", "0.9"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 2, argv),
                    "optimizers.sgd: missing required key 'lr'");
}

static void test_unsupported_keys(void **state) {
    (void)state;
    const char *p = write_recipe("clip.yaml", "seed: 1\ngrad_clip_norm: 1.0\n");
    assert_contains(load_err(p, 0, NULL), "clip.yaml:2: grad_clip_norm: ctrain does not support gradient clipping");
    p = write_recipe("ds.yaml", "deepspeed:\n  zero_optimization: {stage: 2}\n");
    assert_contains(load_err(p, 0, NULL), "ds.yaml:1: deepspeed: ctrain does not support DeepSpeed");
    p = write_recipe("ev.yaml", "evaluators:\n  - foo: {}\n");
    assert_contains(load_err(p, 0, NULL), "ev.yaml:1: evaluators: ctrain does not support evaluators");
    p = write_recipe("fine.yaml", "grad_clip_norm: -1\nfsdp_config: null\ndeterministic_mode: true\n"
                                  "progress_bar: false\n");
    Config c;
    load_ok(p, 0, NULL, &c);
    assert_int_equal(count_notes(&c, "grad_clip_norm: accepted, no effect in ctrain"), 1);
    assert_int_equal(count_notes(&c, "deterministic_mode: accepted"), 1);
    assert_int_equal(count_notes(&c, "progress_bar: accepted"), 1);
    config_free(&c);
    char *argv[] = {"--grad_clip_norm", "2"};
    assert_contains(load_err(RECIPE("resnet50_mild.yaml"), 2, argv),
                    "command line: grad_clip_norm: ctrain does not support");
    p = write_recipe("ar.yaml", "autoresume: true\n");
    assert_contains(load_err(p, 0, NULL), "ar.yaml:1: autoresume needs save_folder and run_name");
    p = write_recipe("ssr.yaml", "scale_schedule_ratio: 0\n");
    assert_contains(load_err(p, 0, NULL), "ssr.yaml:1: scale_schedule_ratio must be > 0");
    p = write_recipe("ga.yaml", "grad_accum: many\n");
    assert_contains(load_err(p, 0, NULL), "ga.yaml:1: grad_accum must be auto or an integer");
    p = write_recipe("ga2.yaml", "grad_accum: auto\n");
    load_ok(p, 0, NULL, &c);
    assert_int_equal(config_grad_accum(&c), 0);
    config_free(&c);
}

static void test_algorithm_checks(void **state) {
    (void)state;
    struct {
        const char *yaml, *msg;
    } bad[] = {
        {"algorithms:\n  - ema: {half_life: 100ba, update_interval: 1ep}\n",
         "bad.yaml:2: algorithms.ema: half_life and update_interval must be in the same unit"},
        {"algorithms:\n  - ema: {half_life: 0.5dur}\n", "half_life must be in ba or ep"},
        {"algorithms:\n  - label_smoothing: {smoothing: 1.0}\n", "algorithms.label_smoothing: smoothing must be"},
        {"algorithms:\n  - progressive_resizing: {mode: zoom}\n", "expected one of resize, crop, got 'zoom'"},
        {"algorithms:\n  - progressive_resizing: {resize_targets: true}\n", "resize_targets: true is not"},
        {"algorithms:\n  - randaugment: {augmentation_set: fancy}\n",
         "algorithms.randaugment.augmentation_set: expected one of all, safe, original, got 'fancy'"},
        {"algorithms:\n  - stochastic_depth: {target_layer_name: ResNetBottleneck, stochastic_method: sample, "
         "drop_warmup: 0.1dur}\n",
         "drop_warmup must be 0 with stochastic_method sample"},
        {"algorithms:\n  - colout: {resize_target: true}\n", "resize_target: true is not implemented"},
        {"algorithms:\n  - sam: {interval: 0}\n", "interval must be >= 1"},
        {"algorithms:\n  - channels_last: {foo: 1}\n", "unknown key 'algorithms.channels_last.foo'"},
        {"algorithms:\n  - ema: {smoothing: 0.9}\n", "unknown key 'algorithms.ema.smoothing'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_contains(load_err(write_recipe("bad.yaml", bad[i].yaml), 0, NULL), bad[i].msg);
    const char *p = write_recipe("good.yaml", "algorithms:\n  - blurpool: {blur_first: false}\n"
                                              "  - ema: {half_life: 2ep, update_interval: 1ep}\n"
                                              "  - squeeze_excite: {}\n  - cutmix: {}\n  - colout: {}\n");
    Config c;
    load_ok(p, 0, NULL, &c);
    assert_false(((const BlurpoolOptions *)algo(&c, "blurpool"))->blur_first);
    assert_int_equal(((const EmaOptions *)algo(&c, "ema"))->half_life.unit, TIME_EPOCH);
    const SqueezeExciteOptions *se = algo(&c, "squeeze_excite");
    assert_double_equal(se->latent_channels, 64, 0);
    assert_int_equal(se->min_channels, 128);
    assert_double_equal(((const CutmixOptions *)algo(&c, "cutmix"))->alpha, 1.0, 0);
    assert_double_equal(((const ColoutOptions *)algo(&c, "colout"))->p_col, 0.15, 1e-12);
    assert_false(((const EmaOptions *)algo(&c, "ema"))->train_with_ema_weights);
    config_free(&c);
}

/* ---- notes */

static void test_notes(void **state) {
    (void)state;
    Config c;
    load_ok(RECIPE("resnet50_mild.yaml"), 0, NULL, &c);
    assert_int_equal(count_notes(&c, "dataloader.pin_memory: accepted, no effect in ctrain ("), 1);
    assert_int_equal(count_notes(&c, "dataloader.num_workers"), 0); /* loader threads: meaningful */
    assert_int_equal(c.dataloader.num_workers, 8);
    assert_int_equal(c.dataloader.prefetch_factor, 2);
    assert_int_equal(count_notes(&c, "callbacks.lr_monitor: accepted, no effect in ctrain ("), 1);
    assert_int_equal(count_notes(&c, "callbacks.speed_monitor: accepted"), 1);
    assert_int_equal(count_notes(&c, "loggers.progress_bar: accepted"), 1);
    assert_int_equal(count_notes(&c, "algorithms"), 0);
    config_free(&c);
    load_ok(RECIPE("mlperf-v2.0-methods.yaml"), 0, NULL, &c);
    assert_int_equal(count_notes(&c, "callbacks.mlperf: accepted"), 1);
    config_free(&c);
}

/* ---- writing */

static char *emit_to_string(const Config *c) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    assert_non_null(f);
    config_emit(c, f);
    fclose(f);
    return buf;
}

static void test_emit_round_trip(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof RECIPES / sizeof RECIPES[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "reference/composer-recipes/%s", RECIPES[i]);
        char *argv[] = {"--scale_schedule_ratio", "0.36", "--run_name", "a b: c # d"};
        Config a, b;
        load_ok(path_of(rel), 4, argv, &a);
        char *text = emit_to_string(&a);
        const char *p = write_recipe("resolved.yaml", text);
        load_ok(p, 0, NULL, &b);
        char *again = emit_to_string(&b);
        /* identical apart from the comment line naming the source */
        assert_string_equal(strchr(text, '\n'), strchr(again, '\n'));
        assert_string_equal(b.run_name, "a b: c # d");
        assert_double_equal(b.scale_schedule_ratio, 0.36, 1e-15);
        assert_int_equal(b.algorithms.n, a.algorithms.n);
        assert_int_equal(b.precision, a.precision);
        free(text);
        free(again);
        config_free(&a);
        config_free(&b);
    }
    Config c;
    load_ok(RECIPE("resnet50_medium.yaml"), 0, NULL, &c);
    char *text = emit_to_string(&c);
    assert_contains(text, "\nmax_duration: 90ep\n");
    assert_contains(text, "\nscale_schedule_ratio: 1.5\n");
    assert_contains(text, "\nprecision: amp\n");
    assert_contains(text, "\n  - sam:\n      rho: 0.5\n      epsilon: 1.0e-12\n      interval: 10\n");
    assert_contains(text, "\n  - channels_last: {}\n");
    assert_contains(text, "\n      t_warmup: 8ep\n");
    assert_contains(text, "\ndevice:\n  gpu: {}\n");
    assert_contains(text, "\n  - lr_monitor: {}\n");
    assert_contains(text, "\ndataloader:\n  num_workers: 8\n  prefetch_factor: 2\n");
    free(text);
    config_free(&c);
}

static void test_tree(void **state) {
    (void)state;
    YNode *t;
    Error err;
    assert_int_equal(ytree_load_string("a: &x {b: 1, c: [2, 3]}\nd: *x\ne: 'null'\nf: ~\ng: \"8ep\"\n", "t", &t,
                                       &err), 0);
    YNode *d = ytree_get(t, "d");
    assert_int_equal(d->kind, Y_MAP);
    assert_string_equal(ytree_get(d, "b")->scalar, "1");
    assert_int_equal(ytree_get(t, "e")->kind, Y_SCALAR);
    assert_true(ytree_get(t, "e")->quoted);
    assert_int_equal(ytree_get(t, "f")->kind, Y_NULL);
    assert_int_equal(t->key_lines[1], 2);
    YNode *copy = ytree_copy(t);
    ytree_free(t);
    ytree_remove(copy, "a");
    assert_int_equal(copy->n, 4);
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    ytree_emit(copy, 0, f);
    fclose(f);
    assert_string_equal(buf, "d:\n  b: 1\n  c:\n    - 2\n    - 3\ne: \"null\"\nf: null\ng: \"8ep\"\n");
    YNode *back;
    assert_int_equal(ytree_load_string(buf, "back", &back, &err), 0);
    assert_true(ytree_get(back, "g")->quoted);
    free(buf);
    ytree_free(back);
    ytree_free(copy);
    assert_int_equal(ytree_load_string("a: &x [*x]\n", "rec", &t, &err), -1);
    assert_int_equal(ytree_load_string("a: {b: 1}\nc:\n  <<: {b: 2}\n", "merge", &t, &err), -1);
    assert_contains(err.msg, "merge:3: merge keys");
}

static void test_time_and_suggest(void **state) {
    (void)state;
    TimeSpec t;
    Error err;
    char buf[64];
    struct {
        const char *in, *out;
    } ok[] = {{"90ep", "90ep"}, {"100ba", "100ba"}, {"0.5dur", "0.5dur"}, {"2048sp", "2048sp"},
              {"0.0dur", "0dur"}, {"3", "3ep"},      {"1e3ba", "1000ba"}, {"1dur", "1dur"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(time_parse(ok[i].in, &t, &err), 0);
        time_format(&t, buf, sizeof buf);
        assert_string_equal(buf, ok[i].out);
    }
    const char *bad[] = {"", "ep", "-1ep", "1.5ep", "2.5", "10tok", "5 ep", "0x10ba", "inf"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(time_parse(bad[i], &t, &err), -1);
    const char *c[] = {"lr", "momentum", "weight_decay"};
    assert_string_equal(suggest_closest("momentun", c, 3), "momentum");
    assert_string_equal(suggest_closest("weight_dacay", c, 3), "weight_decay");
    assert_null(suggest_closest("banana", c, 3));
    assert_non_null(registry_find(&ALGORITHM_REGISTRY, "ema"));
    assert_null(registry_find(&ALGORITHM_REGISTRY, "alibi"));
    assert_int_equal(ALGORITHM_REGISTRY.n, 12);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mild),
        cmocka_unit_test(test_medium),
        cmocka_unit_test(test_spicy),
        cmocka_unit_test(test_hot_071_dict_form),
        cmocka_unit_test(test_mlperf),
        cmocka_unit_test(test_baseline),
        cmocka_unit_test(test_seed_command_line),
        cmocka_unit_test(test_ambiguous_alias),
        cmocka_unit_test(test_unknown_override),
        cmocka_unit_test(test_alias_and_bare_flag),
        cmocka_unit_test(test_list_override),
        cmocka_unit_test(test_key_equals_value),
        cmocka_unit_test(test_choice_replacement),
        cmocka_unit_test(test_list_registry_overrides),
        cmocka_unit_test(test_none_unsets),
        cmocka_unit_test(test_no_recipe),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_unknown_algorithm),
        cmocka_unit_test(test_bad_yaml),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_type_errors),
        cmocka_unit_test(test_required_missing),
        cmocka_unit_test(test_unsupported_keys),
        cmocka_unit_test(test_algorithm_checks),
        cmocka_unit_test(test_notes),
        cmocka_unit_test(test_emit_round_trip),
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_time_and_suggest),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < g_nwritten; i++) {
        remove(g_written[i]);
        free(g_written[i]);
    }
    if (g_dir[0]) remove(g_dir);
    return failed;
}
