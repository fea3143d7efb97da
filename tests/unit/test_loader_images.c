/* test_loader_images.c — the ImageNet path of the loader: epoch orders and sharding, FFCV files through the
 * loader (real FFCV-written fixtures: labels, crops, raw vs JPEG samples, DCT-scaled vs full decodes, thread
 * counts, page reads), ImageFolder trees (torchvision's order, a corrupt file replaced and counted), and
 * ctrain convert's .beton output read back. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config/config.h"
#include "core/fsutil.h"
#include "data/beton.h"
#include "data/convert.h"
#include "data/crop.h"
#include "data/imagefolder.h"
#include "data/jpeg.h"
#include "data/order.h"
#include "testutil.h"

static char dir[512];

/* ------------------------------------------------------------------ orders */

static int64_t page_of_100(const void *ctx, int64_t s) {
    (void)ctx;
    return s / 100;
}

static void check_permutation(const int64_t *o, int64_t n) {
    char *seen = calloc((size_t)n, 1);
    for (int64_t i = 0; i < n; i++) {
        assert_true(o[i] >= 0 && o[i] < n);
        assert_int_equal(seen[o[i]], 0);
        seen[o[i]] = 1;
    }
    free(seen);
}

static void test_orders(void **state) {
    (void)state;
    Error err;
    int64_t n = 10000, a[10000], b[10000];
    assert_int_equal(order_make(ORDER_SEQUENTIAL, 1, 0, n, 0, 1, 0, NULL, NULL, a, &err), 0);
    for (int64_t i = 0; i < n; i++) assert_int_equal(a[i], i);
    assert_int_equal(order_make(ORDER_RANDOM, 1, 0, n, 0, 1, 0, NULL, NULL, a, &err), 0);
    check_permutation(a, n);
    assert_int_equal(order_make(ORDER_RANDOM, 1, 1, n, 0, 1, 0, NULL, NULL, b, &err), 0);
    assert_true(memcmp(a, b, sizeof a) != 0); /* a new order each epoch */
    /* quasi-random: a permutation, and never more than `window` pages partly read at once */
    int window = 8;
    assert_int_equal(order_make(ORDER_QUASI_RANDOM, 1, 0, n, 0, 1, window, page_of_100, NULL, a, &err), 0);
    check_permutation(a, n);
    int first[100], last[100];
    for (int p = 0; p < 100; p++) first[p] = -1;
    for (int i = 0; i < n; i++) {
        int p = (int)(a[i] / 100);
        if (first[p] < 0) first[p] = i;
        last[p] = i;
    }
    for (int i = 0; i < n; i += 37) {
        int live = 0;
        for (int p = 0; p < 100; p++) live += first[p] <= i && i <= last[p];
        assert_true(live <= window);
    }
    /* sharding: 3 ranks of ceil(10000/3) = 3334, together every sample, padded by repeating the start */
    int64_t per = order_per_rank(n, 3), *r = malloc((size_t)per * 3 * sizeof *r);
    assert_int_equal(per, 3334);
    for (int k = 0; k < 3; k++)
        assert_int_equal(order_make(ORDER_RANDOM, 1, 0, n, k, 3, 0, NULL, NULL, r + k * per, &err), 0);
    char *seen = calloc((size_t)n, 1);
    for (int64_t i = 0; i < per * 3; i++) seen[r[i]] = 1;
    for (int64_t i = 0; i < n; i++) assert_int_equal(seen[i], 1);
    /* rank k takes positions k, k+3, ... of the epoch's permutation */
    assert_int_equal(order_make(ORDER_RANDOM, 1, 0, n, 0, 1, 0, NULL, NULL, a, &err), 0);
    assert_int_equal(r[1 * per + 5], a[1 + 5 * 3]);
    free(seen);
    free(r);
}

/* ------------------------------------------------------------------ FFCV files */

