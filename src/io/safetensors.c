/* safetensors.c — safetensors reader (mmap + validation of every header entry) and atomic writer; the
 * header JSON is parsed and built with cJSON. See safetensors.h for the format. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/fsutil.h"
#include "io/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER (100u << 20)          /* the reference implementation's limit */
#define ST_MAX_INT ((int64_t)1 << 53)        /* largest integer a JSON double holds exactly */

static const struct {
    const char *name;
    int size;
} DTYPES[ST_DTYPE_COUNT] = {
    [ST_F64] = {"F64", 8},  [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2},
    [ST_I64] = {"I64", 8},  [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2}, [ST_I8] = {"I8", 1},
    [ST_U64] = {"U64", 8},  [ST_U32] = {"U32", 4}, [ST_U16] = {"U16", 2}, [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1},
};

const char *st_dtype_name(StDtype dtype) {
    return (unsigned)dtype < ST_DTYPE_COUNT ? DTYPES[dtype].name : "?";
}

int st_dtype_size(StDtype dtype) {
    return (unsigned)dtype < ST_DTYPE_COUNT ? DTYPES[dtype].size : 0;
}

static int dtype_parse(const char *s, StDtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(s, DTYPES[i].name) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------------------------------------- reader */

struct SafeTensors {
    void *map;
    size_t map_size;
    cJSON *header;    /* parsed header; tensor names and metadata point into it */
    const cJSON *meta;
    StTensor *tensors;
    int count;
};

static int invalid(Error *err, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int invalid(Error *err, const char *path, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return error_set(err, "%s: not a valid safetensors file (%s)", path, why);
}

/* Reads a non-negative integer JSON number that a double holds exactly. */
static int json_int(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double d = item->valuedouble;
    if (!(d >= 0 && d <= (double)ST_MAX_INT) || d != (double)(int64_t)d) return -1;
    *out = (int64_t)d;
    return 0;
}

/* Fills t (except data) from one header entry and returns its byte range. */
static int parse_entry(const cJSON *e, StTensor *t, int64_t range[2], const char *path, Error *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return invalid(err, path, "entry '%s' is not an object", name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return invalid(err, path, "tensor '%s' lacks dtype, shape or data_offsets", name);
    t->name = name;
    if (dtype_parse(dt->valuestring, &t->dtype))
        return invalid(err, path, "tensor '%s' has unsupported dtype '%s'", name, dt->valuestring);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > ST_MAX_DIMS)
        return invalid(err, path, "tensor '%s' has %d dimensions, at most %d are supported", name, ndim,
                       ST_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        if (json_int(d, &t->shape[i]))
            return invalid(err, path, "tensor '%s' has a shape entry that is not a non-negative integer", name);
        if (t->shape[i] > 0 && t->numel > ST_MAX_INT / t->shape[i])
            return invalid(err, path, "tensor '%s' has an impossibly large shape", name);
        t->numel *= t->shape[i++];
    }
    if (cJSON_GetArraySize(off) != 2 || json_int(off->child, &range[0]) || json_int(off->child->next, &range[1]))
        return invalid(err, path, "tensor '%s' data_offsets is not [begin, end]", name);
    int64_t nbytes = t->numel * st_dtype_size(t->dtype);
    if (range[1] < range[0] || range[1] - range[0] != nbytes)
        return invalid(err, path, "tensor '%s' data_offsets [%lld, %lld] do not match %lld x %s", name,
                       (long long)range[0], (long long)range[1], (long long)t->numel, dt->valuestring);
    return 0;
}

typedef struct Range {
    int64_t begin, end;
    int index;
} Range;

static int range_cmp(const void *a, const void *b) {
    const Range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Parses and checks the header of a mapped file into st. */
static int parse_header(SafeTensors *st, const char *path, Error *err) {
    const uint8_t *base = st->map;
    if (st->map_size < 8)
        return invalid(err, path, "file is %zu bytes, shorter than the 8-byte header length", st->map_size);
    uint64_t n;
    memcpy(&n, base, 8);
    if (n > ST_MAX_HEADER)
        return invalid(err, path, "header length %llu is implausibly large; is it a safetensors file?",
                       (unsigned long long)n);
    if (n > st->map_size - 8)
        return invalid(err, path, "header length %llu runs past the end of the %zu-byte file; truncated?",
                       (unsigned long long)n, st->map_size);
    const char *json = (const char *)base + 8, *end = NULL;
    if (n < 2 || json[0] != '{') return invalid(err, path, "header does not start with '{'");
    st->header = cJSON_ParseWithLengthOpts(json, (size_t)n, &end, 0);
    if (!st->header || !cJSON_IsObject(st->header))
        return invalid(err, path, "header JSON is malformed near byte %lld",
                       end ? (long long)(end - json) + 8 : -1LL);
    for (; end < json + n; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
            return invalid(err, path, "unexpected bytes after the header JSON at byte %lld",
                           (long long)(end - json) + 8);

    uint64_t data_size = st->map_size - 8 - n;
    int entries = cJSON_GetArraySize(st->header);
    st->tensors = calloc((size_t)entries + 1, sizeof *st->tensors);
    Range *ranges = calloc((size_t)entries + 1, sizeof *ranges);
    if (!st->tensors || !ranges) {
        free(ranges);
        return error_set(err, "%s: out of memory reading a header of %d entries", path, entries);
    }
    int rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, st->header) {
        for (const cJSON *p = st->header->child; p != e && rc == 0; p = p->next)
            if (strcmp(p->string, e->string) == 0) rc = invalid(err, path, "key '%s' appears twice", e->string);
        if (rc) break;
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                rc = invalid(err, path, "__metadata__ is not an object");
                break;
            }
            const cJSON *v;
            cJSON_ArrayForEach(v, e) if (!cJSON_IsString(v) && rc == 0)
                rc = invalid(err, path, "__metadata__ value '%s' is not a string", v->string);
            if (rc) break;
            st->meta = e;
            continue;
        }
        StTensor *t = &st->tensors[st->count];
        Range *r = &ranges[st->count];
        int64_t span[2] = {0, 0};
        if ((rc = parse_entry(e, t, span, path, err))) break;
        if ((uint64_t)span[1] > data_size) {
            rc = invalid(err, path, "tensor '%s' ends at byte %lld of the data, but the file holds %llu; truncated?",
                         t->name, (long long)span[1], (unsigned long long)data_size);
            break;
        }
        t->data = base + 8 + n + span[0];
        *r = (Range){span[0], span[1], st->count++};
    }
    if (rc == 0) {
        qsort(ranges, (size_t)st->count, sizeof *ranges, range_cmp);
        for (int i = 1; i < st->count && rc == 0; i++)
            if (ranges[i].begin < ranges[i - 1].end)
                rc = invalid(err, path, "tensors '%s' and '%s' overlap", st->tensors[ranges[i - 1].index].name,
                             st->tensors[ranges[i].index].name);
    }
    free(ranges);
    return rc;
}

int st_open(const char *path, SafeTensors **out, Error *err) {
    *out = NULL;
    SafeTensors *st = calloc(1, sizeof *st);
    if (!st) return error_set(err, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        error_set(err, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        error_set(err, "%s: not a regular file", path);
        goto fail;
    }
    st->map_size = (size_t)sb.st_size;
    if (st->map_size > 0) {
        st->map = mmap(NULL, st->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (st->map == MAP_FAILED) {
            st->map = NULL;
            error_set(err, "%s: cannot map: %s", path, strerror(errno));
            goto fail;
        }
    }
    close(fd);
    fd = -1;
    if (parse_header(st, path, err)) goto fail;
    *out = st;
    return 0;
fail:
    if (fd >= 0) close(fd);
    st_close(st);
    return -1;
}

int st_count(const SafeTensors *st) {
    return st ? st->count : 0;
}

const StTensor *st_at(const SafeTensors *st, int i) {
    return st && i >= 0 && i < st->count ? &st->tensors[i] : NULL;
}

const StTensor *st_get(const SafeTensors *st, const char *name) {
    for (int i = 0; st && name && i < st->count; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    if (!st || !st->meta || !key) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->map_size);
    cJSON_Delete(st->header);
    free(st->tensors);
    free(st);
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float v = (float)man * 0x1p-24f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int st_read_f32(const StTensor *t, float *dst, int64_t numel, Error *err) {
    if (t->numel != numel)
        return error_set(err, "tensor '%s' has %lld elements, expected %lld", t->name, (long long)t->numel,
                         (long long)numel);
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case ST_F32:
        if (numel) memcpy(dst, src, (size_t)numel * 4);
        return 0;
    case ST_F64:
        for (int64_t i = 0; i < numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            if (t->dtype == ST_F16) {
                dst[i] = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, 4);
            }
        }
        return 0;
    default:
        return error_set(err, "tensor '%s' has dtype %s; expected a floating-point tensor (F32, F16, BF16, F64)",
                         t->name, st_dtype_name(t->dtype));
    }
}

/* ---------------------------------------------------------------------------------------------- writer */

typedef struct WTensor {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    int64_t nbytes;
} WTensor;

typedef struct WMeta {
    char *key, *value;
} WMeta;

struct StWriter {
    WTensor *t;
    int n, cap;
    WMeta *meta;
    int nmeta, meta_cap;
    void **kept;          /* blocks freed with the writer (st_writer_keep) */
    int nkept;
};

StWriter *st_writer_new(void) {
    return calloc(1, sizeof(StWriter));
}

static char *copy_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Makes room for one more element in a growing array. */
static int grow(void **arr, int *cap, int n, size_t elem) {
    if (n < *cap) return 0;
    int nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)nc * elem);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

int st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                  const void *data, Error *err) {
    if (!w || !name || !*name || strcmp(name, "__metadata__") == 0)
        return error_set(err, "safetensors writer: invalid tensor name '%s'", name ? name : "(null)");
    if ((unsigned)dtype >= ST_DTYPE_COUNT)
        return error_set(err, "safetensors writer: tensor '%s' has an unknown dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape))
        return error_set(err, "safetensors writer: tensor '%s' has %d dimensions (0..%d allowed)", name, ndim,
                         ST_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > ST_MAX_INT / shape[i]))
            return error_set(err, "safetensors writer: tensor '%s' has an invalid shape", name);
        numel *= shape[i];
    }
    int64_t nbytes = numel * st_dtype_size(dtype);
    if (nbytes > 0 && !data) return error_set(err, "safetensors writer: tensor '%s' has no data", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return error_set(err, "safetensors writer: tensor '%s' added twice", name);
    if (grow((void **)&w->t, &w->cap, w->n, sizeof *w->t))
        return error_set(err, "safetensors writer: out of memory adding tensor '%s'", name);
    WTensor *t = &w->t[w->n];
    *t = (WTensor){.name = copy_str(name), .dtype = dtype, .ndim = ndim, .data = data, .nbytes = nbytes};
    if (!t->name) return error_set(err, "safetensors writer: out of memory adding tensor '%s'", name);
    if (ndim > 0) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    w->n++;
    return 0;
}

