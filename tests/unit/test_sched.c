/* test_sched.c — learning-rate schedules and scale_schedule_ratio against Composer 0.9's formulas
 * (reference/composer.md §2 and §4), with values worked out by hand in the comments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "testutil.h"
#include "train/timeline.h"

/* Loads YAML text (written to a temp file) with overrides; fails the test on error. */
static void load_text(const char *yaml, int n, char **overrides, Config *cfg) {
    char path[512];
    snprintf(path, sizeof path, "%s/recipe.yaml", tu_tempdir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(yaml, f);
    fclose(f);
    memset(cfg, 0, sizeof *cfg);
    Error err = {{0}};
    if (config_load(path, n, overrides, cfg, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_true(err.msg[0] == 0);
}

#define BASE                                                                                                     \
    "model: {resnet: {model_name: resnet20, num_classes: 10}}\n"                                                 \
    "train_dataset: {synthetic: {num_samples: 1000, image_size: 8}}\n"                                           \
    "optimizers: {sgd: {lr: 1.0}}\n"                                                                             \
    "train_batch_size: 100\n"

static void near(double got, double want) {
    if (fabs(got - want) > 1e-9 * (1 + fabs(want))) fprintf(stderr, "got %.12g, want %.12g\n", got, want);
    assert_true(fabs(got - want) <= 1e-9 * (1 + fabs(want)));
}

/* The seed's command line: mild at SSR 0.36 on ImageNet's 1,281,167 images → 32 epochs of 625 batches,
 * warmup 8ep = 5000 batches (not scaled), cosine to 0 at 20,000. */
static void test_mild_seed_command_line(void **state) {
    (void)state;
    char *ov[] = {"--scale_schedule_ratio", "0.36", "--train_dataset.imagenet.ffcv_dir", "/x",
                  "--val_dataset.imagenet.ffcv_dir", "/x"};
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    Error err = {{0}};
    assert_int_equal(config_load(tu_shared("reference/composer-recipes/resnet50_mild.yaml"), 6, ov, &cfg, &err), 0);
    Timeline t;
    assert_int_equal(timeline_compute(&cfg, 1281167, &t, &err), 0);
    assert_int_equal(t.max_duration.unit, TIME_EPOCH);
    near(t.max_duration.value, 32);
    assert_int_equal(t.steps_per_epoch, 625);
    assert_int_equal(t.total_batches, 20000);
    assert_int_equal(t.max_epochs, 32);
    assert_int_equal(t.warmup_batches, 5000);
    near(timeline_lr(&t, 0), 0.0);                 /* batch 0 trains at lr 0 */
    near(timeline_lr(&t, 2500), 2.048 * 0.5);      /* half-way up the warmup */
    near(timeline_lr(&t, 5000), 2.048);            /* peak */
    near(timeline_lr(&t, 12500), 2.048 * 0.5);     /* cos(pi/2): half of the peak */
    near(timeline_lr(&t, 20000), 0.0);
    near(timeline_lr(&t, 17500), 2.048 * (1 + cos(M_PI * 12500.0 / 15000.0)) / 2);
    config_free(&cfg);

    /* MLPerf methods: SSR 0.32 → int(90 * 0.32) = 28 epochs */
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(config_load(tu_shared("reference/composer-recipes/mlperf-v2.0-methods.yaml"), 0, NULL, &cfg, &err), 0);
    assert_int_equal(timeline_compute(&cfg, 1281167, &t, &err), 0);
    near(t.max_duration.value, 28);
    assert_int_equal(t.total_batches, 28 * 625);
    assert_int_equal(t.warmup_batches, 5000);
    config_free(&cfg);
}

static void test_ssr_scales_ep_and_ba_not_warmup(void **state) {
    (void)state;
    /* 10 batches/epoch; max 20ep x SSR 0.5 = 10ep = 100 batches; milestones 4ep, 150ba scale to 20, 75 */
    char *ov[] = {"--scale_schedule_ratio", "0.5"};
    Config cfg;
    load_text(BASE "max_duration: 20ep\nschedulers: {multistep_with_warmup: {t_warmup: 5ba, milestones: [4ep, 150ba], "
                   "gamma: 0.5}}\n", 2, ov, &cfg);
    Timeline t;
    Error err;
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), 0);
    assert_int_equal(t.total_batches, 100);
    assert_int_equal(t.warmup_batches, 5);
    near(timeline_lr(&t, 2), 2.0 / 5);
    near(timeline_lr(&t, 19), 1.0);
    near(timeline_lr(&t, 20), 0.5);
    near(timeline_lr(&t, 74), 0.5);
    near(timeline_lr(&t, 75), 0.25);
    config_free(&cfg);

    /* max_duration truncates: 3ep x 0.5 = 1ep; 3ep x 0.3 = 0 is an error */
    char *zero[] = {"--scale_schedule_ratio", "0.3"};
    load_text(BASE "max_duration: 3ep\nschedulers: {constant: {}}\n", 2, zero, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), -1);
    assert_non_null(strstr(err.msg, "truncates to 0"));
    config_free(&cfg);
}

