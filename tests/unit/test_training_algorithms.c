/* test_training_algorithms.c — algorithms that change the training step, end to end through the trainer against
 * PyTorch: SAM (Composer's SAMOptimizer semantics, tools/make_algorithm_fixtures.py) on a fixed batch, every other
 * step perturbed; the losses reported and the weights and BN statistics after training must match. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/npy.h"
#include "io/safetensors.h"
#include "testutil.h"
#include "train/trainer.h"

/* Copies the fixture's "<prefix><key>" tensors to a file with plain keys (a torchvision-style state_dict). */
static void write_state_dict(const SafeTensors *st, const char *prefix, const char *path) {
    StWriter *w = st_writer_new();
    Error err;
    size_t pl = strlen(prefix);
    for (int i = 0; i < st_count(st); i++) {
        const StTensor *t = st_at(st, i);
        if (strncmp(t->name, prefix, pl) != 0) continue;
        assert_int_equal(st_writer_add(w, t->name + pl, t->dtype, t->ndim, t->shape, t->data, &err), 0);
    }
    assert_int_equal(st_writer_write(w, path, &err), 0);
    st_writer_free(w);
}

static void test_sam_matches_pytorch(void **state) {
    (void)state;
    Error err = {{0}};
    SafeTensors *st;
    assert_int_equal(st_open(tu_fixture("algo_sam.safetensors"), &st, &err), 0);
    cJSON *cfgj = cJSON_Parse(st_metadata(st, "config"));
    const char *dir = tu_tempdir();
    char x[512], y[512], init[512], recipe[512], ck[512], run[512];
    snprintf(x, sizeof x, "%s/x.npy", dir);
    snprintf(y, sizeof y, "%s/y.npy", dir);
    snprintf(init, sizeof init, "%s/init.safetensors", dir);
    snprintf(recipe, sizeof recipe, "%s/recipe.yaml", dir);
    snprintf(ck, sizeof ck, "%s/ck", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    const StTensor *tx = st_get(st, "x"), *ty = st_get(st, "labels");
    assert_int_equal(npy_save(x, NPY_F32, 4, tx->shape, tx->data, &err), 0);
    assert_int_equal(npy_save(y, NPY_I64, 1, ty->shape, ty->data, &err), 0);
    write_state_dict(st, "init.", init);
    FILE *f = fopen(recipe, "w");
    fprintf(f,
            "model: {resnet: {model_name: resnet8, width: 4, num_classes: 7}}\n"
            "train_dataset: {npy: {images: %s, labels: %s, shuffle: false}}\n"
            "optimizers: {sgd: {lr: %g, momentum: %g, weight_decay: %g}}\n"
            "algorithms: [{sam: {rho: %g, epsilon: %g, interval: %d}}]\n"
            "max_duration: %dba\ntrain_batch_size: 8\neval_interval: 0\nsave_folder: %s\nsave_interval: 100ba\n"
            "load_path: %s\nload_weights_only: true\nseed: 1\n",
            x, y, cJSON_GetObjectItem(cfgj, "lr")->valuedouble, cJSON_GetObjectItem(cfgj, "momentum")->valuedouble,
            cJSON_GetObjectItem(cfgj, "weight_decay")->valuedouble, cJSON_GetObjectItem(cfgj, "rho")->valuedouble,
            cJSON_GetObjectItem(cfgj, "epsilon")->valuedouble, (int)cJSON_GetObjectItem(cfgj, "interval")->valuedouble,
            (int)cJSON_GetObjectItem(cfgj, "steps")->valuedouble, ck, init);
    fclose(f);
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(config_load(recipe, 0, NULL, &cfg, &err), 0);
    TrainerOptions opts = {.device = "cpu", .threads = 2, .run_dir = run, .quiet = true, .need_train_data = true};
    Trainer *t;
    if (trainer_create(&t, &cfg, &opts, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_true(err.msg[0] == 0);
    if (trainer_fit(t, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_true(err.msg[0] == 0);

    /* the reported losses: the first pass of each step */
    float *ref_losses = malloc(4 * sizeof(float));
    assert_int_equal(st_read_f32(st_get(st, "losses"), ref_losses, 4, &err), 0);
    char metrics[600];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
    FILE *mf = fopen(metrics, "r");
    char line[4096];
    int k = 0;
    while (fgets(line, sizeof line, mf)) {
        cJSON *o = cJSON_Parse(line);
        if (strcmp(cJSON_GetObjectItem(o, "event")->valuestring, "batch") == 0) {
            double l = cJSON_GetObjectItem(o, "loss")->valuedouble;
            if (fabs(l - ref_losses[k]) > 1e-4 * fabs(ref_losses[k])) fprintf(stderr, "step %d loss %g vs %g\n", k, l, ref_losses[k]);
            assert_true(fabs(l - ref_losses[k]) <= 1e-4 * fabs(ref_losses[k]));
            k++;
        }
        cJSON_Delete(o);
    }
    fclose(mf);
    assert_int_equal(k, 4);

    /* the weights and BN statistics after the 4 steps (the final checkpoint) */
    char final[600];
    snprintf(final, sizeof final, "%s/ep4-ba4.safetensors", ck);
    SafeTensors *got;
    assert_int_equal(st_open(final, &got, &err), 0);
    for (int i = 0; i < st_count(got); i++) {
        const StTensor *g = st_at(got, i);
        if (g->dtype != ST_F32) continue;
        char name[200];
        snprintf(name, sizeof name, "final.%s", g->name);
        const StTensor *r = st_get(st, name);
        assert_non_null(r);
        float *a = malloc((size_t)g->numel * sizeof *a), *b = malloc((size_t)g->numel * sizeof *b);
        assert_int_equal(st_read_f32(g, a, g->numel, &err), 0);
        assert_int_equal(st_read_f32(r, b, g->numel, &err), 0);
        double e = tu_rel_error(a, b, (size_t)g->numel);
        if (e > 1e-3) fprintf(stderr, "%s: relative error %.3g\n", g->name, e);
        assert_true(e <= 1e-3);
        free(a);
        free(b);
    }
    st_close(got);
    free(ref_losses);
    trainer_destroy(t);
    config_free(&cfg);
    cJSON_Delete(cfgj);
    st_close(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sam_matches_pytorch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
