/* convert.c — sources to FFCV .beton files (see convert.h). Each sample: decode to RGB (gray is replicated),
 * downscale so the longest side is at most max_resolution (FFCV's resizer: new size truncated, area resampling),
 * then store raw pixels or a JPEG as the write mode says. Samples are made in parallel and written in order by
 * beton_write, so the file is the same for any number of workers. Unreadable images are reported and skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/rng.h"
#include "data/beton.h"
#include "data/beton_writer.h"
#include "data/convert.h"
#include "data/idx.h"
#include "data/imagefolder.h"
#include "data/jpeg.h"
#include "data/npy.h"
#include "data/resize.h"
#include "io/image.h"

void convert_options_default(ConvertOptions *o) {
    memset(o, 0, sizeof *o);
    o->write_mode = WRITE_RAW;
    o->jpeg_quality = 90;
    o->compress_probability = 0.5;
    o->smart_threshold = -1;
}

void convert_options_composer(ConvertOptions *o) {
    convert_options_default(o);
    o->max_resolution = 500;
}

int convert_parse_mode(const char *name, WriteMode *out, Error *err) {
    static const char *const NAMES[] = {"raw", "jpg", "smart", "proportion"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, NAMES[i]) == 0) {
            *out = (WriteMode)i;
            return 0;
        }
    return error_set(err, "write_mode '%s': choose raw, jpg, smart or proportion", name);
}

typedef enum SourceKind { SRC_FOLDER, SRC_IDX, SRC_NPY } SourceKind;

typedef struct Job {
    SourceKind kind;
    const ConvertOptions *o;
    ImageFolder folder;
    uint8_t *pixels;          /* idx / npy: [n, h, w, c] uint8 */
    int64_t n;
    int h, w, c;
    int32_t *labels;
} Job;

/* The RGB pixels of sample i into *rgb [*h, *w, 3] (malloc'ed). Returns 1 for an unreadable image. */
static int source_rgb(const Job *j, int64_t i, uint8_t **rgb, int *h, int *w, Error *err) {
    if (j->kind == SRC_FOLDER) {
        Image im;
        if (image_load(j->folder.paths[i], 3, &im, err)) return 1;
        *rgb = im.pix;
        *h = im.h;
        *w = im.w;
        return 0;
    }
    size_t px = (size_t)j->h * j->w;
    uint8_t *p = malloc(px * 3);
    if (!p) return error_set(err, "out of memory");
    const uint8_t *s = j->pixels + (size_t)i * px * j->c;
    for (size_t k = 0; k < px; k++)
        for (int ch = 0; ch < 3; ch++) p[k * 3 + ch] = s[k * j->c + (j->c == 3 ? ch : 0)];
    *rgb = p;
    *h = j->h;
    *w = j->w;
    return 0;
}

/* FFCV's resizer: if the longest side exceeds max, scale both sides by max/longest, truncating. */
static int downscale(const ConvertOptions *o, uint8_t **rgb, int *h, int *w, Error *err) {
    int longest = *h > *w ? *h : *w;
    if (o->max_resolution <= 0 || longest <= o->max_resolution) return 0;
    double ratio = (double)o->max_resolution / longest;
    int nh = (int)(ratio * *h), nw = (int)(ratio * *w);
    if (nh < 1) nh = 1;
    if (nw < 1) nw = 1;
    uint8_t *dst = malloc((size_t)nh * nw * 3);
    float *scratch = malloc(resize_scratch_floats(*w, nw, nh, 3) * sizeof *scratch);
    if (!dst || !scratch) {
        free(dst);
        free(scratch);
        return error_set(err, "out of memory");
    }
    resize_area(*rgb, (size_t)*w * 3, 3, 0, 0, *h, *w, dst, nh, nw, scratch);
    free(scratch);
    free(*rgb);
    *rgb = dst;
    *h = nh;
    *w = nw;
    return 0;
}

