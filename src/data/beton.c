/* beton.c — FFCV .beton (format version 2) reader (see beton.h and ../shared/reference/ffcv-format.md §1).
 *
 * The file is mmap'ed read-only. At open: header, descriptors (type ids, names, NDArray arguments), the
 * metadata table's extent, the allocation table's extent and every entry in it are checked, and the table is
 * copied as (ptr, size) pairs sorted by ptr so a payload's size is one binary search away (FFCV does the same
 * with argsort + searchsorted). Per-sample checks happen in the getters. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "data/beton.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "beton.c assumes a little-endian host"
#endif

typedef struct AllocPair {
    uint64_t ptr, size;
} AllocPair;

struct Beton {
    char *path;
    int fd;
    const uint8_t *map;
    uint64_t file_size;
    uint32_t page_size;
    int page_shift;
    int64_t num_samples;
    uint64_t alloc_table_ptr;
    int num_fields;
    BetonField *fields;
    size_t record_size;
    uint64_t metadata_offset;
    int64_t alloc_count;
    AllocPair *allocs; /* sorted by ptr, then by size descending */
};

static uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* ----------------------------------------------------------------------------------- shared layout */

size_t beton_type_size(BetonType t) {
    switch (t) {
    case BETON_FLOAT:
    case BETON_INT:
    case BETON_NDARRAY:
    case BETON_TORCH: return 8;
    case BETON_RGB: return 13;
    case BETON_BYTES:
    case BETON_JSON: return 16;
    }
    return 0;
}

/* numpy alignment of a field's metadata dtype: the packed image/bytes structs have alignment 1. */
static size_t type_align(BetonType t) {
    return (t == BETON_RGB || t == BETON_BYTES || t == BETON_JSON) ? 1 : 8;
}

size_t beton_record_layout(const BetonType *types, int n, size_t *offsets) {
    size_t at = 0, max_align = 1;
    for (int f = 0; f < n; f++) {
        size_t size = beton_type_size(types[f]), align = type_align(types[f]);
        if (!size) return 0;
        at = (at + align - 1) / align * align;
        offsets[f] = at;
        at += size;
        if (align > max_align) max_align = align;
    }
    return (at + max_align - 1) / max_align * max_align;
}

int beton_dtype_itemsize(const char *descr) {
    const char *p = descr;
    if (*p == '<' || *p == '>' || *p == '|' || *p == '=') p++;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) return -1;
    p++;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > (1 << 20)) return -1;
    }
    if (*p == '[') { /* datetime units, e.g. <M8[ns] */
        while (*p && *p != ']') p++;
        if (*p++ != ']') return -1;
    }
    if (*p || v <= 0) return -1;
    return (int)v;
}

/* ------------------------------------------------------------------------------------------- open */

static const char *type_name(int t) {
    static const char *names[] = {"Float", "Int", "RGBImage", "Bytes", "NDArray", "JSON", "TorchTensor"};
    return (t >= 0 && t <= BETON_TORCH) ? names[t] : "?";
}

/* Decodes the NDArray/TorchTensor arguments: shape u64[32] (trailing zeros dropped), type_length u64, and
 * the ASCII JSON of dtype.descr, which must be a single unnamed plain dtype such as [["", "<f4"]]. */
