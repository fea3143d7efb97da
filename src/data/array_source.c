/* array_source.c — the in-memory dataset kinds: idx (MNIST-family IDX files), npy (NumPy arrays) and
 * synthetic (random images), with their recipe keys. A sample is a random crop of the zero-padded image (in
 * normalized units) and a random flip, drawn from (seed, AUGMENT, epoch, sample index), on the train split. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "data/idx.h"
#include "data/npy.h"
#include "data/source.h"

typedef struct ArraySource {
    SampleSource base;
    const ArrayDatasetOptions *opt;
    uint64_t seed;
    bool augment;                 /* train split with crop/flip on */
    int64_t n;
    int h, w, c;
    uint8_t *u8;                  /* [n, h, w, c] or NULL */
    float *f32;                   /* [n, h, w, c] or NULL */
    int32_t *labels;              /* [n] (NULL for synthetic) */
    float mean[SOURCE_MAX_CHANNELS], inv_std[SOURCE_MAX_CHANNELS];
    bool synthetic;
    int num_classes;
    const char *const *class_names;
} ArraySource;

/* ------------------------------------------------------------------ recipe keys */

int array_dataset_check(const void *options, Error *err) {
    const ArrayDatasetOptions *o = options;
    if (o->mean.n != o->std.n)
        return error_set(err, "mean and std must have the same length (%d vs %d)", o->mean.n, o->std.n);
    for (int i = 0; i < o->std.n; i++)
        if (!(o->std.v[i] > 0)) return error_set(err, "std values must be > 0 (got %g)", o->std.v[i]);
    if (o->crop_padding < 0) return error_set(err, "crop_padding must be >= 0");
    return 0;
}

#define COMMON_FIELDS(train_default, shuffle_default)                                                          \
    {.name = "is_train", .type = F_BOOL, .offset = offsetof(ArrayDatasetOptions, is_train),                    \
     .def = train_default, .help = "the training split (augmentation on)"},                                   \
    {.name = "shuffle", .type = F_BOOL, .offset = offsetof(ArrayDatasetOptions, shuffle), .def = shuffle_default, \
     .help = "a new random order every epoch"},                                                                \
    {.name = "drop_last", .type = F_BOOL, .offset = offsetof(ArrayDatasetOptions, drop_last), .def = "true",   \
     .help = "drop the last partial batch"},                                                                   \
    {.name = "num_classes", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, num_classes), .def = "0",   \
     .min = 0, .max = 1000000, .help = "0: 1 + the largest label"}

#define AUGMENT_FIELDS(pad_default, flip_default)                                                              \
    {.name = "crop_padding", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, crop_padding),             \
     .def = pad_default, .help = "random crop after zero padding by this many pixels (train only)"},           \
    {.name = "hflip", .type = F_BOOL, .offset = offsetof(ArrayDatasetOptions, hflip), .def = flip_default,     \
     .help = "random horizontal flip (train only)"}

const FieldSpec IDX_FIELDS[] = {
    {.name = "datadir", .type = F_STRING, .offset = offsetof(ArrayDatasetOptions, datadir),
     .def = "/usr/share/datasets/fashion-mnist",
     .help = "folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (Debian's dataset-fashion-mnist)"},
    {.name = "images", .type = F_STRING, .offset = offsetof(ArrayDatasetOptions, images),
     .help = "explicit images file (overrides datadir)"},
    {.name = "labels", .type = F_STRING, .offset = offsetof(ArrayDatasetOptions, labels),
     .help = "explicit labels file (overrides datadir)"},
    COMMON_FIELDS("true", "true"),
    {.name = "mean", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, mean), .def = "[72.94]",
     .help = "per-channel mean in 0..255 units (default: Fashion-MNIST's)"},
    {.name = "std", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, std), .def = "[90.02]",
     .help = "per-channel std in 0..255 units"},
    AUGMENT_FIELDS("2", "true"),
    {0},
};

