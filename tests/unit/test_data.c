/* test_data.c — the in-memory loader: npy and IDX data sets, normalization, epoch order, augmentation that is
 * a real padded crop + flip, independence from the thread count, drop_last, and the error messages. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "data/loader.h"
#include "data/npy.h"
#include "testutil.h"

static char dir[512];

/* A recipe whose train_dataset is the given YAML flow mapping; returns the loaded config. */
static int load_dataset(const char *dataset_yaml, Config *cfg, Error *err) {
    char path[600];
    snprintf(path, sizeof path, "%s/recipe.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "model: {resnet: {model_name: resnet8, num_classes: 10}}\ntrain_dataset: %s\n", dataset_yaml);
    fclose(f);
    memset(cfg, 0, sizeof *cfg);
    return config_load(path, 0, NULL, cfg, err);
}

/* Writes images u8 [n, 4, 3, 2] with value (i*24 + y*6 + x*2 + c) and labels i % 3. */
static void write_npy(int n, bool float_images) {
    int64_t shape[4] = {n, 4, 3, 2}, lshape[1] = {n};
    uint8_t *u8 = malloc((size_t)n * 24);
    float *f32 = malloc((size_t)n * 24 * sizeof *f32);
    int64_t *lab = malloc((size_t)n * sizeof *lab);
    for (int i = 0; i < n * 24; i++) {
        u8[i] = (uint8_t)(i % 251);
        f32[i] = (float)(i % 251) * 0.5f;
    }
    for (int i = 0; i < n; i++) lab[i] = i % 3;
    char p[600];
    Error err;
    snprintf(p, sizeof p, "%s/x.npy", dir);
    assert_int_equal(npy_save(p, float_images ? NPY_F32 : NPY_U8, 4, shape, float_images ? (void *)f32 : (void *)u8, &err), 0);
    snprintf(p, sizeof p, "%s/y.npy", dir);
    assert_int_equal(npy_save(p, NPY_I64, 1, lshape, lab, &err), 0);
    free(u8);
    free(f32);
    free(lab);
}

static void test_npy_plain(void **state) {
    (void)state;
    write_npy(7, false);
    char yaml[1400];
    snprintf(yaml, sizeof yaml, "{npy: {images: %s/x.npy, labels: %s/y.npy, shuffle: false, drop_last: false, "
             "mean: [10, 20], std: [2, 4]}}", dir, dir);
    Config cfg;
    Error err = {{0}};
    assert_int_equal(load_dataset(yaml, &cfg, &err), 0);
    LoaderArgs a = {.batch_size = 3, .seed = 5, .train = true};
    Loader *l;
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), 0);
    assert_int_equal(loader_samples(l), 7);
    assert_int_equal(loader_batches(l), 3);
    assert_int_equal(loader_num_classes(l), 3);
    Batch b;
    for (int bi = 0; bi < 3; bi++) {
        assert_int_equal(loader_get(l, 0, bi, &b, &err), 0);
        assert_int_equal(b.n, bi < 2 ? 3 : 1);
        for (int i = 0; i < b.n; i++) {
            int s = bi * 3 + i;
            assert_int_equal(b.labels[i], s % 3);
            for (int k = 0; k < 24; k++) {
                int c = k % 2;
                float want = ((float)((s * 24 + k) % 251) - (c ? 20.0f : 10.0f)) * (c ? 0.25f : 0.5f);
                assert_true(fabsf(b.images[i * 24 + k] - want) < 1e-5f);
            }
        }
    }
    assert_int_equal(loader_get(l, 0, 3, &b, &err), -1);
    assert_int_equal(loader_set_output_size(l, 2, 2, &err), -1); /* in-memory data keeps its size */
    assert_non_null(strstr(err.msg, "cannot change its output size"));
    loader_destroy(l);
    config_free(&cfg);

    /* float32 images are used as they are */
    write_npy(4, true);
    snprintf(yaml, sizeof yaml, "{npy: {images: %s/x.npy, labels: %s/y.npy, shuffle: false}}", dir, dir);
    assert_int_equal(load_dataset(yaml, &cfg, &err), 0);
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), 0);
    assert_int_equal(loader_batches(l), 1); /* drop_last by default */
    assert_int_equal(loader_get(l, 0, 0, &b, &err), 0);
    for (int k = 0; k < 72; k++) assert_true(b.images[k] == (float)(k % 251) * 0.5f);
    loader_destroy(l);
    config_free(&cfg);
}