static int parse_ndarray_args(const char *path, BetonField *fd, const uint8_t *args, Error *err) {
    int ndim = BETON_MAX_NDIM;
    while (ndim > 0 && rd64(args + 8 * (ndim - 1)) == 0) ndim--;
    if (ndim == 0)
        return error_set(err, "%s: field '%s' (%s) has an empty shape", path, fd->name, type_name(fd->type));
    fd->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        uint64_t s = rd64(args + 8 * d);
        if (s == 0 || s > (uint64_t)INT64_MAX)
            return error_set(err, "%s: field '%s' has a bad shape entry %llu in dimension %d", path, fd->name,
                             (unsigned long long)s, d);
        fd->shape[d] = (int64_t)s;
    }
    uint64_t len = rd64(args + 256);
    if (len == 0 || len > 1024 - 264)
        return error_set(err, "%s: field '%s' has a dtype description of bad length %llu", path, fd->name,
                         (unsigned long long)len);
    char json[1024];
    memcpy(json, args + 264, (size_t)len);
    json[len] = '\0';
    cJSON *root = cJSON_Parse(json);
    const cJSON *entry = cJSON_IsArray(root) && cJSON_GetArraySize(root) == 1 ? cJSON_GetArrayItem(root, 0) : NULL;
    const cJSON *dt = cJSON_IsArray(entry) && cJSON_GetArraySize(entry) == 2 ? cJSON_GetArrayItem(entry, 1) : NULL;
    int itemsize = -1;
    if (cJSON_IsString(dt) && strlen(dt->valuestring) < sizeof fd->dtype) {
        itemsize = beton_dtype_itemsize(dt->valuestring);
        if (itemsize > 0) snprintf(fd->dtype, sizeof fd->dtype, "%s", dt->valuestring);
    }
    cJSON_Delete(root);
    if (itemsize <= 0)
        return error_set(err, "%s: field '%s' has an unsupported dtype description '%s' (expected e.g. "
                         "[[\"\", \"<f4\"]])", path, fd->name, json);
    fd->itemsize = itemsize;
    int64_t nbytes = itemsize;
    for (int d = 0; d < ndim; d++) {
        if (fd->shape[d] > INT64_MAX / nbytes)
            return error_set(err, "%s: field '%s' has a shape too large to store", path, fd->name);
        nbytes *= fd->shape[d];
    }
    fd->nbytes = nbytes;
    return 0;
}

static int cmp_alloc(const void *a, const void *b) {
    const AllocPair *x = a, *y = b;
    if (x->ptr != y->ptr) return x->ptr < y->ptr ? -1 : 1;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return 0;
}

/* Checks the header and descriptors and fills b's fields, record layout and metadata extent. */
static int read_structure(Beton *b, Error *err) {
    const char *path = b->path;
    const uint8_t *h = b->map;
    unsigned version = rd16(h);
    if (version != BETON_VERSION)
        return error_set(err, "%s: version %u: ctrain reads FFCV format version 2 (written by ffcv 0.0.3–1.x); "
                         "rewrite it with ctrain convert", path, version);
    b->num_fields = rd16(h + 2);
    b->page_size = rd32(h + 4);
    uint64_t n = rd64(h + 8);
    b->alloc_table_ptr = rd64(h + 16);
    if (b->num_fields == 0) return error_set(err, "%s: the header says the file has no fields", path);
    if (b->page_size == 0 || (b->page_size & (b->page_size - 1)))
        return error_set(err, "%s: page size %u in the header is not a power of two", path, b->page_size);
    while ((1u << b->page_shift) < b->page_size) b->page_shift++;
    uint64_t desc_end = BETON_HEADER_SIZE + (uint64_t)BETON_DESC_SIZE * (uint64_t)b->num_fields;
    if (desc_end > b->file_size)
        return error_set(err, "%s: truncated: %d field descriptors end at byte %llu but the file has %llu bytes",
                         path, b->num_fields, (unsigned long long)desc_end, (unsigned long long)b->file_size);

    b->fields = xcalloc(err, (size_t)b->num_fields, sizeof *b->fields);
    BetonType *types = xcalloc(err, (size_t)b->num_fields, sizeof *types);
    size_t *offsets = xcalloc(err, (size_t)b->num_fields, sizeof *offsets);
    int rc = (!b->fields || !types || !offsets) ? -1 : 0;
    for (int f = 0; f < b->num_fields && rc == 0; f++) {
        const uint8_t *d = h + BETON_HEADER_SIZE + (size_t)BETON_DESC_SIZE * (size_t)f;
        BetonField *fd = &b->fields[f];
        memcpy(fd->name, d + 1, 16);
        fd->name[16] = '\0';
        int id = d[0];
        if (id == 255)
            rc = error_set(err, "%s: field '%s' has a custom type (255) that ctrain cannot decode", path, fd->name);
        else if (id > BETON_TORCH)
            rc = error_set(err, "%s: field '%s' has unknown type id %d (FFCV's are 0-6 and 255)", path, fd->name,
                           id);
        else {
            fd->type = (BetonType)id;
            types[f] = fd->type;
            if (fd->type == BETON_NDARRAY || fd->type == BETON_TORCH) rc = parse_ndarray_args(path, fd, d + 17, err);
        }
    }
    if (rc == 0) {
        b->record_size = beton_record_layout(types, b->num_fields, offsets);
        for (int f = 0; f < b->num_fields; f++) {
            b->fields[f].offset = offsets[f];
            b->fields[f].size = beton_type_size(types[f]);
        }
        b->metadata_offset = desc_end;
        uint64_t room = b->file_size - desc_end;
        if (n > room / b->record_size)
            rc = error_set(err, "%s: truncated: the metadata of %llu samples (%zu bytes each) does not fit "
                           "between byte %llu and the end of the file (%llu bytes)", path, (unsigned long long)n,
                           b->record_size, (unsigned long long)desc_end, (unsigned long long)b->file_size);
        b->num_samples = (int64_t)n;
    }
    free(types);
    free(offsets);
    return rc;
}

