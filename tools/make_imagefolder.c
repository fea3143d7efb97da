/* make_imagefolder.c — makes reproducible ImageNet-shaped JPEG data sets from what installs on a fresh machine,
 * for the ImageNet-path demo, the loader tests and the loader benchmark (built as build/make-imagefolder).
 *
 *   make-imagefolder fmnist OUT [--train N] [--val N] [--min 64] [--max 128] [--seed S]
 *       Fashion-MNIST (Debian's dataset-fashion-mnist) as RGB JPEGs (quality 90) in OUT/{train,val}/<class>/:
 *       each 28x28 image is scaled to a random size in [min, max] and coloured with a random foreground and
 *       background colour (independent of the class); val comes from the test set.
 *   make-imagefolder photos OUT --count N [--max 500] [--seed S]
 *       N random crops (at least half the area, randomly flipped) of the photos in ../shared/fixtures/photos,
 *       resized so the longest side is in [max/2, max], as JPEGs (quality 90) in OUT/train/<photo>/.
 *
 * Everything is drawn from the counter-based RNG with the seed, so the same command gives the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "data/idx.h"
#include "data/jpeg.h"
#include "data/resize.h"
#include "io/image.h"

static const char *const FMNIST_CLASSES[10] = {"0_tshirt_top", "1_trouser", "2_pullover", "3_dress", "4_coat",
                                               "5_sandal",     "6_shirt",   "7_sneaker",  "8_bag",   "9_ankle_boot"};
static const char *const PHOTOS[] = {"astronaut", "camera_gray", "chelsea", "china", "coffee", "coins_gray", "flower",
                                     "grace_hopper", "hubble_deep_field", "ihc", "raccoon_face", "retina", "rocket"};

typedef struct Args {
    const char *mode, *out, *shared;
    long train, val, count, min, max;
    unsigned long long seed;
} Args;

static int write_jpeg(JpegCodec *c, const char *path, const uint8_t *rgb, int h, int w, Error *err) {
    uint8_t *jpg;
    size_t size;
    if (jpeg_encode(c, rgb, w, h, 90, &jpg, &size, err)) return -1;
    AtomicFile af;
    int rc = atomic_open(&af, path, err);
    if (rc == 0) {
        fwrite(jpg, 1, size, af.f);
        rc = atomic_commit(&af, err);
    }
    free(jpg);
    return rc;
}

/* Resizes src [sh, sw, 3] to [dh, dw, 3] (area / bilinear as OpenCV's INTER_AREA). */
static int resize_to(const uint8_t *src, int sh, int sw, uint8_t *dst, int dh, int dw, Error *err) {
    float *scratch = malloc(resize_scratch_floats(sw, dw, dh, 3) * sizeof *scratch);
    if (!scratch) return error_set(err, "out of memory");
    resize_area(src, (size_t)sw * 3, 3, 0, 0, sh, sw, dst, dh, dw, scratch);
    free(scratch);
    return 0;
}

static int fmnist_split(const Args *a, JpegCodec *c, const char *split, const char *prefix, long limit, Error *err) {
    char ip[512], lp[512];
    snprintf(ip, sizeof ip, "/usr/share/datasets/fashion-mnist/%s-images-idx3-ubyte.gz", prefix);
    snprintf(lp, sizeof lp, "/usr/share/datasets/fashion-mnist/%s-labels-idx1-ubyte.gz", prefix);
    IdxArray im = {0}, lb = {0};
    if (idx_load(ip, &im, err) || idx_load(lp, &lb, err)) {
        idx_free(&im);
        return -1;
    }
    long n = limit > 0 && limit < im.dims[0] ? limit : (long)im.dims[0];
    uint8_t rgb28[28 * 28 * 3], *big = malloc((size_t)a->max * a->max * 3);
    int rc = big ? 0 : error_set(err, "out of memory");
    for (int k = 0; rc == 0 && k < 10; k++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s/%s", a->out, split, FMNIST_CLASSES[k]);
        rc = fs_mkdirs(dir, err);
    }
    for (long i = 0; rc == 0 && i < n; i++) {
        Rng r;
        rng_init(&r, a->seed, RNG_SYNTHETIC, prefix[0] == 't' && prefix[1] == 'r' ? 1 : 2, (uint64_t)i);
        int size = (int)(a->min + rng_below(&r, (uint32_t)(a->max - a->min + 1)));
        float fg[3], bg[3];
        for (int ch = 0; ch < 3; ch++) {
            fg[ch] = 128 + 127 * rng_uniform(&r);
            bg[ch] = 64 * rng_uniform(&r);
        }
        const uint8_t *g = im.data + (size_t)i * 784;
        for (int p = 0; p < 784; p++)
            for (int ch = 0; ch < 3; ch++) {
                float t = g[p] / 255.0f;
                rgb28[p * 3 + ch] = (uint8_t)(bg[ch] * (1 - t) + fg[ch] * t + 0.5f);
            }
        char path[1200];
        snprintf(path, sizeof path, "%s/%s/%s/%06ld.jpg", a->out, split, FMNIST_CLASSES[lb.data[i]], i);
        rc = resize_to(rgb28, 28, 28, big, size, size, err);
        if (rc == 0) rc = write_jpeg(c, path, big, size, size, err);
    }
    free(big);
    idx_free(&im);
    idx_free(&lb);
    return rc;
}