/* A config whose val_dataset / train_dataset is an imagenet entry reading fixtures/ffcv/<file>. */
static void load_imagenet(Config *cfg, const char *file, const char *extra) {
    char path[600], yaml[2000];
    snprintf(path, sizeof path, "%s/recipe.yaml", dir);
    const char *ffcv_dir = tu_shared("fixtures/ffcv");
    snprintf(yaml, sizeof yaml,
             "model: {resnet: {model_name: resnet8}}\n"
             "train_dataset: {imagenet: {use_ffcv: true, ffcv_dir: %s, ffcv_dest: %s, crop_size: 32, is_train: true%s}}\n"
             "val_dataset: {imagenet: {use_ffcv: true, ffcv_dir: %s, ffcv_dest: %s, crop_size: 32, resize_size: 40, "
             "is_train: false%s}}\neval_batch_size: 8\n",
             ffcv_dir, file, extra, ffcv_dir, file, extra);
    FILE *f = fopen(path, "w");
    fputs(yaml, f);
    fclose(f);
    memset(cfg, 0, sizeof *cfg);
    Error err = {{0}};
    if (config_load(path, 0, NULL, cfg, &err)) fprintf(stderr, "%s\n", err.msg);
    assert_true(err.msg[0] == 0);
}

/* All batches of an epoch, concatenated: images [n, 32, 32, 3] and labels [n]. */
static int64_t read_epoch(Loader *l, int64_t epoch, float *images, int32_t *labels) {
    Error err = {{0}};
    Batch b;
    int64_t at = 0;
    for (int64_t k = 0; k < loader_batches(l); k++) {
        if (loader_get(l, epoch, k, &b, &err)) fprintf(stderr, "%s\n", err.msg);
        assert_true(err.msg[0] == 0);
        memcpy(images + at * 32 * 32 * 3, b.images, (size_t)b.n * 32 * 32 * 3 * sizeof(float));
        memcpy(labels + at, b.labels, (size_t)b.n * sizeof(int32_t));
        at += b.n;
    }
    return at;
}

