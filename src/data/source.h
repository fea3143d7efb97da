/* source.h — what the loader needs from a data set (inside src/data only): its size, its output shape, and a
 * function that makes one sample. Sources: array_source.c (idx, npy, synthetic: in memory) and image_source.c
 * (FFCV .beton and ImageFolder: decode, crop, resize). */
#ifndef CTRAIN_DATA_SOURCE_H
#define CTRAIN_DATA_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "data/loader.h"

#define SOURCE_MAX_CHANNELS 16

typedef struct SampleSource SampleSource;

struct SampleSource {
    int64_t n;                       /* samples */
    int h, w, c;                     /* output image shape */
    int num_classes;
    const char *const *class_names;  /* or NULL */
    float mean[SOURCE_MAX_CHANNELS], std[SOURCE_MAX_CHANNELS]; /* 0..255 units; std 0 = images used as they are */
    bool shuffle, drop_last;
    LoaderOrder order;               /* resolved: sequential, random or quasi-random */
    /* Makes sample s of epoch e (augmented as the source's options say) into out [h, w, c] and *label, on loader
     * thread `worker`. Returns 0, 1 for a corrupt sample (err says why), or -1 when loading cannot go on. */
    int (*produce)(SampleSource *src, int64_t epoch, int64_t s, int worker, float *out, int32_t *label, Error *err);
    /* Per-worker state (decoders, scratch) for `workers` threads; may be NULL. */
    int (*prepare)(SampleSource *src, int workers, Error *err);
    /* Changes the output size (progressive resizing); NULL when the source cannot. Never larger than at
     * creation (the loader's buffers are sized for that). */
    int (*set_output)(SampleSource *src, int h, int w, Error *err);
    /* Turns RandAugment on for training samples; NULL when the source cannot (in-memory data). */
    int (*set_randaugment)(SampleSource *src, int depth, double severity, int set, Error *err);
    /* The page of sample s for quasi-random order, or NULL when the source has no pages. */
    int64_t (*page_of)(const void *src, int64_t s);
    void (*destroy)(SampleSource *src);
};

/* The recipe keys of each kind (the registry lives in loader.c). */
extern const FieldSpec IDX_FIELDS[], NPY_FIELDS[], SYNTHETIC_FIELDS[], IMAGENET_FIELDS[];
int array_dataset_check(const void *options, Error *err);
int imagenet_check(const void *options, Error *err);

/* In-memory sources: the idx, npy and synthetic dataset kinds. */
int array_source_create(const Choice *dataset, const char *what, const LoaderArgs *args, SampleSource **out,
                        Error *err);
/* Image sources: the imagenet dataset kind (an FFCV .beton or an ImageFolder tree). */
int image_source_create(const Choice *dataset, const char *what, const LoaderArgs *args, SampleSource **out,
                        Error *err);

#endif