/* Checks the allocation table's extent and entries and builds the sorted (ptr, size) copy. */
static int read_alloc_table(Beton *b, Error *err) {
    const char *path = b->path;
    uint64_t meta_end = b->metadata_offset + (uint64_t)b->num_samples * b->record_size;
    uint64_t a = b->alloc_table_ptr;
    if (a < meta_end || a > b->file_size)
        return error_set(err, "%s: allocation table pointer %llu is outside [end of metadata %llu, end of file "
                         "%llu] (truncated or corrupt file)", path, (unsigned long long)a,
                         (unsigned long long)meta_end, (unsigned long long)b->file_size);
    uint64_t bytes = b->file_size - a;
    if (bytes % BETON_ALLOC_ENTRY_SIZE)
        return error_set(err, "%s: allocation table (%llu bytes from byte %llu to the end) is not a multiple of "
                         "%d bytes (truncated or corrupt file)", path, (unsigned long long)bytes,
                         (unsigned long long)a, BETON_ALLOC_ENTRY_SIZE);
    b->alloc_count = (int64_t)(bytes / BETON_ALLOC_ENTRY_SIZE);
    b->allocs = xcalloc(err, (size_t)b->alloc_count, sizeof *b->allocs);
    if (!b->allocs) return error_prefix(err, "%s", path);
    for (int64_t k = 0; k < b->alloc_count; k++) {
        const uint8_t *e = b->map + a + (uint64_t)k * BETON_ALLOC_ENTRY_SIZE;
        uint64_t sid = rd64(e), ptr = rd64(e + 8), size = rd64(e + 16);
        if (size > 0 && (ptr > a || size > a - ptr))
            return error_set(err, "%s: allocation table entry %lld (sample %llu) points to bytes [%llu, +%llu) "
                             "outside the data region, which ends at %llu", path, (long long)k,
                             (unsigned long long)sid, (unsigned long long)ptr, (unsigned long long)size,
                             (unsigned long long)a);
        b->allocs[k].ptr = ptr;
        b->allocs[k].size = size;
    }
    qsort(b->allocs, (size_t)b->alloc_count, sizeof *b->allocs, cmp_alloc);
    return 0;
}

int beton_open(const char *path, Beton **out, Error *err) {
    *out = NULL;
    Beton *b = xcalloc(err, 1, sizeof *b);
    if (!b) return error_prefix(err, "%s", path);
    b->fd = -1;
    size_t plen = strlen(path) + 1;
    b->path = malloc(plen);
    if (!b->path) {
        free(b);
        return error_set(err, "%s: out of memory", path);
    }
    memcpy(b->path, path, plen);

    int rc = 0;
    struct stat st;
    b->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (b->fd < 0) rc = error_set(err, "%s: cannot open: %s", path, strerror(errno));
    else if (fstat(b->fd, &st) != 0) rc = error_set(err, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) rc = error_set(err, "%s: not a regular file (expected an FFCV .beton file)", path);
    else if ((uint64_t)st.st_size < BETON_HEADER_SIZE)
        rc = error_set(err, "%s: too small to be an FFCV .beton file (%lld bytes; the header alone is %d)", path,
                       (long long)st.st_size, BETON_HEADER_SIZE);
    if (rc == 0) {
        b->file_size = (uint64_t)st.st_size;
        void *m = mmap(NULL, (size_t)b->file_size, PROT_READ, MAP_SHARED, b->fd, 0);
        if (m == MAP_FAILED) rc = error_set(err, "%s: cannot map: %s", path, strerror(errno));
        else b->map = m;
    }
    if (rc == 0) rc = read_structure(b, err);
    if (rc == 0) rc = read_alloc_table(b, err);
    if (rc) {
        beton_close(b);
        return -1;
    }
    *out = b;
    return 0;
}

