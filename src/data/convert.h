/* convert.h — writing FFCV .beton files (fields `image`: RGBImage and `label`: Int, FFCV's ImageNet layout) from
 * an ImageFolder tree, MNIST-family IDX files or NumPy arrays, with FFCV's RGBImageField write options. */
#ifndef CTRAIN_DATA_CONVERT_H
#define CTRAIN_DATA_CONVERT_H

#include <stdint.h>

#include "core/error.h"

typedef enum WriteMode { WRITE_RAW = 0, WRITE_JPG, WRITE_SMART, WRITE_PROPORTION } WriteMode;

typedef struct ConvertOptions {
    WriteMode write_mode;
    int max_resolution;          /* longest side; 0 = keep (FFCV: never upscales, truncates the new size) */
    int jpeg_quality;
    double compress_probability; /* proportion mode */
    int64_t smart_threshold;     /* smart mode: JPEG when h*w*3 bytes exceed it; -1 = never */
    uint32_t page_size;          /* 0 = 8 MiB */
    int num_workers;             /* 0 = all cores */
    uint64_t seed;               /* proportion mode's draws: (seed, sample index) */
    const char *labels;          /* .npy sources: the labels file */
    void (*progress)(void *ctx, int64_t done, int64_t total);
    void (*on_skip)(void *ctx, const char *what, const char *why);
    void *ctx;
} ConvertOptions;

typedef struct ConvertReport {
    int64_t samples, written, skipped, jpeg, raw;
    int classes;
    uint64_t bytes;              /* of the output file */
} ConvertReport;

/* FFCV's RGBImageField defaults: raw, no max_resolution, quality 90, probability 0.5, 8 MiB pages. */
void convert_options_default(ConvertOptions *o);
/* Composer's ffcv_write_dataset settings: write_mode raw, max_resolution 500, quality 90, probability 0.5. */
void convert_options_composer(ConvertOptions *o);
/* Parses a write mode name (raw, jpg, smart, proportion). */
int convert_parse_mode(const char *name, WriteMode *out, Error *err);
/* Converts src (an ImageFolder folder, a *-images-idx3-ubyte[.gz] file with its labels file beside it, or an
 * images .npy with o->labels) to the .beton out, atomically. report may be NULL. */
int convert_run(const char *src, const char *out, const ConvertOptions *o, ConvertReport *report, Error *err);

#endif
