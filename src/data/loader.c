/* loader.c — the dataset registry (recipe keys) and the in-memory loader for idx / npy / synthetic data.
 *
 * Batches are assembled on request: batch b of epoch e holds samples order[b*B .. b*B+B), where order is
 * the identity or a permutation drawn from (seed, SHUFFLE, e). Each sample's random crop offset and flip
 * come from (seed, AUGMENT, e, sample index), so batches do not depend on threads or on what came before. */
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "data/idx.h"
#include "data/loader.h"
#include "data/npy.h"

#define MAX_CHANNELS 16

typedef enum DatasetKind { KIND_IDX, KIND_NPY, KIND_SYNTHETIC, KIND_IMAGENET } DatasetKind;

/* ------------------------------------------------------------------ recipe keys */

static int array_check(const void *options, Error *err) {
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

static const FieldSpec IDX_FIELDS[] = {
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

static const FieldSpec NPY_FIELDS[] = {
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

static const FieldSpec SYNTHETIC_FIELDS[] = {
    COMMON_FIELDS("true", "false"),
    {.name = "num_samples", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, num_samples), .def = "1024",
     .min = 1, .max = 1e9},
    {.name = "image_size", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, image_size), .def = "224",
     .min = 1, .max = 8192},
    {.name = "channels", .type = F_INT, .offset = offsetof(ArrayDatasetOptions, channels), .def = "3", .min = 1,
     .max = MAX_CHANNELS},
    {.name = "mean", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, mean), .def = "[127.5]"},
    {.name = "std", .type = F_DOUBLE_LIST, .offset = offsetof(ArrayDatasetOptions, std), .def = "[73.6]"},
    AUGMENT_FIELDS("0", "false"),
    {0},
};

static const FieldSpec IMAGENET_FIELDS[] = {
    {.name = "datadir", .type = F_STRING, .offset = offsetof(ImagenetOptions, datadir),
     .help = "ImageFolder root with train/ and val/"},
    {.name = "ffcv_dir", .type = F_STRING, .offset = offsetof(ImagenetOptions, ffcv_dir),
     .def = "/datasets/ImageNet/ffcv", .help = "folder of the .beton files"},
    {.name = "ffcv_dest", .type = F_STRING, .offset = offsetof(ImagenetOptions, ffcv_dest),
     .help = "file name in ffcv_dir (default imagenet_train.ffcv / imagenet_val.ffcv)"},
    {.name = "use_ffcv", .type = F_BOOL, .offset = offsetof(ImagenetOptions, use_ffcv), .def = "false"},
    {.name = "ffcv_write_dataset", .type = F_BOOL, .offset = offsetof(ImagenetOptions, ffcv_write_dataset),
     .def = "false"},
    {.name = "is_train", .type = F_BOOL, .offset = offsetof(ImagenetOptions, is_train), .def = "true"},
    {.name = "shuffle", .type = F_BOOL, .offset = offsetof(ImagenetOptions, shuffle), .def = "true"},
    {.name = "drop_last", .type = F_BOOL, .offset = offsetof(ImagenetOptions, drop_last), .def = "true"},
    {.name = "crop_size", .type = F_INT, .offset = offsetof(ImagenetOptions, crop_size), .def = "224", .min = 1,
     .max = 8192},
    {.name = "resize_size", .type = F_INT, .offset = offsetof(ImagenetOptions, resize_size), .def = "-1"},
    {0},
};

static const RegistryEntry DATASET_ENTRIES[] = {
    {.name = "idx", .fields = IDX_FIELDS, .options_size = sizeof(ArrayDatasetOptions), .check = array_check,
     .help = "MNIST-family IDX files"},
    {.name = "npy", .fields = NPY_FIELDS, .options_size = sizeof(ArrayDatasetOptions), .check = array_check,
     .help = "NumPy arrays"},
    {.name = "synthetic", .fields = SYNTHETIC_FIELDS, .options_size = sizeof(ArrayDatasetOptions),
     .check = array_check, .help = "random images"},
    {.name = "imagenet", .fields = IMAGENET_FIELDS, .options_size = sizeof(ImagenetOptions),
     .help = "Composer's ImageNet (FFCV .beton or ImageFolder)"},
};
const Registry DATASET_REGISTRY = {"dataset", DATASET_ENTRIES, 4};

/* ------------------------------------------------------------------ the loader */

