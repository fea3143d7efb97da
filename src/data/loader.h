/* loader.h — datasets as a recipe names them, and the loader that turns them into training batches.
 *
 * A loader serves batch b of epoch e on request (random access), so resuming at any batch is exact, and the
 * result never depends on the thread count: the epoch order comes from the stream (seed, SHUFFLE, epoch) and
 * each sample's augmentation from (seed, AUGMENT, epoch, sample index). A pool of worker threads fills a ring of
 * preallocated batches `batches_ahead` ahead of the consumer. Batches are host memory, NHWC float32,
 * normalized, with integer labels. A corrupt image is counted, replaced by another sample, and reported.
 *
 * Dataset kinds (the `train_dataset:` / `val_dataset:` registry):
 *   idx        MNIST-family IDX files (gzipped or not); default Debian's dataset-fashion-mnist
 *   npy        NumPy arrays: images [n,h,w,c] float32 (used as is) or uint8 (normalized); labels int64/int32
 *   synthetic  random images and labels of a given shape (benchmarks, tests)
 *   imagenet   Composer's ImageNet keys: an FFCV .beton (use_ffcv) or an ImageFolder tree (datadir) with
 *              RandomResizedCrop + flip for training and a center crop for evaluation */
#ifndef CTRAIN_DATA_LOADER_H
#define CTRAIN_DATA_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/schema.h"
#include "core/error.h"

extern const Registry DATASET_REGISTRY;

/* Options shared by the in-memory kinds (idx, npy, synthetic). mean/std are in 0..255 pixel units and
 * apply to uint8 images; augmentation applies only when is_train. */
typedef struct ArrayDatasetOptions {
    char *datadir;            /* idx: folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] */
    char *images, *labels;    /* explicit files (idx, npy) */
    bool is_train;
    bool shuffle;
    bool drop_last;
    DoubleList mean, std;     /* per channel, or one value for all channels */
    int crop_padding;         /* random crop after zero padding (in normalized units) by this many pixels */
    bool hflip;               /* random horizontal flip */
    int num_samples;          /* synthetic: samples */
    int image_size;           /* synthetic: height = width */
    int channels;             /* synthetic */
    int num_classes;          /* synthetic; npy/idx: 0 = 1 + the largest label */
} ArrayDatasetOptions;

/* Sample orders of an epoch. */
typedef enum LoaderOrder { ORDER_AUTO = 0, ORDER_SEQUENTIAL, ORDER_RANDOM, ORDER_QUASI_RANDOM } LoaderOrder;

/* Composer 0.9's ImageNet dataset keys (FFCV or ImageFolder), plus ctrain's order / os_cache / num_classes. */
typedef struct ImagenetOptions {
    char *datadir;                /* ImageFolder root with train/ and val/ */
    char *ffcv_dir, *ffcv_dest;   /* the .beton is ffcv_dir/ffcv_dest */
    bool use_ffcv, ffcv_write_dataset;
    bool is_train, shuffle, drop_last;
    int crop_size, resize_size;
    int order;                    /* LoaderOrder; auto = random when shuffling, else sequential */
    bool os_cache;                /* true: read through the page cache (mmap); false: page-sized reads */
    bool dct_scaling;             /* decode JPEGs at 1/2, 1/4, 1/8 when the crop allows (false: FFCV's full decode) */
    int num_classes;              /* 0: from the data */
    DoubleList mean, std;         /* 0..255 units; ImageNet's by default */
} ImagenetOptions;

/* One batch in host memory, owned by the loader (valid until its next loader_get). */
typedef struct Batch {
    int n, h, w, c;
    const float *images;      /* [n, h, w, c] normalized */
    const int32_t *labels;    /* [n] */
} Batch;

typedef struct Loader Loader;

/* What the trainer tells the loader beyond the dataset's own options. */
typedef struct LoaderArgs {
    int batch_size;           /* samples per batch (this process) */
    uint64_t seed;
    bool train;               /* train split: augmentation and shuffling as the options say */
    int workers;              /* loader threads (dataloader.num_workers); 0 = one per core */
    int batches_ahead;        /* prefetch depth (dataloader.prefetch_factor); 0 = 2 */
    int rank, world;          /* this process's shard (DistributedSampler semantics); world 0 or 1 = all */
} LoaderArgs;

/* Opens the dataset a recipe chose (`what` names the key for messages, e.g. "train_dataset"). */
int loader_create(const Choice *dataset, const char *what, const LoaderArgs *args, Loader **out, Error *err);
/* Frees the loader and its data. */
void loader_destroy(Loader *l);
/* Batches per epoch (after drop_last). */
int64_t loader_batches(const Loader *l);
/* Samples in the dataset. */
int64_t loader_samples(const Loader *l);
/* Image shape of a batch. */
void loader_shape(const Loader *l, int *h, int *w, int *c);
/* Number of classes (from options, or 1 + the largest label). */
int loader_num_classes(const Loader *l);
/* Class names when the dataset knows them (Fashion-MNIST does), else NULL. */
const char *const *loader_class_names(const Loader *l);
/* Points out at batch b of epoch e (loader memory, valid until the next call); the last batch may be short when
 * drop_last is false (out->n tells). */
int loader_get(Loader *l, int64_t epoch, int64_t b, Batch *out, Error *err);
/* Changes the output resolution of the batches from now on (progressive resizing), without restarting the
 * threads: batches prefetched at the old size are dropped. The size may not exceed the one the loader was
 * created with; only image sources (imagenet) can change it. */
int loader_set_output_size(Loader *l, int h, int w, Error *err);
/* Applies Composer's RandAugment (depth ops of `set` with strength up to severity) to every training image from
 * now on, after its crop and flip; only image sources (imagenet) can. */
int loader_set_randaugment(Loader *l, int depth, double severity, int set, Error *err);
/* The corrupt samples replaced since the last call: their count, and the first one's message in msg. */
int64_t loader_take_corrupt(Loader *l, char *msg, size_t size);
/* The size of a dataset known without opening it (ImageNet-1k: 1,281,167 train / 50,000 val), or -1. */
int64_t loader_nominal_samples(const Choice *dataset);
/* Normalization constants the loader uses (0..255 units), for preprocessing images at predict time. */
void loader_normalization(const Loader *l, float *mean, float *std, int c);

#endif