static void test_linear_and_cosine_shapes(void **state) {
    (void)state;
    Config cfg;
    Timeline t;
    Error err;
    /* linear_decay_with_warmup: warmup 10 batches, then alpha_i 1 → alpha_f 0.1 over batches 10..100 */
    load_text(BASE "max_duration: 10ep\nschedulers: [{linear_decay_with_warmup: {t_warmup: 1ep, alpha_f: 0.1}}]\n", 0,
              NULL, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), 0);
    near(timeline_lr(&t, 0), 0);
    near(timeline_lr(&t, 5), 0.5);
    near(timeline_lr(&t, 10), 1.0);
    near(timeline_lr(&t, 55), 1.0 + 0.5 * (0.1 - 1.0));
    near(timeline_lr(&t, 100), 0.1);
    near(timeline_lr(&t, 500), 0.1);
    config_free(&cfg);

    /* cosine_decay with t_max 0.5dur of a 10ep run = 50 batches; alpha_f 0.2 */
    load_text(BASE "max_duration: 10ep\nschedulers: {cosine_decay: {t_max: 0.5dur, alpha_f: 0.2}}\n", 0, NULL, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), 0);
    near(timeline_lr(&t, 0), 1.0);
    near(timeline_lr(&t, 25), 0.2 + 0.8 * 0.5);
    near(timeline_lr(&t, 50), 0.2);
    near(timeline_lr(&t, 80), 0.2);
    config_free(&cfg);

    /* constant: alpha 0.3 until t_max 20ba, then 1; step: gamma^floor(t/30) */
    load_text(BASE "max_duration: 100ba\nschedulers: {constant: {alpha: 0.3, t_max: 20ba}}\n", 0, NULL, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), 0);
    assert_int_equal(t.total_batches, 100);
    assert_int_equal(t.max_epochs, 10);
    near(timeline_lr(&t, 19), 0.3);
    near(timeline_lr(&t, 20), 1.0);
    config_free(&cfg);
    load_text(BASE "max_duration: 100ba\nschedulers: {step: {step_size: 30ba, gamma: 0.5}}\n", 0, NULL, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), 0);
    near(timeline_lr(&t, 29), 1.0);
    near(timeline_lr(&t, 30), 0.5);
    near(timeline_lr(&t, 95), 0.125);
    config_free(&cfg);
}

/* scale_warmup: Composer 0.9 stretches the ramp by SSR but keeps the boundary unscaled (composer#3941). */
static void test_scale_warmup(void **state) {
    (void)state;
    char *ov[] = {"--scale_schedule_ratio", "2"};
    Config cfg;
    Timeline t;
    Error err;
    load_text(BASE "max_duration: 10ep\nschedulers: {cosine_decay_with_warmup: {t_warmup: 10ba, scale_warmup: true}}\n",
              2, ov, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), 0);
    assert_int_equal(t.total_batches, 200);
    near(timeline_lr(&t, 5), 5.0 / 20);   /* ramp over 20 batches */
    near(timeline_lr(&t, 10), 1.0);       /* boundary at 10: cosine starts at its top */
    config_free(&cfg);
}

static void test_grad_accum_and_subsets(void **state) {
    (void)state;
    char *ov[] = {"--grad_accum", "3", "--train_subset_num_batches", "4"};
    Config cfg;
    Timeline t;
    Error err;
    load_text(BASE "max_duration: 2ep\n", 4, ov, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1000, &t, &err), 0);
    assert_int_equal(t.micro_batch, 34);  /* ceil(100 / 3) */
    assert_int_equal(t.steps_per_epoch, 4);
    assert_int_equal(t.total_batches, 8);
    near(timeline_lr(&t, 3), 1.0);        /* no scheduler: constant */
    config_free(&cfg);
    /* drop_last false keeps the partial batch */
    load_text(BASE "max_duration: 1ep\n", 0, NULL, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1050, &t, &err), 0);
    assert_int_equal(t.steps_per_epoch, 10);
    config_free(&cfg);
    char *nodrop[] = {"--train_dataset.synthetic.drop_last", "false"};
    load_text(BASE "max_duration: 1ep\n", 2, nodrop, &cfg);
    assert_int_equal(timeline_compute(&cfg, 1050, &t, &err), 0);
    assert_int_equal(t.steps_per_epoch, 11);
    config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mild_seed_command_line),
        cmocka_unit_test(test_ssr_scales_ep_and_ba_not_warmup),
        cmocka_unit_test(test_linear_and_cosine_shapes),
        cmocka_unit_test(test_scale_warmup),
        cmocka_unit_test(test_grad_accum_and_subsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