/* The output of an augmented sample equals the zero-padded crop of the original at some offset, flipped or
 * not; returns how many (dy, dx, flip) explain it. */
static int explanations(const float *out, const float *orig, int h, int w, int c, int pad) {
    int found = 0;
    for (int flip = 0; flip < 2; flip++)
        for (int dy = 0; dy <= 2 * pad; dy++)
            for (int dx = 0; dx <= 2 * pad; dx++) {
                bool ok = true;
                for (int y = 0; y < h && ok; y++)
                    for (int x = 0; x < w && ok; x++) {
                        int sx = (flip ? w - 1 - x : x) + dx - pad, sy = y + dy - pad;
                        for (int ch = 0; ch < c && ok; ch++) {
                            float want = (sy < 0 || sy >= h || sx < 0 || sx >= w) ? 0.0f
                                                                                  : orig[(sy * w + sx) * c + ch];
                            ok = out[(y * w + x) * c + ch] == want;
                        }
                    }
                found += ok;
            }
    return found;
}

static void test_augmentation_and_order(void **state) {
    (void)state;
    write_npy(40, true);
    char yaml[1400];
    snprintf(yaml, sizeof yaml, "{npy: {images: %s/x.npy, labels: %s/y.npy, crop_padding: 1, hflip: true}}", dir, dir);
    Config cfg;
    Error err = {{0}};
    assert_int_equal(load_dataset(yaml, &cfg, &err), 0);
    LoaderArgs a = {.batch_size = 8, .seed = 9, .train = true, .workers = 1, .batches_ahead = 1};
    LoaderArgs a3 = {.batch_size = 8, .seed = 9, .train = true, .workers = 3, .batches_ahead = 4};
    Loader *l, *l3;
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), 0);
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a3, &l3, &err), 0);
    Batch b1, b2;

    /* every epoch visits every sample once; two epochs differ; the same epoch repeats exactly */
    int seen[40] = {0};
    int32_t first_e0[8], first_e1[8];
    for (int bi = 0; bi < 5; bi++) {
        assert_int_equal(loader_get(l, 3, bi, &b1, &err), 0);
        assert_int_equal(loader_get(l3, 3, bi, &b2, &err), 0);
        /* the same bytes whatever the number of loader threads and the prefetch depth */
        assert_memory_equal(b1.images, b2.images, (size_t)8 * 24 * sizeof(float));
        assert_memory_equal(b1.labels, b2.labels, 8 * sizeof(int32_t));
        for (int i = 0; i < 8; i++) {
            /* recover the sample from its content: the unaugmented image is sample s */
            int matches = 0;
            for (int s = 0; s < 40; s++) {
                float orig[24];
                for (int k = 0; k < 24; k++) orig[k] = (float)((s * 24 + k) % 251) * 0.5f;
                int e = explanations(b1.images + i * 24, orig, 4, 3, 2, 1);
                if (e) {
                    matches++;
                    seen[s]++;
                    assert_int_equal(b1.labels[i], s % 3);
                }
            }
            assert_int_equal(matches, 1);
        }
        if (bi == 0) memcpy(first_e0, b1.labels, sizeof first_e0);
    }
    loader_destroy(l3);
    for (int s = 0; s < 40; s++) assert_int_equal(seen[s], 1);
    assert_int_equal(loader_get(l, 4, 0, &b1, &err), 0);
    memcpy(first_e1, b1.labels, sizeof first_e1);
    float e4[8 * 24];
    memcpy(e4, b1.images, sizeof e4);
    assert_int_equal(loader_get(l, 3, 0, &b2, &err), 0); /* random access back to epoch 3 */
    assert_memory_equal(b2.labels, first_e0, sizeof first_e0);
    /* 8 random picks of 40 (and their crops) agree between epochs with probability far below 1e-3 */
    assert_true(memcmp(first_e0, first_e1, sizeof first_e0) != 0 || memcmp(e4, b2.images, sizeof e4) != 0);

    /* evaluation loaders never shuffle or augment */
    LoaderArgs ev = {.batch_size = 8, .seed = 9, .train = false};
    Loader *le;
    assert_int_equal(loader_create(&cfg.train_dataset, "val_dataset", &ev, &le, &err), 0);
    assert_int_equal(loader_get(le, 2, 1, &b1, &err), 0);
    for (int k = 0; k < 8 * 24; k++) assert_true(b1.images[k] == (float)((8 * 24 + k) % 251) * 0.5f);
    loader_destroy(le);
    loader_destroy(l);
    config_free(&cfg);
}

