/* safetensors.h — reading and writing the safetensors format (https://github.com/huggingface/safetensors),
 * ctrain's weight-file format.
 *
 * Layout: u64 little-endian header length N; N bytes of JSON
 *     {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
 * padded with spaces to a multiple of 8; then the tensor bytes (little-endian, row-major), offsets relative to
 * the start of the data. The reader maps the file and validates every offset before handing out pointers;
 * tensor data may be unaligned, so copy it out with memcpy (or st_read_f32). */
#ifndef CTRAIN_IO_SAFETENSORS_H
#define CTRAIN_IO_SAFETENSORS_H

#include <stdint.h>

#include "core/error.h"

#define ST_MAX_DIMS 8

typedef enum StDtype {
    ST_F64, ST_F32, ST_F16, ST_BF16,
    ST_I64, ST_I32, ST_I16, ST_I8,
    ST_U64, ST_U32, ST_U16, ST_U8,
    ST_BOOL,
    ST_DTYPE_COUNT
} StDtype;

/* One tensor of an open file; valid until st_close. */
typedef struct StTensor {
    const char *name;
    StDtype dtype;
    int ndim;                     /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];   /* outermost first */
    int64_t numel;                /* 1 for a scalar; may be 0 */
    const void *data;             /* numel * st_dtype_size(dtype) bytes, possibly unaligned */
} StTensor;

typedef struct SafeTensors SafeTensors;
typedef struct StWriter StWriter;

/* The format's name of a dtype ("F32", "BF16", ...). */
const char *st_dtype_name(StDtype dtype);
/* Bytes per element of a dtype. */
int st_dtype_size(StDtype dtype);

/* Maps and validates a file; a truncated or corrupt one gives "<path>: not a valid safetensors file (...)". */
int st_open(const char *path, SafeTensors **out, Error *err);
/* Number of tensors. */
int st_count(const SafeTensors *st);
/* Tensor i (0 <= i < st_count) in header order. */
const StTensor *st_at(const SafeTensors *st, int i);
/* Tensor by name, or NULL. */
const StTensor *st_get(const SafeTensors *st, const char *name);
/* Value of a "__metadata__" key, or NULL. */
const char *st_metadata(const SafeTensors *st, const char *key);
/* Unmaps and frees; NULL is fine. */
void st_close(SafeTensors *st);

/* Copies a F32/F16/BF16/F64 tensor into dst as float; fails unless the tensor has exactly numel elements.
 * Messages name the tensor; callers prefix the file. */
int st_read_f32(const StTensor *t, float *dst, int64_t numel, Error *err);

/* A new, empty writer (NULL when out of memory). */
StWriter *st_writer_new(void);
/* Adds a tensor; data is referenced, not copied, and must stay valid until st_writer_write. */
int st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                  const void *data, Error *err);
/* Sets a "__metadata__" string entry (replacing an earlier value for the same key). */
int st_writer_meta(StWriter *w, const char *key, const char *value, Error *err);
/* Writes the file atomically: tensors laid out and listed in the order added. */
int st_writer_write(StWriter *w, const char *path, Error *err);
/* Hands a malloc'ed block (holding tensors' data added by reference) to the writer, which frees it with itself. On
 * failure the block is freed at once. */
int st_writer_keep(StWriter *w, void *block, Error *err);
/* Frees the writer (not the tensors' data, except blocks given to st_writer_keep); NULL is fine. */
void st_writer_free(StWriter *w);

#endif