/* Whether sample i is stored as JPEG under the write mode. */
static bool use_jpeg(const ConvertOptions *o, int64_t i, int h, int w) {
    switch (o->write_mode) {
    case WRITE_JPG:
        return true;
    case WRITE_SMART:
        return o->smart_threshold >= 0 && (int64_t)h * w * 3 > o->smart_threshold;
    case WRITE_PROPORTION: {
        Rng r;
        rng_init(&r, o->seed, RNG_ALGO, 0xC0, (uint64_t)i);
        return rng_uniform_double(&r) < o->compress_probability;
    }
    default:
        return false;
    }
}

static int make_sample(void *ctx, int64_t i, BetonValue *v, Error *err) {
    Job *j = ctx;
    const ConvertOptions *o = j->o;
    uint8_t *rgb = NULL;
    int h = 0, w = 0;
    int rc = source_rgb(j, i, &rgb, &h, &w, err);
    if (rc) return rc;
    if (downscale(o, &rgb, &h, &w, err)) {
        free(rgb);
        return -1;
    }
    v[0].width = w;
    v[0].height = h;
    if (use_jpeg(o, i, h, w)) {
        JpegCodec *c = jpeg_codec_new();
        size_t size = 0;
        uint8_t *jpg = NULL;
        rc = c ? jpeg_encode(c, rgb, w, h, o->jpeg_quality, &jpg, &size, err) : error_set(err, "out of memory");
        jpeg_codec_free(c);
        free(rgb);
        if (rc) return -1;
        v[0].image_mode = 0;
        v[0].data = jpg;
        v[0].size = size;
    } else {
        v[0].image_mode = 1;
        v[0].data = rgb;
        v[0].size = (uint64_t)h * w * 3;
    }
    v[1].i = j->kind == SRC_FOLDER ? j->folder.labels[i] : j->labels[i];
    return 0;
}

static void on_skip(void *ctx, int64_t i, const char *why) {
    Job *j = ctx;
    if (j->o->on_skip) {
        char what[64];
        snprintf(what, sizeof what, "sample %lld", (long long)i);
        j->o->on_skip(j->o->ctx, j->kind == SRC_FOLDER ? j->folder.paths[i] : what, why);
    }
}

static void on_progress(void *ctx, int64_t done, int64_t total) {
    Job *j = ctx;
    if (j->o->progress) j->o->progress(j->o->ctx, done, total);
}

/* The labels file that goes with an IDX images file ("...-images-idx3-ubyte" -> "...-labels-idx1-ubyte"). */
static int idx_labels_path(const char *images, char *out, size_t size, Error *err) {
    const char *at = strstr(images, "images-idx3");
    if (!at) return error_set(err, "%s: expected an IDX images file named *-images-idx3-ubyte[.gz]", images);
    snprintf(out, size, "%.*slabels-idx1%s", (int)(at - images), images, at + strlen("images-idx3"));
    return 0;
}

