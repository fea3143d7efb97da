/* beton.h — reading FFCV `.beton` files (format version 2, written by ffcv 0.0.3–1.x), byte for byte as
 * ../shared/reference/ffcv-format.md §1 describes them.
 *
 * A Beton is the whole file mapped read-only. beton_open checks the header, the field descriptors, that the
 * metadata table and the allocation table lie inside the file, and every allocation-table entry; the getters
 * check the one sample they read (pointers inside the file, an image's table entry, raw size == w*h*3), so
 * a loader can count and skip a corrupt sample instead of failing the whole data set.
 *
 * Sizes of variable-length data: images take theirs from the allocation table (exact lookup by data_ptr,
 * as FFCV does); Bytes and JSON from their metadata (JSON's size includes its trailing NUL); NDArray and
 * TorchTensor from the field's dtype and shape. */
#ifndef CTRAIN_DATA_BETON_H
#define CTRAIN_DATA_BETON_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define BETON_VERSION 2
#define BETON_HEADER_SIZE 24
#define BETON_DESC_SIZE 1041   /* type_id u8 | name u8[16] | arguments u8[1024] */
#define BETON_ALLOC_ENTRY_SIZE 24 /* sample_id u64 | ptr u64 | size u64 */
#define BETON_MAX_NDIM 32

typedef enum BetonType {
    BETON_FLOAT = 0,
    BETON_INT = 1,
    BETON_RGB = 2,
    BETON_BYTES = 3,
    BETON_NDARRAY = 4,
    BETON_JSON = 5,
    BETON_TORCH = 6,
} BetonType;

typedef struct BetonField {
    BetonType type;
    char name[17];        /* up to 16 chars; a 16-char name has no NUL in the file */
    size_t offset, size;  /* of this field inside the metadata record */
    /* NDArray / TorchTensor: */
    int ndim;
    int64_t shape[BETON_MAX_NDIM];
    char dtype[32];       /* numpy descr, e.g. "<f4" */
    int itemsize;
    int64_t nbytes;       /* itemsize * prod(shape) */
} BetonField;

typedef struct BetonImage {
    int mode;             /* 0 JPEG, 1 raw RGB (HWC, row-major, uint8) */
    int width, height;
    uint64_t ptr, size;   /* absolute file offset and byte count of the payload */
} BetonImage;

typedef struct Beton Beton;

/* Opens and maps path read-only and validates its structure; *out is NULL on failure. */
int beton_open(const char *path, Beton **out, Error *err);
/* Unmaps and frees b (NULL is fine). */
void beton_close(Beton *b);

/* Number of samples (header). */
int64_t beton_num_samples(const Beton *b);
/* Page size in bytes (header; a power of two). */
uint32_t beton_page_size(const Beton *b);
/* The path beton_open was given, for messages. */
const char *beton_path(const Beton *b);
/* Total file size in bytes. */
uint64_t beton_file_size(const Beton *b);

/* Number of fields. */
int beton_num_fields(const Beton *b);
/* Field f's description; NULL when f is out of range. */
const BetonField *beton_field(const Beton *b, int f);
/* Index of the field called name, -1 when absent. */
int beton_find_field(const Beton *b, const char *name);

/* Size of one metadata record in bytes. */
size_t beton_record_size(const Beton *b);
/* File offset of record 0 (24 + 1041 * num_fields). */
uint64_t beton_metadata_offset(const Beton *b);
/* Sample i's raw metadata record (record_size bytes), NULL when i is out of range. */
const uint8_t *beton_record(const Beton *b, int64_t i);

/* Int field f of sample i; 0 when f is not an Int field or i is out of range. */
int64_t beton_get_int(const Beton *b, int f, int64_t i);
/* Float field f of sample i; NaN when f is not a Float field or i is out of range. */
double beton_get_float(const Beton *b, int f, int64_t i);
/* RGB field f of sample i: mode, size (from the allocation table), payload location; fails (one line naming
 * the path, sample and field) on an unknown mode, a pointer with no table entry, bytes outside the file, or a
 * raw payload whose size is not width*height*3. */
int beton_get_image(const Beton *b, int f, int64_t i, BetonImage *out, Error *err);
/* Bytes or JSON field f of sample i: pointer and size from the metadata (JSON's size counts its NUL). */
int beton_get_bytes(const Beton *b, int f, int64_t i, uint64_t *ptr, uint64_t *size, Error *err);
/* NDArray / TorchTensor field f of sample i: pointer of its field->nbytes bytes. */
int beton_get_ndarray(const Beton *b, int f, int64_t i, uint64_t *ptr, Error *err);

/* Pointer into the mapping at file offset ptr (NULL when ptr is past the end of the file). */
const uint8_t *beton_data(const Beton *b, uint64_t ptr);
/* The open file descriptor, for page-sized pread(). */
int beton_fd(const Beton *b);

/* Number of allocation-table entries. */
int64_t beton_alloc_count(const Beton *b);
/* File offset of the allocation table (header). */
uint64_t beton_alloc_table_ptr(const Beton *b);
/* Size of the allocation that starts exactly at ptr, -1 when there is none (among equal pointers, which
 * FFCV writes for empty blobs, the largest size wins). */
int64_t beton_alloc_size(const Beton *b, uint64_t ptr);

/* Page index (ptr / page_size, counted from the start of the file) holding sample i's data, taken from its
 * first non-empty allocation; -1 when it has none (no variable fields, or only empty ones). */
int64_t beton_sample_page(const Beton *b, int64_t i);

/* Metadata record layout shared with the writer: fills offsets[0..n) of fields of the given types, returns
 * the record size (numpy aligned struct; RGB/Bytes/JSON align 1, the rest 8), 0 for an unknown type. */
size_t beton_record_layout(const BetonType *types, int n, size_t *offsets);
/* Size in the record of one field of type t (0 for an unknown type). */
size_t beton_type_size(BetonType t);
/* Item size in bytes of a numpy descr such as "<f4", "|u1", "<M8[ns]"; -1 when it is not one. */
int beton_dtype_itemsize(const char *descr);

#endif