struct Loader {
    DatasetKind kind;
    const ArrayDatasetOptions *opt;
    LoaderArgs args;
    bool augment;                 /* train split with crop/flip on */
    int64_t n;                    /* samples */
    int h, w, c, num_classes;
    uint8_t *u8;                  /* [n, h, w, c] or NULL */
    float *f32;                   /* [n, h, w, c] or NULL */
    int32_t *labels;              /* [n] (NULL for synthetic) */
    float mean[MAX_CHANNELS], inv_std[MAX_CHANNELS], std[MAX_CHANNELS];
    int64_t *order;               /* [n] sample order of order_epoch */
    int64_t order_epoch;
    const char *const *class_names;
};

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

static int load_idx(Loader *l, Error *err) {
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

static int load_npy(Loader *l, Error *err) {
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

static uint32_t synthetic_label(const Loader *l, int64_t i) {
    Rng r;
    rng_init(&r, l->args.seed, RNG_SYNTHETIC, 1, (uint64_t)i);
    return rng_below(&r, (uint32_t)l->num_classes);
}

int64_t loader_nominal_samples(const Choice *dataset) {
    if (!dataset->entry || strcmp(dataset->entry->name, "imagenet") != 0) return -1;
    return ((const ImagenetOptions *)dataset->options)->is_train ? 1281167 : 50000;
}

int loader_create(const Choice *dataset, const char *what, const LoaderArgs *args, Loader **out, Error *err) {
    *out = NULL;
    if (!dataset->entry) return error_set(err, "%s: the recipe names no dataset", what);
    const char *kind = dataset->entry->name;
    if (strcmp(kind, "imagenet") == 0)
        return error_set(err, "%s.imagenet: FFCV .beton and ImageFolder data are not supported by this version of "
                              "ctrain yet; use an idx, npy or synthetic dataset", what);
    Loader *l = calloc(1, sizeof *l);
    if (!l) return error_set(err, "out of memory");
    l->opt = dataset->options;
    l->args = *args;
    l->order_epoch = -1;
    int rc;
    if (strcmp(kind, "idx") == 0) {
        l->kind = KIND_IDX;
        rc = load_idx(l, err);
    } else if (strcmp(kind, "npy") == 0) {
        l->kind = KIND_NPY;
        rc = load_npy(l, err);
    } else {
        l->kind = KIND_SYNTHETIC;
        l->n = l->opt->num_samples;
        l->h = l->w = l->opt->image_size;
        l->c = l->opt->channels;
        rc = 0;
    }
    if (rc == 0 && (l->c < 1 || l->c > MAX_CHANNELS))
        rc = error_set(err, "%s: images have %d channels; ctrain takes 1 to %d", what, l->c, MAX_CHANNELS);
    /* mean/std normalize uint8 (and synthetic) images; float32 images are used as they are */
    if (rc == 0 && !l->f32 && l->opt->mean.n != 1 && l->opt->mean.n != l->c)
        rc = error_set(err, "%s.%s.mean: give 1 or %d values (one per channel)", what, kind, l->c);
    if (rc == 0 && l->n < 1) rc = error_set(err, "%s: the dataset is empty", what);
    if (rc == 0) {
        for (int ch = 0; ch < l->c && !l->f32; ch++) {
            int k = l->opt->mean.n == 1 ? 0 : ch;
            l->mean[ch] = (float)l->opt->mean.v[k];
            l->std[ch] = (float)l->opt->std.v[k];
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
        l->order = malloc((size_t)l->n * sizeof *l->order);
        if (!l->order) rc = error_set(err, "out of memory");
    }
    if (rc == 0 && loader_batches(l) < 1)
        rc = error_set(err, "%s: %lld samples make no batch of %d with drop_last (lower the batch size)", what,
                       (long long)l->n, args->batch_size);
    if (rc) {
        loader_destroy(l);
        return -1;
    }
    *out = l;
    return 0;
}

void loader_destroy(Loader *l) {
    if (!l) return;
    free(l->u8);
    free(l->f32);
    free(l->labels);
    free(l->order);
    free(l);
}

int64_t loader_batches(const Loader *l) {
    int64_t b = l->args.batch_size;
    return l->opt->drop_last ? l->n / b : (l->n + b - 1) / b;
}

int64_t loader_samples(const Loader *l) { return l->n; }

void loader_shape(const Loader *l, int *h, int *w, int *c) {
    *h = l->h;
    *w = l->w;
    *c = l->c;
}

int loader_num_classes(const Loader *l) { return l->num_classes; }

const char *const *loader_class_names(const Loader *l) { return l->class_names; }

void loader_normalization(const Loader *l, float *mean, float *std, int c) {
    for (int i = 0; i < c && i < l->c && !l->f32; i++) {
        mean[i] = l->mean[i];
        std[i] = l->std[i];
    }
}

int loader_batch_alloc(const Loader *l, Batch *out, Error *err) {
    memset(out, 0, sizeof *out);
    size_t px = (size_t)l->args.batch_size * l->h * l->w * l->c;
    out->images = malloc(px * sizeof *out->images);
    out->labels = malloc((size_t)l->args.batch_size * sizeof *out->labels);
    if (!out->images || !out->labels) {
        batch_free(out);
        return error_set(err, "out of memory for a batch of %d images", l->args.batch_size);
    }
    out->h = l->h;
    out->w = l->w;
    out->c = l->c;
    return 0;
}

void batch_free(Batch *b) {
    free(b->images);
    free(b->labels);
    memset(b, 0, sizeof *b);
}

/* The sample order of an epoch (cached for the current epoch). */
static void epoch_order(Loader *l, int64_t epoch) {
    if (l->order_epoch == epoch) return;
    if (l->opt->shuffle && l->args.train) {
        Rng r;
        rng_init(&r, l->args.seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
        rng_permutation(&r, l->order, l->n);
    } else {
        for (int64_t i = 0; i < l->n; i++) l->order[i] = i;
    }
    l->order_epoch = epoch;
}

/* Normalized value of channel ch of pixel (y, x) of sample s; 0 outside the image (padding). */
static inline float pixel(const Loader *l, int64_t s, int y, int x, int ch, Rng *syn) {
    if (y < 0 || y >= l->h || x < 0 || x >= l->w) return 0.0f;
    size_t at = (((size_t)s * l->h + y) * l->w + x) * l->c + ch;
    if (l->f32) return l->f32[at];
    float v = l->u8 ? (float)l->u8[at] : (float)(rng_u32(syn) & 0xFF);
    return (v - l->mean[ch]) * l->inv_std[ch];
}

/* Writes sample s, augmented as the (epoch, s) stream says, to out [h, w, c]. */
static void load_sample(const Loader *l, int64_t epoch, int64_t s, float *out) {
    int dy = 0, dx = 0, pad = 0;
    bool flip = false;
    if (l->augment) {
        Rng r;
        rng_init(&r, l->args.seed, RNG_AUGMENT, (uint64_t)epoch, (uint64_t)s);
        pad = l->opt->crop_padding;
        if (pad > 0) {
            dy = (int)rng_below(&r, (uint32_t)(2 * pad + 1));
            dx = (int)rng_below(&r, (uint32_t)(2 * pad + 1));
        }
        if (l->opt->hflip) flip = rng_u32(&r) & 1u;
    }
    Rng syn;
    rng_init(&syn, l->args.seed, RNG_SYNTHETIC, 0, (uint64_t)s);
    for (int y = 0; y < l->h; y++)
        for (int x = 0; x < l->w; x++) {
            int sx = (flip ? l->w - 1 - x : x) + dx - pad, sy = y + dy - pad;
            float *o = out + ((size_t)y * l->w + x) * l->c;
            for (int ch = 0; ch < l->c; ch++) o[ch] = pixel(l, s, sy, sx, ch, &syn);
        }
}

int loader_get(Loader *l, int64_t epoch, int64_t b, Batch *out, Error *err) {
    int64_t bs = l->args.batch_size, start = b * bs;
    if (b < 0 || b >= loader_batches(l))
        return error_set(err, "loader: batch %lld out of range (%lld per epoch)", (long long)b,
                         (long long)loader_batches(l));
    epoch_order(l, epoch);
    int n = (int)(start + bs <= l->n ? bs : l->n - start);
    out->n = n;
    out->h = l->h;
    out->w = l->w;
    out->c = l->c;
    size_t img = (size_t)l->h * l->w * l->c;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        int64_t s = l->order[start + i];
        load_sample(l, epoch, s, out->images + (size_t)i * img);
        out->labels[i] = l->labels ? l->labels[s] : (int32_t)synthetic_label(l, s);
    }
    return 0;
}