int st_writer_meta(StWriter *w, const char *key, const char *value, Error *err) {
    if (!w || !key || !value) return error_set(err, "safetensors writer: metadata key and value are required");
    char *v = copy_str(value);
    if (!v) return error_set(err, "safetensors writer: out of memory adding metadata '%s'", key);
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return 0;
        }
    char *k = copy_str(key);
    if (!k || grow((void **)&w->meta, &w->meta_cap, w->nmeta, sizeof *w->meta)) {
        free(k);
        free(v);
        return error_set(err, "safetensors writer: out of memory adding metadata '%s'", key);
    }
    w->meta[w->nmeta++] = (WMeta){k, v};
    return 0;
}

/* A JSON integer printed exactly (cJSON prints numbers as doubles). */
static cJSON *json_int_item(int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

/* Builds the header JSON, padded with spaces to a multiple of 8; NULL when out of memory. */
static char *build_header(const StWriter *w, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && w->nmeta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < w->nmeta; i++) ok = cJSON_AddStringToObject(m, w->meta[i].key, w->meta[i].value);
    }
    int64_t offset = 0;
    for (int i = 0; ok && i < w->n; i++) {
        const WTensor *t = &w->t[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *dtype = e ? cJSON_AddStringToObject(e, "dtype", st_dtype_name(t->dtype)) : NULL;
        cJSON *shape = dtype ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        ok = offs != NULL;
        for (int d = 0; ok && d < t->ndim; d++) ok = cJSON_AddItemToArray(shape, json_int_item(t->shape[d]));
        ok = ok && cJSON_AddItemToArray(offs, json_int_item(offset));
        offset += t->nbytes;
        ok = ok && cJSON_AddItemToArray(offs, json_int_item(offset));
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return NULL;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *len = padded;
    return out;
}

int st_writer_write(StWriter *w, const char *path, Error *err) {
    if (!w) return error_set(err, "%s: no safetensors writer", path);
    size_t len = 0;
    char *header = build_header(w, &len);
    if (!header) return error_set(err, "%s: out of memory building the safetensors header", path);
    AtomicFile af;
    if (atomic_open(&af, path, err)) {
        free(header);
        return -1;
    }
    uint64_t n = len;
    bool ok = fwrite(&n, 8, 1, af.f) == 1 && fwrite(header, 1, len, af.f) == len;
    for (int i = 0; ok && i < w->n; i++)
        ok = w->t[i].nbytes == 0 || fwrite(w->t[i].data, 1, (size_t)w->t[i].nbytes, af.f) == (size_t)w->t[i].nbytes;
    free(header);
    return atomic_commit(&af, err); /* reports a failed fwrite above through the stream's error flag */
}

int st_writer_keep(StWriter *w, void *block, Error *err) {
    void **k = realloc(w->kept, (size_t)(w->nkept + 1) * sizeof *k);
    if (!k) {
        free(block);
        return error_set(err, "out of memory");
    }
    w->kept = k;
    w->kept[w->nkept++] = block;
    return 0;
}

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->nkept; i++) free(w->kept[i]);
    free(w->kept);
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->t);
    free(w->meta);
    free(w);
}
