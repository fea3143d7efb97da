/* beton_writer.h — writing FFCV `.beton` files (format version 2) that FFCV itself reads, laid out as FFCV's
 * DatasetWriter lays them out (../shared/reference/ffcv-format.md §1, §1.6, §1.7):
 *
 *   header (24 B) | field descriptors (1041 B each) | metadata records | zero gap up to the first multiple of
 *   page_size | full-size pages with zero tails | allocation table (24 B per allocation) to EOF
 *
 * Every sample's variable-size data lies in one page, packed back to back in sample order and, inside a
 * sample, in field order; the table has one entry per allocation (sample_id = output index). Unlike FFCV the
 * page order is the sample order (no orphaned bytes, table sorted by ptr), and the output is byte-identical
 * for any thread count. An empty Bytes value still gets a unique pointer on its sample's page (one reserved
 * zero byte at that address; size 0 in the metadata and the table), so FFCV's ptr -> size lookup never sees
 * two allocations at one address (FFCV's own writer gives empty blobs duplicate or zero pointers). */
#ifndef CTRAIN_DATA_BETON_WRITER_H
#define CTRAIN_DATA_BETON_WRITER_H

#include <stdint.h>

#include "core/error.h"
#include "data/beton.h"

#define BETON_MIN_PAGE_SIZE (1u << 21)     /* FFCV's MIN_PAGE_SIZE: 2 MiB */
#define BETON_DEFAULT_PAGE_SIZE (1u << 23) /* FFCV's default: 8 MiB */

typedef struct BetonFieldSpec {
    BetonType type;
    const char *name;     /* at most 16 characters, unique */
    const char *dtype;    /* NDArray / TorchTensor only: numpy descr, e.g. "<f4" */
    int ndim;             /* NDArray / TorchTensor only: 1..32 */
    int64_t shape[32];    /* NDArray / TorchTensor only: every entry >= 1 */
} BetonFieldSpec;

typedef struct BetonValue { /* one field's value for one sample, filled by the sample function */
    int64_t i;              /* Int */
    double f;               /* Float */
    int image_mode, width, height; /* RGB: 0 JPEG, 1 raw (width*height*3 bytes, RGB HWC); 1..65535 px */
    uint8_t *data;          /* RGB / Bytes / JSON (without the NUL; the writer appends it) / NDArray bytes; */
    uint64_t size;          /*   malloc'ed, the writer frees it (also when the sample is skipped or fails) */
} BetonValue;

/* Fills values[0..n_fields) (zeroed on entry) for source sample i. Called from several threads at once.
 * Returns 0, -1 with err (fatal), or 1 to skip this sample (err says why; the writer leaves it out and
 * reports it through on_skip). */
typedef int (*BetonSampleFn)(void *ctx, int64_t i, BetonValue *values, Error *err);

typedef struct BetonWriteOptions {
    uint32_t page_size; /* power of two, >= 2 MiB (FFCV's MIN_PAGE_SIZE) and < 4 GiB; 0 = 8 MiB (FFCV's default) */
    int threads;        /* 0 = all cores */
    void (*on_skip)(void *ctx, int64_t i, const char *why);      /* called in sample order, one thread */
    void (*progress)(void *ctx, int64_t done, int64_t total);    /* called in sample order, one thread */
    void *ctx;
} BetonWriteOptions;

/* Writes source samples 0..n-1 (minus skipped ones) to path through a temporary file, so a failure leaves
 * nothing behind. *written (may be NULL) receives the number of samples in the file. opts may be NULL. */
int beton_write(const char *path, const BetonFieldSpec *fields, int n_fields, int64_t n, BetonSampleFn fn,
                void *ctx, const BetonWriteOptions *opts, int64_t *written, Error *err);

#endif