static int photos(const Args *a, JpegCodec *c, Error *err) {
    int np = (int)(sizeof PHOTOS / sizeof PHOTOS[0]), rc = 0;
    Image src[sizeof PHOTOS / sizeof PHOTOS[0]];
    memset(src, 0, sizeof src);
    for (int p = 0; rc == 0 && p < np; p++) {
        char path[1024], dir[1024];
        snprintf(path, sizeof path, "%s/fixtures/photos/%s.jpg", a->shared, PHOTOS[p]);
        snprintf(dir, sizeof dir, "%s/train/%s", a->out, PHOTOS[p]);
        rc = image_load(path, 3, &src[p], err);
        if (rc == 0) rc = fs_mkdirs(dir, err);
    }
    uint8_t *crop = NULL, *out = malloc((size_t)a->max * a->max * 3);
    if (!out) rc = error_set(err, "out of memory");
    for (long i = 0; rc == 0 && i < a->count; i++) {
        Rng r;
        rng_init(&r, a->seed, RNG_SYNTHETIC, 3, (uint64_t)i);
        const Image *im = &src[i % np];
        double area = 0.5 + 0.5 * rng_uniform_double(&r);
        int ch = (int)(im->h * area), cw = (int)(im->w * area);
        int y = (int)rng_below(&r, (uint32_t)(im->h - ch + 1)), x = (int)rng_below(&r, (uint32_t)(im->w - cw + 1));
        bool flip = rng_u32(&r) & 1;
        int longest = (int)(a->max / 2 + rng_below(&r, (uint32_t)(a->max / 2 + 1)));
        int oh = ch >= cw ? longest : (int)((double)longest * ch / cw), ow = cw >= ch ? longest : (int)((double)longest * cw / ch);
        if (oh < 1) oh = 1;
        if (ow < 1) ow = 1;
        free(crop);
        crop = malloc((size_t)ch * cw * 3);
        if (!crop) {
            rc = error_set(err, "out of memory");
            break;
        }
        for (int yy = 0; yy < ch; yy++)
            for (int xx = 0; xx < cw; xx++)
                memcpy(crop + ((size_t)yy * cw + xx) * 3,
                       im->pix + ((size_t)(y + yy) * im->w + (flip ? x + cw - 1 - xx : x + xx)) * 3, 3);
        char path[1200];
        snprintf(path, sizeof path, "%s/train/%s/%06ld.jpg", a->out, PHOTOS[i % np], i);
        rc = resize_to(crop, ch, cw, out, oh, ow, err);
        if (rc == 0) rc = write_jpeg(c, path, out, oh, ow, err);
    }
    free(crop);
    free(out);
    for (int p = 0; p < np; p++) image_free(&src[p]);
    return rc;
}

int main(int argc, char **argv) {
    Args a = {.train = 0, .val = 0, .count = 1000, .min = 64, .max = 128, .seed = 0, .shared = "../shared"};
    if (argc < 3) {
        fprintf(stderr, "usage: make-imagefolder fmnist OUT [--train N] [--val N] [--min 64] [--max 128] [--seed S]\n"
                        "       make-imagefolder photos OUT [--count N] [--max 500] [--shared DIR] [--seed S]\n");
        return 2;
    }
    a.mode = argv[1];
    a.out = argv[2];
    if (strcmp(a.mode, "photos") == 0) a.max = 500;
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--train")) a.train = atol(v);
        else if (!strcmp(k, "--val")) a.val = atol(v);
        else if (!strcmp(k, "--count")) a.count = atol(v);
        else if (!strcmp(k, "--min")) a.min = atol(v);
        else if (!strcmp(k, "--max")) a.max = atol(v);
        else if (!strcmp(k, "--seed")) a.seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--shared")) a.shared = v;
        else {
            fprintf(stderr, "make-imagefolder: unknown option %s\n", k);
            return 2;
        }
    }
    if (a.min < 8 || a.max < a.min || a.max > 4096) {
        fprintf(stderr, "make-imagefolder: need 8 <= min <= max <= 4096\n");
        return 2;
    }
    Error err = {{0}};
    JpegCodec *c = jpeg_codec_new();
    int rc;
    if (!c) rc = error_set(&err, "out of memory");
    else if (strcmp(a.mode, "fmnist") == 0)
        rc = fmnist_split(&a, c, "train", "train", a.train, &err) || fmnist_split(&a, c, "val", "t10k", a.val, &err) ? -1 : 0;
    else if (strcmp(a.mode, "photos") == 0)
        rc = photos(&a, c, &err);
    else
        rc = error_set(&err, "unknown kind '%s' (fmnist or photos)", a.mode);
    jpeg_codec_free(c);
    if (rc) {
        fprintf(stderr, "make-imagefolder: %s\n", err.msg);
        return 1;
    }
    return 0;
}