void beton_close(Beton *b) {
    if (!b) return;
    if (b->map) munmap((void *)b->map, (size_t)b->file_size);
    if (b->fd >= 0) close(b->fd);
    free(b->fields);
    free(b->allocs);
    free(b->path);
    free(b);
}

/* ------------------------------------------------------------------------------------- accessors */

int64_t beton_num_samples(const Beton *b) { return b->num_samples; }
uint32_t beton_page_size(const Beton *b) { return b->page_size; }
const char *beton_path(const Beton *b) { return b->path; }
uint64_t beton_file_size(const Beton *b) { return b->file_size; }
int beton_num_fields(const Beton *b) { return b->num_fields; }
size_t beton_record_size(const Beton *b) { return b->record_size; }
uint64_t beton_metadata_offset(const Beton *b) { return b->metadata_offset; }
int beton_fd(const Beton *b) { return b->fd; }
int64_t beton_alloc_count(const Beton *b) { return b->alloc_count; }
uint64_t beton_alloc_table_ptr(const Beton *b) { return b->alloc_table_ptr; }

const BetonField *beton_field(const Beton *b, int f) {
    return (f >= 0 && f < b->num_fields) ? &b->fields[f] : NULL;
}

int beton_find_field(const Beton *b, const char *name) {
    for (int f = 0; f < b->num_fields; f++)
        if (strcmp(b->fields[f].name, name) == 0) return f;
    return -1;
}

const uint8_t *beton_record(const Beton *b, int64_t i) {
    if (i < 0 || i >= b->num_samples) return NULL;
    return b->map + b->metadata_offset + (uint64_t)i * b->record_size;
}

const uint8_t *beton_data(const Beton *b, uint64_t ptr) {
    return ptr <= b->file_size ? b->map + ptr : NULL;
}

