/* npy.h — NumPy .npy arrays (format versions 1.0, 2.0 and 3.0): loading C-order little-endian arrays and
 * saving them atomically, so data sets and fixtures can come from and go back to Python. */
#ifndef CTRAIN_DATA_NPY_H
#define CTRAIN_DATA_NPY_H

#include <stdint.h>

#include "core/error.h"

#define NPY_MAX_DIMS 8

typedef enum NpyDtype {
    NPY_F32, NPY_F64, NPY_F16,
    NPY_I8, NPY_I16, NPY_I32, NPY_I64,
    NPY_U8, NPY_U16, NPY_U32, NPY_U64,
    NPY_BOOL,
    NPY_DTYPE_COUNT
} NpyDtype;

/* An array in memory, row-major, native (little-endian) byte order. */
typedef struct NpyArray {
    NpyDtype dtype;
    int ndim;                      /* 0 for a scalar */
    int64_t shape[NPY_MAX_DIMS];
    int64_t numel;                 /* 1 for a scalar; may be 0 */
    void *data;                    /* numel * npy_dtype_size(dtype) bytes, malloc'ed */
} NpyArray;

/* NumPy's descr of a dtype ("<f4", "|u1", ...). */
const char *npy_dtype_descr(NpyDtype dtype);
/* Bytes per element. */
int npy_dtype_size(NpyDtype dtype);

/* Reads a whole .npy file. Fortran-order, big-endian, structured and object arrays are rejected with a
 * message saying how to re-save them; truncated data names the expected and actual byte counts. */
int npy_load(const char *path, NpyArray *out, Error *err);
/* Frees the data and zeroes the array; safe on a zeroed one. */
void npy_free(NpyArray *a);
/* Writes a C-order array as a version 1.0 .npy file (data 64-byte aligned, like numpy), atomically. */
int npy_save(const char *path, NpyDtype dtype, int ndim, const int64_t *shape, const void *data, Error *err);

#endif