static void test_ffcv_fixtures_through_the_loader(void **state) {
    (void)state;
    Config raw_cfg, jpg_cfg;
    load_imagenet(&raw_cfg, "rgb_label_raw.beton", ", drop_last: false");
    load_imagenet(&jpg_cfg, "rgb_label_jpg.beton", ", drop_last: false");
    Error err = {{0}};
    LoaderArgs ev = {.batch_size = 5, .seed = 3, .train = false, .workers = 2};
    Loader *lr, *lj;
    assert_int_equal(loader_create(&raw_cfg.val_dataset, "val_dataset", &ev, &lr, &err), 0);
    assert_int_equal(loader_create(&jpg_cfg.val_dataset, "val_dataset", &ev, &lj, &err), 0);
    assert_int_equal(loader_samples(lr), 24);
    assert_int_equal(loader_batches(lr), 5); /* 24 samples in batches of 5, the last one short */
    float *ir = malloc(24 * 32 * 32 * 3 * sizeof(float)), *ij = malloc(24 * 32 * 32 * 3 * sizeof(float));
    int32_t lbr[24], lbj[24];
    assert_int_equal(read_epoch(lr, 0, ir, lbr), 24);
    assert_int_equal(read_epoch(lj, 0, ij, lbj), 24);
    /* labels in file order (sequential for evaluation), the same in both files */
    Beton *b;
    assert_int_equal(beton_open(tu_shared("fixtures/ffcv/rgb_label_raw.beton"), &b, &err), 0);
    int lf = beton_find_field(b, "label");
    for (int i = 0; i < 24; i++) {
        assert_int_equal(lbr[i], beton_get_int(b, lf, i));
        assert_int_equal(lbj[i], lbr[i]);
    }
    /* the JPEG file holds the raw file's pixels, JPEG-compressed at quality 90: each photo's crop (decoded at a
     * DCT scale where the crop allows) differs from the raw one by at most that image's JPEG loss (the fixture's
     * pil_vs_pre_encode mean |diff|, in pixel levels) plus 1 level; the synthetic images (tiny, striped, noise)
     * are compared on a part of the image that the whole image's loss does not describe, so they get twice it
     * plus 3 levels */
    uint8_t *text;
    size_t tsize;
    assert_int_equal(fs_read_all(tu_shared("fixtures/ffcv/rgb_label_jpg.expected.json"), &text, &tsize, &err), 0);
    cJSON *expect = cJSON_Parse((const char *)text);
    assert_non_null(expect);
    int im_field = beton_find_field(b, "image");
    const double stdv[3] = {58.395, 57.12, 57.375};
    for (int i = 0; i < 24; i++) {
        double sum = 0;
        for (int p = 0; p < 32 * 32 * 3; p++) sum += fabs(ir[(size_t)i * 3072 + p] - ij[(size_t)i * 3072 + p]) * stdv[p % 3];
        const cJSON *loss = cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(expect, "samples"), i), "image"),
                                "pil_vs_pre_encode"), "mean_abs_diff");
        double mad = sum / 3072;
        BetonImage shape;
        assert_int_equal(beton_get_image(b, im_field, i, &shape, &err), 0);
        bool photo = shape.width >= 64 && shape.height >= 64 && i != 16 && i != 17; /* 16, 17: synthetic */
        double bound = photo ? loss->valuedouble + 1 : 2 * loss->valuedouble + 3;
        if (getenv("CTRAIN_VERBOSE") || mad > bound)
            fprintf(stderr, "sample %d: raw vs JPEG crop %.2f levels, JPEG loss %.2f\n", i, mad, loss->valuedouble);
        assert_true(mad <= bound);
    }
    cJSON_Delete(expect);
    free(text);
    /* a raw sample's center crop, checked by hand on a 1x1 image (sample with width 1 and height 1): every
     * output pixel is that one pixel, normalized with the ImageNet constants */
    for (int i = 0; i < 24; i++) {
        BetonImage im;
        assert_int_equal(beton_get_image(b, im_field, i, &im, &err), 0);
        if (im.width != 1 || im.height != 1) continue;
        const uint8_t *px = beton_data(b, im.ptr);
        const double mean[3] = {123.675, 116.28, 103.53}, std[3] = {58.395, 57.12, 57.375};
        for (int p = 0; p < 32 * 32; p++)
            for (int ch = 0; ch < 3; ch++)
                assert_true(fabs(ir[((size_t)i * 1024 + p) * 3 + ch] - (px[ch] - mean[ch]) / std[ch]) < 1e-5);
    }
    beton_close(b);
    loader_destroy(lr);
    loader_destroy(lj);

    /* training crops: the same batches for 1 and 3 workers, with page reads or the page cache; random order */
    Config pr_cfg;
    load_imagenet(&pr_cfg, "rgb_label_proportion.beton", ", os_cache: false, order: quasi_random");
    LoaderArgs t1 = {.batch_size = 8, .seed = 5, .train = true, .workers = 1, .batches_ahead = 1};
    LoaderArgs t3 = {.batch_size = 8, .seed = 5, .train = true, .workers = 3, .batches_ahead = 3};
    Loader *a1, *a3, *am;
    assert_int_equal(loader_create(&pr_cfg.train_dataset, "train_dataset", &t1, &a1, &err), 0);
    assert_int_equal(loader_create(&pr_cfg.train_dataset, "train_dataset", &t3, &a3, &err), 0);
    ((ImagenetOptions *)pr_cfg.train_dataset.options)->os_cache = true;
    assert_int_equal(loader_create(&pr_cfg.train_dataset, "train_dataset", &t3, &am, &err), 0);
    float *x1 = malloc(64 * 32 * 32 * 3 * sizeof(float)), *x3 = malloc(64 * 32 * 32 * 3 * sizeof(float));
    float *xm = malloc(64 * 32 * 32 * 3 * sizeof(float));
    int32_t y1[64], y3[64], ym[64];
    for (int e = 0; e < 2; e++) {
        assert_int_equal(read_epoch(a1, e, x1, y1), 64);
        assert_int_equal(read_epoch(a3, e, x3, y3), 64);
        assert_int_equal(read_epoch(am, e, xm, ym), 64);
        assert_memory_equal(x1, x3, 64 * 32 * 32 * 3 * sizeof(float));
        assert_memory_equal(y1, y3, sizeof y1);
        assert_memory_equal(x1, xm, 64 * 32 * 32 * 3 * sizeof(float));
    }
    loader_destroy(a1);
    loader_destroy(a3);
    loader_destroy(am);
    free(x1);
    free(x3);
    free(xm);
    free(ir);
    free(ij);
    config_free(&raw_cfg);
    config_free(&jpg_cfg);
    config_free(&pr_cfg);
}