int64_t beton_alloc_size(const Beton *b, uint64_t ptr) {
    size_t lo = 0, hi = (size_t)b->alloc_count; /* first entry with entry.ptr >= ptr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->allocs[mid].ptr < ptr) lo = mid + 1;
        else hi = mid;
    }
    if (lo < (size_t)b->alloc_count && b->allocs[lo].ptr == ptr) return (int64_t)b->allocs[lo].size;
    return -1;
}

/* The record of sample i's field f when it exists and has type t (or t2), else NULL. */
static const uint8_t *field_at(const Beton *b, int f, int64_t i, BetonType t, BetonType t2) {
    const uint8_t *r = beton_record(b, i);
    if (!r || f < 0 || f >= b->num_fields) return NULL;
    if (b->fields[f].type != t && b->fields[f].type != t2) return NULL;
    return r + b->fields[f].offset;
}

int64_t beton_get_int(const Beton *b, int f, int64_t i) {
    const uint8_t *p = field_at(b, f, i, BETON_INT, BETON_INT);
    return p ? (int64_t)rd64(p) : 0;
}

double beton_get_float(const Beton *b, int f, int64_t i) {
    const uint8_t *p = field_at(b, f, i, BETON_FLOAT, BETON_FLOAT);
    double v = NAN;
    if (p) memcpy(&v, p, 8);
    return v;
}

/* Error for a getter called with a bad field/sample/type. */
static int bad_access(const Beton *b, int f, int64_t i, const char *want, Error *err) {
    if (i < 0 || i >= b->num_samples)
        return error_set(err, "%s: sample %lld is out of range (the file has %lld)", b->path, (long long)i,
                         (long long)b->num_samples);
    if (f < 0 || f >= b->num_fields)
        return error_set(err, "%s: field %d is out of range (the file has %d)", b->path, f, b->num_fields);
    return error_set(err, "%s: field '%s' is %s, not %s", b->path, b->fields[f].name, type_name(b->fields[f].type),
                     want);
}

/* Checks that [ptr, ptr+size) lies inside the file. */
static int check_span(const Beton *b, int f, int64_t i, uint64_t ptr, uint64_t size, Error *err) {
    if (size == 0 || (ptr <= b->file_size && size <= b->file_size - ptr)) return 0;
    return error_set(err, "%s: sample %lld field '%s' points to bytes [%llu, +%llu) outside the file (%llu bytes)",
                     b->path, (long long)i, b->fields[f].name, (unsigned long long)ptr, (unsigned long long)size,
                     (unsigned long long)b->file_size);
}

int beton_get_image(const Beton *b, int f, int64_t i, BetonImage *out, Error *err) {
    const uint8_t *p = field_at(b, f, i, BETON_RGB, BETON_RGB);
    if (!p) return bad_access(b, f, i, "RGBImage", err);
    out->mode = p[0];
    out->width = rd16(p + 1);
    out->height = rd16(p + 3);
    out->ptr = rd64(p + 5);
    out->size = 0;
    const char *name = b->fields[f].name;
    if (out->mode != 0 && out->mode != 1)
        return error_set(err, "%s: sample %lld field '%s' has unknown image mode %d (0 JPEG, 1 raw)", b->path,
                         (long long)i, name, out->mode);
    int64_t size = beton_alloc_size(b, out->ptr);
    if (size < 0)
        return error_set(err, "%s: sample %lld field '%s': image pointer %llu has no allocation-table entry",
                         b->path, (long long)i, name, (unsigned long long)out->ptr);
    out->size = (uint64_t)size;
    if (check_span(b, f, i, out->ptr, out->size, err)) return -1;
    uint64_t raw = (uint64_t)out->width * (uint64_t)out->height * 3u;
    if (out->mode == 1 && out->size != raw)
        return error_set(err, "%s: sample %lld field '%s': raw %dx%d image has %llu bytes, expected %llu", b->path,
                         (long long)i, name, out->width, out->height, (unsigned long long)out->size,
                         (unsigned long long)raw);
    if (out->mode == 0 && out->size == 0)
        return error_set(err, "%s: sample %lld field '%s': JPEG image has 0 bytes", b->path, (long long)i, name);
    return 0;
}

int beton_get_bytes(const Beton *b, int f, int64_t i, uint64_t *ptr, uint64_t *size, Error *err) {
    const uint8_t *p = field_at(b, f, i, BETON_BYTES, BETON_JSON);
    if (!p) return bad_access(b, f, i, "Bytes or JSON", err);
    *ptr = rd64(p);
    *size = rd64(p + 8);
    return check_span(b, f, i, *ptr, *size, err);
}

int beton_get_ndarray(const Beton *b, int f, int64_t i, uint64_t *ptr, Error *err) {
    const uint8_t *p = field_at(b, f, i, BETON_NDARRAY, BETON_TORCH);
    if (!p) return bad_access(b, f, i, "NDArray or TorchTensor", err);
    *ptr = rd64(p);
    return check_span(b, f, i, *ptr, (uint64_t)b->fields[f].nbytes, err);
}

int64_t beton_sample_page(const Beton *b, int64_t i) {
    const uint8_t *r = beton_record(b, i);
    if (!r) return -1;
    for (int f = 0; f < b->num_fields; f++) {
        const BetonField *fd = &b->fields[f];
        const uint8_t *p = r + fd->offset;
        uint64_t ptr = 0, size = 0;
        switch (fd->type) {
        case BETON_RGB: {
            ptr = rd64(p + 5);
            int64_t s = beton_alloc_size(b, ptr);
            size = s > 0 ? (uint64_t)s : 0;
            break;
        }
        case BETON_BYTES:
        case BETON_JSON:
            ptr = rd64(p);
            size = rd64(p + 8);
            break;
        case BETON_NDARRAY:
        case BETON_TORCH:
            ptr = rd64(p);
            size = (uint64_t)fd->nbytes;
            break;
        default: break;
        }
        if (size > 0) return (int64_t)(ptr >> b->page_shift);
    }
    return -1;
}