static int load_arrays(Job *j, const char *src, Error *err) {
    size_t n = strlen(src);
    if (n > 4 && strcmp(src + n - 4, ".npy") == 0) {
        j->kind = SRC_NPY;
        if (!j->o->labels) return error_set(err, "%s: a .npy source needs --labels LABELS.npy", src);
        NpyArray im = {0}, lb = {0};
        if (npy_load(src, &im, err)) return -1;
        if (npy_load(j->o->labels, &lb, err)) {
            npy_free(&im);
            return -1;
        }
        int rc = 0;
        if (im.dtype != NPY_U8 || (im.ndim != 3 && im.ndim != 4) || (im.ndim == 4 && im.shape[3] != 1 && im.shape[3] != 3))
            rc = error_set(err, "%s: expected uint8 images [n, h, w] or [n, h, w, 1 or 3]", src);
        else if (lb.ndim != 1 || lb.shape[0] != im.shape[0] || (lb.dtype != NPY_I64 && lb.dtype != NPY_I32))
            rc = error_set(err, "%s: expected %lld int64 or int32 labels", j->o->labels, (long long)im.shape[0]);
        if (rc == 0) {
            j->n = im.shape[0];
            j->h = (int)im.shape[1];
            j->w = (int)im.shape[2];
            j->c = im.ndim == 4 ? (int)im.shape[3] : 1;
            j->pixels = im.data;
            im.data = NULL;
            j->labels = malloc((size_t)(j->n ? j->n : 1) * sizeof *j->labels);
            if (!j->labels) rc = error_set(err, "out of memory");
            for (int64_t i = 0; rc == 0 && i < j->n; i++)
                j->labels[i] = (int32_t)(lb.dtype == NPY_I64 ? ((int64_t *)lb.data)[i] : ((int32_t *)lb.data)[i]);
        }
        npy_free(&im);
        npy_free(&lb);
        return rc;
    }
    j->kind = SRC_IDX;
    char lp[4096];
    if (idx_labels_path(src, lp, sizeof lp, err)) return -1;
    IdxArray im = {0}, lb = {0};
    if (idx_load(src, &im, err)) return -1;
    if (idx_load(lp, &lb, err)) {
        idx_free(&im);
        return -1;
    }
    int rc = 0;
    if (im.ndim != 3 || lb.ndim != 1 || lb.dims[0] != im.dims[0])
        rc = error_set(err, "%s: expected images [n, h, w] and %s with n labels", src, lp);
    if (rc == 0) {
        j->n = im.dims[0];
        j->h = (int)im.dims[1];
        j->w = (int)im.dims[2];
        j->c = 1;
        j->pixels = im.data;
        im.data = NULL;
        j->labels = malloc((size_t)j->n * sizeof *j->labels);
        if (!j->labels) rc = error_set(err, "out of memory");
        for (int64_t i = 0; rc == 0 && i < j->n; i++) j->labels[i] = lb.data[i];
    }
    idx_free(&im);
    idx_free(&lb);
    return rc;
}

int convert_run(const char *src, const char *out, const ConvertOptions *o, ConvertReport *report, Error *err) {
    Job j;
    memset(&j, 0, sizeof j);
    j.o = o;
    struct stat st;
    if (stat(src, &st) != 0) return error_set(err, "%s: no such file or folder", src);
    int rc;
    if (S_ISDIR(st.st_mode)) {
        j.kind = SRC_FOLDER;
        rc = imagefolder_scan(src, &j.folder, err);
        j.n = j.folder.n;
    } else {
        rc = load_arrays(&j, src, err);
    }
    BetonFieldSpec fields[2] = {{.type = BETON_RGB, .name = "image"}, {.type = BETON_INT, .name = "label"}};
    BetonWriteOptions wo = {.page_size = o->page_size, .threads = o->num_workers, .on_skip = on_skip,
                            .progress = on_progress, .ctx = &j};
    int64_t written = 0;
    if (rc == 0) rc = beton_write(out, fields, 2, j.n, make_sample, &j, &wo, &written, err);
    if (rc == 0 && report) {
        memset(report, 0, sizeof *report);
        report->samples = j.n;
        report->written = written;
        report->skipped = j.n - written;
        report->classes = j.kind == SRC_FOLDER ? j.folder.n_classes : 0;
        if (stat(out, &st) == 0) report->bytes = (uint64_t)st.st_size;
        /* count the storage modes from the file itself */
        Beton *b;
        if (beton_open(out, &b, err) == 0) {
            BetonImage im;
            for (int64_t i = 0; i < beton_num_samples(b); i++)
                if (beton_get_image(b, 0, i, &im, err) == 0) {
                    if (im.mode == 0) report->jpeg++;
                    else report->raw++;
                }
            beton_close(b);
        }
    }
    imagefolder_free(&j.folder);
    free(j.pixels);
    free(j.labels);
    return rc;
}