/* DCT-scaled decoding changes the crops only slightly against FFCV's full decode. */
static void test_dct_scaling(void **state) {
    (void)state;
    Config on, off;
    load_imagenet(&on, "rgb_label_proportion.beton", ", dct_scaling: true");
    load_imagenet(&off, "rgb_label_proportion.beton", ", dct_scaling: false");
    Error err = {{0}};
    LoaderArgs ev = {.batch_size = 65, .seed = 0, .train = false, .workers = 2};
    Loader *a, *b;
    assert_int_equal(loader_create(&on.val_dataset, "val_dataset", &ev, &a, &err), 0);
    assert_int_equal(loader_create(&off.val_dataset, "val_dataset", &ev, &b, &err), 0);
    float *xa = malloc(65 * 32 * 32 * 3 * sizeof(float)), *xb = malloc(65 * 32 * 32 * 3 * sizeof(float));
    int32_t ya[65], yb[65];
    assert_int_equal(read_epoch(a, 0, xa, ya), 65);
    assert_int_equal(read_epoch(b, 0, xb, yb), 65);
    double sum = 0, worst = 0;
    for (int i = 0; i < 65 * 32 * 32 * 3; i++) {
        double d = fabs(xa[i] - xb[i]);
        sum += d;
        worst = d > worst ? d : worst;
    }
    fprintf(stderr, "DCT-scaled vs full decode (32 px center crops of up to 500 px images): mean |diff| %.4f, "
                    "max %.3f (normalized units)\n", sum / (65 * 32 * 32 * 3), worst);
    assert_true(sum / (65 * 32 * 32 * 3) < 0.01);
    loader_destroy(a);
    loader_destroy(b);
    free(xa);
    free(xb);
    config_free(&on);
    config_free(&off);
}

/* Changing the output size between epochs (progressive resizing) without restarting the loader gives what a
 * loader made at that size gives; a larger size or an in-memory dataset is refused. */