const FieldSpec NPY_FIELDS[] = {
    {.name = "images", .type = F_STRING, .offset = offsetof(ArrayDatasetOptions, images), .required = true,
     .help = ".npy images [n,h,w,c] (or [n,h,w]): float32 used as is, uint8 normalized with mean/std"},
    {.name = "labels", .type = F_STRING, .offset = offsetof(ArrayDatasetOptions, labels), .required = true,
     .help = ".npy labels [n], int64 or int32"},
    COMMON_FIELDS("true", "true"),
    {.name = "mean", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, mean),
     .def = "[123.675, 116.28, 103.53]", .help = "uint8 images: per-channel mean in 0..255 (default ImageNet)"},
    {.name = "std", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, std),
     .def = "[58.395, 57.12, 57.375]", .help = "uint8 images: per-channel std in 0..255"},
    AUGMENT_FIELDS("0", "false"),
    {0},
};

const FieldSpec SYNTHETIC_FIELDS[] = {
    COMMON_FIELDS("true", "false"),
    {.name = "num_samples", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, num_samples), .def = "1024",
     .min = 1, .max = 1e9},
    {.name = "image_size", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, image_size), .def = "224",
     .min = 1, .max = 8192},
    {.name = "channels", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, channels), .def = "3", .min = 1,
     .max = SOURCE_MAX_CHANNELS},
    {.name = "mean", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, mean), .def = "[127.5]"},
    {.name = "std", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, std), .def = "[73.6]"},
    AUGMENT_FIELDS("0", "false"),
    {0},
};


/* ------------------------------------------------------------------ reading */