static void test_fashion_mnist(void **state) {
    (void)state;
    if (!fopen("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb")) {
        fprintf(stderr, "note: dataset-fashion-mnist not installed; the IDX loader was not checked on it\n");
        return;
    }
    Config cfg;
    Error err = {{0}};
    assert_int_equal(load_dataset("{idx: {is_train: false, shuffle: false, drop_last: false}}", &cfg, &err), 0);
    LoaderArgs a = {.batch_size = 1000, .seed = 1, .train = false};
    Loader *l;
    assert_int_equal(loader_create(&cfg.train_dataset, "val_dataset", &a, &l, &err), 0);
    int h, w, c;
    loader_shape(l, &h, &w, &c);
    assert_int_equal(loader_samples(l), 10000);
    assert_int_equal(h * 100 + w * 10 + c, 28 * 100 + 28 * 10 + 1);
    assert_int_equal(loader_num_classes(l), 10);
    assert_string_equal(loader_class_names(l)[9], "Ankle boot");
    /* normalized with Fashion-MNIST's mean/std: the test set's mean is near 0 and std near 1 */
    Batch b;
    double s = 0, s2 = 0;
    for (int bi = 0; bi < 10; bi++) {
        assert_int_equal(loader_get(l, 0, bi, &b, &err), 0);
        for (int i = 0; i < 1000 * 784; i++) {
            s += b.images[i];
            s2 += (double)b.images[i] * b.images[i];
        }
    }
    double mean = s / 7840000, sd = sqrt(s2 / 7840000 - mean * mean);
    assert_true(fabs(mean) < 0.05 && fabs(sd - 1) < 0.05);
    loader_destroy(l);
    config_free(&cfg);
}

static void test_errors(void **state) {
    (void)state;
    Config cfg;
    Error err = {{0}};
    LoaderArgs a = {.batch_size = 4, .seed = 1, .train = true};
    Loader *l;
    /* a missing .beton names the file and the keys to set */
    assert_int_equal(load_dataset("{imagenet: {ffcv_dir: /x, use_ffcv: true}}", &cfg, &err), 0);
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), -1);
    assert_non_null(strstr(err.msg, "train_dataset.imagenet: /x/imagenet_train.ffcv not found"));
    assert_int_equal(loader_nominal_samples(&cfg.train_dataset), 1281167);
    config_free(&cfg);
    /* missing files name the path */
    assert_int_equal(load_dataset("{idx: {datadir: /nonexistent/fmnist}}", &cfg, &err), 0);
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/fmnist"));
    config_free(&cfg);
    /* label/image count mismatch; mean for the wrong number of channels */
    write_npy(6, false);
    char p[600], yaml[1400];
    int64_t five = 5;
    int64_t lab[5] = {0, 1, 2, 0, 1};
    snprintf(p, sizeof p, "%s/y5.npy", dir);
    assert_int_equal(npy_save(p, NPY_I64, 1, &five, lab, &err), 0);
    snprintf(yaml, sizeof yaml, "{npy: {images: %s/x.npy, labels: %s}}", dir, p);
    assert_int_equal(load_dataset(yaml, &cfg, &err), 0);
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), -1);
    assert_non_null(strstr(err.msg, "expected labels of shape [6]"));
    config_free(&cfg);
    snprintf(yaml, sizeof yaml, "{npy: {images: %s/x.npy, labels: %s/y.npy, mean: [1, 2, 3], std: [1, 1, 1]}}", dir, dir);
    assert_int_equal(load_dataset(yaml, &cfg, &err), 0);
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), -1);
    assert_non_null(strstr(err.msg, "give 1 or 2 values"));
    config_free(&cfg);
    /* more samples per batch than the data set has, with drop_last */
    LoaderArgs big = {.batch_size = 100, .seed = 1, .train = true};
    snprintf(yaml, sizeof yaml, "{npy: {images: %s/x.npy, labels: %s/y.npy, mean: [0], std: [1]}}", dir, dir);
    assert_int_equal(load_dataset(yaml, &cfg, &err), 0);
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &big, &l, &err), -1);
    assert_non_null(strstr(err.msg, "make no batch"));
    config_free(&cfg);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s", tu_tempdir());
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_plain),
        cmocka_unit_test(test_augmentation_and_order),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