static void test_output_size_change(void **state) {
    (void)state;
    Config big, small;
    load_imagenet(&big, "rgb_label_proportion.beton", "");
    load_imagenet(&small, "rgb_label_proportion.beton", "");
    ((ImagenetOptions *)small.train_dataset.options)->crop_size = 24;
    Error err = {{0}};
    LoaderArgs a = {.batch_size = 8, .seed = 2, .train = true, .workers = 2, .batches_ahead = 3};
    Loader *l, *ref;
    assert_int_equal(loader_create(&big.train_dataset, "train_dataset", &a, &l, &err), 0);
    assert_int_equal(loader_create(&small.train_dataset, "train_dataset", &a, &ref, &err), 0);
    Batch b, r;
    assert_int_equal(loader_get(l, 0, 0, &b, &err), 0); /* prefetches more batches at 32 px */
    assert_int_equal(b.h, 32);
    assert_int_equal(loader_set_output_size(l, 24, 24, &err), 0);
    assert_int_equal(loader_get(l, 1, 2, &b, &err), 0);
    assert_int_equal(loader_get(ref, 1, 2, &r, &err), 0);
    assert_int_equal(b.h * 100 + b.w, 24 * 100 + 24);
    assert_memory_equal(b.images, r.images, (size_t)8 * 24 * 24 * 3 * sizeof(float));
    assert_memory_equal(b.labels, r.labels, 8 * sizeof(int32_t));
    assert_int_equal(loader_get(l, 1, 3, &b, &err), 0); /* the prefetch continues at the new size */
    assert_int_equal(loader_get(ref, 1, 3, &r, &err), 0);
    assert_memory_equal(b.images, r.images, (size_t)8 * 24 * 24 * 3 * sizeof(float));
    assert_int_equal(loader_set_output_size(l, 40, 40, &err), -1);
    assert_non_null(strstr(err.msg, "larger"));
    loader_destroy(l);
    loader_destroy(ref);
    config_free(&big);
    config_free(&small);
}

/* ------------------------------------------------------------------ ImageFolder and convert */

static void write_jpeg_file(const char *path, int h, int w, int seed) {
    uint8_t *rgb = malloc((size_t)h * w * 3);
    for (int i = 0; i < h * w * 3; i++) rgb[i] = (uint8_t)((i * 7 + seed * 31) & 0xFF);
    JpegCodec *c = jpeg_codec_new();
    uint8_t *jpg;
    size_t size;
    Error err;
    assert_int_equal(jpeg_encode(c, rgb, w, h, 90, &jpg, &size, &err), 0);
    FILE *f = fopen(path, "wb");
    fwrite(jpg, 1, size, f);
    fclose(f);
    free(jpg);
    free(rgb);
    jpeg_codec_free(c);
}

/* root/train/{b_cats (3 images, one in a subfolder), a_dogs (2 images + a corrupt one), c_empty}, + noise */
static void make_tree(const char *root) {
    char p[800];
    Error err;
    const char *dirs[] = {"train/a_dogs", "train/b_cats/sub", "train/c_empty", "val/a_dogs"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        assert_int_equal(fs_mkdirs(p, &err), 0);
    }
    const char *files[] = {"train/a_dogs/2.jpg", "train/a_dogs/10.JPEG", "train/b_cats/x.jpg", "train/b_cats/sub/y.jpg",
                           "train/b_cats/a.jpg", "val/a_dogs/v.jpg"};
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        write_jpeg_file(p, 40 + i * 13, 60 - i * 5, i);
    }
    snprintf(p, sizeof p, "%s/train/a_dogs/broken.jpg", root);
    FILE *f = fopen(p, "wb");
    fputs("\xff\xd8\xff garbage, not a JPEG", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/train/a_dogs/notes.txt", root);
    f = fopen(p, "wb");
    fputs("ignored", f);
    fclose(f);
}