static const char *const FASHION_MNIST_NAMES[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

/* Finds <dir>/<stem> or <dir>/<stem>.gz. */
static int idx_path(const char *dir, const char *stem, char *out, size_t size, Error *err) {
    snprintf(out, size, "%s/%s.gz", dir, stem);
    if (fs_exists(out)) return 0;
    snprintf(out, size, "%s/%s", dir, stem);
    if (fs_exists(out)) return 0;
    return error_set(err, "%s/%s[.gz]: not found (install Debian's dataset-fashion-mnist or set datadir)", dir,
                     stem);
}

static int load_idx(ArraySource *l, Error *err) {
    const ArrayDatasetOptions *o = l->opt;
    char ip[4096], lp[4096];
    const char *split = o->is_train ? "train" : "t10k";
    char stem[64];
    if (o->images) snprintf(ip, sizeof ip, "%s", o->images);
    else {
        snprintf(stem, sizeof stem, "%s-images-idx3-ubyte", split);
        if (idx_path(o->datadir, stem, ip, sizeof ip, err)) return -1;
    }
    if (o->labels) snprintf(lp, sizeof lp, "%s", o->labels);
    else {
        snprintf(stem, sizeof stem, "%s-labels-idx1-ubyte", split);
        if (idx_path(o->datadir, stem, lp, sizeof lp, err)) return -1;
    }
    IdxArray im = {0}, lb = {0};
    if (idx_load(ip, &im, err)) return -1;
    if (idx_load(lp, &lb, err)) {
        idx_free(&im);
        return -1;
    }
    int rc = 0;
    if (im.ndim != 3 && im.ndim != 4) rc = error_set(err, "%s: expected images [n, h, w] or [n, h, w, c]", ip);
    else if (lb.ndim != 1 || lb.dims[0] != im.dims[0])
        rc = error_set(err, "%s: expected %lld labels, found shape [%lld]", lp, (long long)im.dims[0],
                       (long long)lb.dims[0]);
    if (rc == 0) {
        l->n = im.dims[0];
        l->h = (int)im.dims[1];
        l->w = (int)im.dims[2];
        l->c = im.ndim == 4 ? (int)im.dims[3] : 1;
        l->u8 = im.data;
        im.data = NULL;
        l->labels = malloc((size_t)l->n * sizeof *l->labels);
        if (!l->labels) rc = error_set(err, "out of memory");
        for (int64_t i = 0; rc == 0 && i < l->n; i++) l->labels[i] = lb.data[i];
        const char *base = strrchr(o->datadir ? o->datadir : "", '/');
        if (!o->images && base && strcmp(base + 1, "fashion-mnist") == 0) l->class_names = FASHION_MNIST_NAMES;
    }
    idx_free(&im);
    idx_free(&lb);
    return rc;
}

static int load_npy(ArraySource *l, Error *err) {
    const ArrayDatasetOptions *o = l->opt;
    NpyArray im = {0}, lb = {0};
    if (npy_load(o->images, &im, err)) return -1;
    if (npy_load(o->labels, &lb, err)) {
        npy_free(&im);
        return -1;
    }
    int rc = 0;
    if (im.ndim != 3 && im.ndim != 4)
        rc = error_set(err, "%s: expected images [n, h, w, c] (NHWC) or [n, h, w], got %d dimensions", o->images,
                       im.ndim);
    else if (im.dtype != NPY_F32 && im.dtype != NPY_U8)
        rc = error_set(err, "%s: images must be float32 or uint8 (got %s); convert with .astype(np.float32)",
                       o->images, npy_dtype_descr(im.dtype));
    else if (lb.ndim != 1 || lb.shape[0] != im.shape[0])
        rc = error_set(err, "%s: expected labels of shape [%lld]", o->labels, (long long)im.shape[0]);
    else if (lb.dtype != NPY_I64 && lb.dtype != NPY_I32)
        rc = error_set(err, "%s: labels must be int64 or int32 (got %s)", o->labels, npy_dtype_descr(lb.dtype));
    if (rc == 0) {
        l->n = im.shape[0];
        l->h = (int)im.shape[1];
        l->w = (int)im.shape[2];
        l->c = im.ndim == 4 ? (int)im.shape[3] : 1;
        if (im.dtype == NPY_U8) l->u8 = im.data;
        else l->f32 = im.data;
        im.data = NULL;
        l->labels = malloc((size_t)(l->n ? l->n : 1) * sizeof *l->labels);
        if (!l->labels) rc = error_set(err, "out of memory");
        for (int64_t i = 0; rc == 0 && i < l->n; i++) {
            int64_t v = lb.dtype == NPY_I64 ? ((int64_t *)lb.data)[i] : ((int32_t *)lb.data)[i];
            if (v < 0 || v > INT32_MAX) rc = error_set(err, "%s: label %lld at index %lld is negative or too large",
                                                       o->labels, (long long)v, (long long)i);
            else l->labels[i] = (int32_t)v;
        }
    }
    npy_free(&im);
    npy_free(&lb);
    return rc;
}


static uint32_t synthetic_label(const ArraySource *l, int64_t i) {
    Rng r;
    rng_init(&r, l->seed, RNG_SYNTHETIC, 1, (uint64_t)i);
    return rng_below(&r, (uint32_t)l->num_classes);
}

/* Normalized value of channel ch of pixel (y, x) of sample s; 0 outside the image (padding). */
static inline float pixel(const ArraySource *l, int64_t s, int y, int x, int ch, Rng *syn) {
    if (y < 0 || y >= l->h || x < 0 || x >= l->w) return 0.0f;
    size_t at = (((size_t)s * l->h + y) * l->w + x) * l->c + ch;
    if (l->f32) return l->f32[at];
    float v = l->u8 ? (float)l->u8[at] : (float)(rng_u32(syn) & 0xFF);
    return (v - l->mean[ch]) * l->inv_std[ch];
}

/* Writes sample s, augmented as the (epoch, s) stream says, to out [h, w, c]. */
static int array_produce(SampleSource *src, int64_t epoch, int64_t s, int worker, float *out, int32_t *label,
                         Error *err) {
    const ArraySource *l = (const ArraySource *)src;
    int dy = 0, dx = 0, pad = 0;
    bool flip = false;
    if (l->augment) {
        Rng r;
        rng_init(&r, l->seed, RNG_AUGMENT, (uint64_t)epoch, (uint64_t)s);
        pad = l->opt->crop_padding;
        if (pad > 0) {
            dy = (int)rng_below(&r, (uint32_t)(2 * pad + 1));
            dx = (int)rng_below(&r, (uint32_t)(2 * pad + 1));
        }
        if (l->opt->hflip) flip = rng_u32(&r) & 1u;
    }
    Rng syn;
    rng_init(&syn, l->seed, RNG_SYNTHETIC, 0, (uint64_t)s);
    for (int y = 0; y < l->h; y++)
        for (int x = 0; x < l->w; x++) {
            int sx = (flip ? l->w - 1 - x : x) + dx - pad, sy = y + dy - pad;
            float *o = out + ((size_t)y * l->w + x) * l->c;
            for (int ch = 0; ch < l->c; ch++) o[ch] = pixel(l, s, sy, sx, ch, &syn);
        }
    *label = l->labels ? l->labels[s] : (int32_t)synthetic_label(l, s);
    return 0;
}

static void array_destroy(SampleSource *src) {
    ArraySource *l = (ArraySource *)src;
    if (!l) return;
    free(l->u8);
    free(l->f32);
    free(l->labels);
    free(l);
}

int array_source_create(const Choice *dataset, const char *what, const LoaderArgs *args, SampleSource **out,
                        Error *err) {
    *out = NULL;
    const char *kind = dataset->entry->name;
    ArraySource *l = calloc(1, sizeof *l);
    if (!l) return error_set(err, "out of memory");
    l->opt = dataset->options;
    l->seed = args->seed;
    int rc;
    if (strcmp(kind, "idx") == 0) {
        rc = load_idx(l, err);
    } else if (strcmp(kind, "npy") == 0) {
        rc = load_npy(l, err);
    } else {
        l->synthetic = true;
        l->n = l->opt->num_samples;
        l->h = l->w = l->opt->image_size;
        l->c = l->opt->channels;
        rc = 0;
    }
    if (rc == 0 && (l->c < 1 || l->c > SOURCE_MAX_CHANNELS))
        rc = error_set(err, "%s: images have %d channels; ctrain takes 1 to %d", what, l->c, SOURCE_MAX_CHANNELS);
    /* mean/std normalize uint8 (and synthetic) images; float32 images are used as they are */
    if (rc == 0 && !l->f32 && l->opt->mean.n != 1 && l->opt->mean.n != l->c)
        rc = error_set(err, "%s.%s.mean: give 1 or %d values (one per channel)", what, kind, l->c);
    if (rc == 0 && l->n < 1) rc = error_set(err, "%s: the dataset is empty", what);
    SampleSource *b = &l->base;
    if (rc == 0) {
        for (int ch = 0; ch < l->c && !l->f32; ch++) {
            int k = l->opt->mean.n == 1 ? 0 : ch;
            b->mean[ch] = l->mean[ch] = (float)l->opt->mean.v[k];
            b->std[ch] = (float)l->opt->std.v[k];
            l->inv_std[ch] = (float)(1.0 / l->opt->std.v[k]);
        }
        l->num_classes = l->opt->num_classes;
        if (l->num_classes == 0 && l->labels) {
            for (int64_t i = 0; i < l->n; i++)
                if (l->labels[i] + 1 > l->num_classes) l->num_classes = l->labels[i] + 1;
        } else if (l->num_classes == 0) {
            l->num_classes = 10;
        }
        if (l->labels)
            for (int64_t i = 0; i < l->n; i++)
                if (l->labels[i] >= l->num_classes) {
                    rc = error_set(err, "%s: label %d at index %lld is >= num_classes %d", what, l->labels[i],
                                   (long long)i, l->num_classes);
                    break;
                }
        if (l->class_names && l->num_classes != 10) l->class_names = NULL;
        l->augment = args->train && l->opt->is_train && (l->opt->crop_padding > 0 || l->opt->hflip);
    }
    if (rc) {
        array_destroy(b);
        return -1;
    }
    b->n = l->n;
    b->h = l->h;
    b->w = l->w;
    b->c = l->c;
    b->num_classes = l->num_classes;
    b->class_names = l->class_names;
    b->shuffle = l->opt->shuffle;
    b->drop_last = l->opt->drop_last;
    b->order = l->opt->shuffle ? ORDER_RANDOM : ORDER_SEQUENTIAL;
    b->produce = array_produce;
    b->destroy = array_destroy;
    *out = b;
    return 0;
}
