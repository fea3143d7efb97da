/* idx.h — MNIST-family IDX files (as LeCun's MNIST and Fashion-MNIST ship them), gzipped or raw. Data is
 * returned as uint8; files of other element types load when every value is an integer in 0..255. */
#ifndef CTRAIN_DATA_IDX_H
#define CTRAIN_DATA_IDX_H

#include <stdint.h>

#include "core/error.h"

#define IDX_MAX_DIMS 4

typedef struct IdxArray {
    int ndim;
    int64_t dims[IDX_MAX_DIMS];    /* outermost first, e.g. {10000, 28, 28} */
    uint8_t *data;                 /* numel bytes, malloc'ed */
    int64_t numel;
} IdxArray;

/* Reads an IDX file (.gz or uncompressed). Errors: "<path>: not an IDX file (bad magic 0x...)",
 * "<path>: truncated (expected N bytes of data, got M)", values that do not fit uint8. */
int idx_load(const char *path, IdxArray *out, Error *err);
/* Frees the data and zeroes the array; safe on a zeroed one. */
void idx_free(IdxArray *a);

#endif