static void test_imagefolder(void **state) {
    (void)state;
    char root[600], train[700];
    snprintf(root, sizeof root, "%s/folder", dir);
    make_tree(root);
    snprintf(train, sizeof train, "%s/train", root);
    ImageFolder f;
    Error err = {{0}};
    assert_int_equal(imagefolder_scan(train, &f, &err), 0);
    /* torchvision: classes sorted; files of sorted(os.walk) with each folder's names sorted ("10" < "2") */
    assert_int_equal(f.n_classes, 3);
    assert_string_equal(f.classes[0], "a_dogs");
    assert_string_equal(f.classes[2], "c_empty");
    assert_int_equal(f.n, 6);
    const char *want[] = {"a_dogs/10.JPEG", "a_dogs/2.jpg", "a_dogs/broken.jpg", "b_cats/a.jpg", "b_cats/x.jpg",
                          "b_cats/sub/y.jpg"};
    const int labels[] = {0, 0, 0, 1, 1, 1};
    for (int i = 0; i < 6; i++) {
        assert_non_null(strstr(f.paths[i], want[i]));
        assert_int_equal(f.labels[i], labels[i]);
    }
    imagefolder_free(&f);

    /* through the loader: the corrupt file is replaced by the next sample, counted, and named */
    char path[800], yaml[1600];
    snprintf(path, sizeof path, "%s/recipe.yaml", dir);
    snprintf(yaml, sizeof yaml, "model: {resnet: {model_name: resnet8}}\n"
                                "train_dataset: {imagenet: {datadir: %s, crop_size: 16, shuffle: false}}\n", root);
    FILE *fp = fopen(path, "w");
    fputs(yaml, fp);
    fclose(fp);
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(config_load(path, 0, NULL, &cfg, &err), 0);
    LoaderArgs a = {.batch_size = 6, .seed = 1, .train = true, .workers = 2};
    Loader *l;
    assert_int_equal(loader_create(&cfg.train_dataset, "train_dataset", &a, &l, &err), 0);
    assert_int_equal(loader_num_classes(l), 3);
    Batch b;
    assert_int_equal(loader_get(l, 0, 0, &b, &err), 0);
    assert_int_equal(b.n, 6);
    assert_int_equal(b.labels[2], 1); /* broken.jpg (label 0) replaced by the next sample, a cat */
    char msg[256];
    assert_int_equal(loader_take_corrupt(l, msg, sizeof msg), 1);
    assert_non_null(strstr(msg, "broken.jpg"));
    assert_int_equal(loader_take_corrupt(l, msg, sizeof msg), 0);
    loader_destroy(l);
    config_free(&cfg);

    /* convert: the folder to a .beton (2 threads and 1 thread give the same bytes); the corrupt file skipped */
    ConvertOptions o;
    convert_options_default(&o);
    o.write_mode = WRITE_PROPORTION;
    o.compress_probability = 0.5;
    o.max_resolution = 48;
    o.seed = 4;
    char b1[700], b2[700];
    snprintf(b1, sizeof b1, "%s/one.beton", dir);
    snprintf(b2, sizeof b2, "%s/two.beton", dir);
    ConvertReport r1, r2;
    o.num_workers = 1;
    assert_int_equal(convert_run(train, b1, &o, &r1, &err), 0);
    o.num_workers = 2;
    assert_int_equal(convert_run(train, b2, &o, &r2, &err), 0);
    assert_int_equal(r1.written, 5);
    assert_int_equal(r1.skipped, 1);
    assert_int_equal(r1.jpeg + r1.raw, 5);
    uint8_t *d1, *d2;
    size_t n1, n2;
    assert_int_equal(fs_read_all(b1, &d1, &n1, &err), 0);
    assert_int_equal(fs_read_all(b2, &d2, &n2, &err), 0);
    assert_int_equal(n1, n2);
    assert_memory_equal(d1, d2, n1);
    free(d1);
    free(d2);
    /* read back: labels in folder order without the skipped file; sizes truncated as FFCV's resizer does */
    Beton *bt;
    assert_int_equal(beton_open(b1, &bt, &err), 0);
    const int want_labels[] = {0, 0, 1, 1, 1};
    for (int i = 0; i < 5; i++) assert_int_equal(beton_get_int(bt, 1, i), want_labels[i]);
    BetonImage im;
    assert_int_equal(beton_get_image(bt, 0, 0, &im, &err), 0); /* 10.JPEG: 53 x 55 (h x w) -> max side 48 */
    assert_int_equal(im.width, (int)(48.0 / 55 * 55));
    assert_int_equal(im.height, (int)(48.0 / 55 * 53));
    beton_close(bt);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "%s", tu_tempdir());
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_ffcv_fixtures_through_the_loader),
        cmocka_unit_test(test_dct_scaling),
        cmocka_unit_test(test_output_size_change),
        cmocka_unit_test(test_imagefolder),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
