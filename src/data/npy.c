/* npy.c — NumPy .npy reader and writer (see npy.h). The header is a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * which a small cursor parser below reads (keys in any order, either quote style, trailing commas). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fsutil.h"
#include "data/npy.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_MAX_HEADER (1u << 20)
#define NPY_ALIGN 64

static const struct {
    const char *descr;
    int size;
} DTYPES[NPY_DTYPE_COUNT] = {
    [NPY_F32] = {"<f4", 4}, [NPY_F64] = {"<f8", 8}, [NPY_F16] = {"<f2", 2},  [NPY_I8] = {"|i1", 1},
    [NPY_I16] = {"<i2", 2}, [NPY_I32] = {"<i4", 4}, [NPY_I64] = {"<i8", 8},  [NPY_U8] = {"|u1", 1},
    [NPY_U16] = {"<u2", 2}, [NPY_U32] = {"<u4", 4}, [NPY_U64] = {"<u8", 8},  [NPY_BOOL] = {"|b1", 1},
};

const char *npy_dtype_descr(NpyDtype dtype) {
    return (unsigned)dtype < NPY_DTYPE_COUNT ? DTYPES[dtype].descr : "?";
}

int npy_dtype_size(NpyDtype dtype) {
    return (unsigned)dtype < NPY_DTYPE_COUNT ? DTYPES[dtype].size : 0;
}

/* ------------------------------------------------------------------------------------- header parsing */

typedef struct Cursor {
    const char *p, *end;
} Cursor;

static void skip_ws(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

/* Skips whitespace, then consumes ch if it is next. */
static bool eat(Cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* Reads a '...' or "..." string (no escapes: numpy never writes them in these fields). */
static bool read_quoted(Cursor *c, char *buf, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap) return false;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) return false;
    c->p++;
    buf[n] = '\0';
    return true;
}

/* Consumes the word w if it is next (True/False). */
static bool eat_word(Cursor *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    c->p += n;
    return true;
}

/* Reads a shape tuple: (), (3,), (2, 3), with optional Python 2 'L' suffixes. */
static bool read_shape(Cursor *c, NpyArray *a) {
    if (!eat(c, '(')) return false;
    a->ndim = 0;
    while (!eat(c, ')')) {
        skip_ws(c);
        if (a->ndim == NPY_MAX_DIMS || c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return false;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++;
        a->shape[a->ndim++] = v;
        if (!eat(c, ',')) {
            if (!eat(c, ')')) return false;
            break;
        }
    }
    return true;
}

/* Parses the header dict into a (dtype, shape) and checks the layout is one we can use. */
static int parse_header(const char *h, size_t len, NpyArray *a, const char *path, Error *err) {
    Cursor c = {h, h + len};
    char key[64], descr[64] = "";
    bool have_descr = false, have_shape = false, have_order = false, fortran = false;
    if (!eat(&c, '{')) return error_set(err, "%s: not a valid .npy file (header is not a dict)", path);
    while (!eat(&c, '}')) {
        if (!read_quoted(&c, key, sizeof key) || !eat(&c, ':'))
            return error_set(err, "%s: not a valid .npy file (cannot parse the header dict)", path);
        if (strcmp(key, "descr") == 0) {
            if (!read_quoted(&c, descr, sizeof descr))
                return error_set(err, "%s: structured or unusual dtypes are not supported; save a plain numeric "
                                      "array", path);
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (eat_word(&c, "True")) fortran = true;
            else if (!eat_word(&c, "False"))
                return error_set(err, "%s: not a valid .npy file (fortran_order is not True or False)", path);
            have_order = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!read_shape(&c, a))
                return error_set(err, "%s: not a valid .npy file (bad shape, or more than %d dimensions)", path,
                                 NPY_MAX_DIMS);
            have_shape = true;
        } else {
            return error_set(err, "%s: not a valid .npy file (unexpected header key '%s')", path, key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) return error_set(err, "%s: not a valid .npy file (cannot parse the header dict)", path);
            break;
        }
    }
    if (!have_descr || !have_shape || !have_order)
        return error_set(err, "%s: not a valid .npy file (header lacks descr, fortran_order or shape)", path);

    int dtype = -1;
    for (int i = 0; i < NPY_DTYPE_COUNT && dtype < 0; i++) {
        const char *d = DTYPES[i].descr; /* match the type code after the byte-order mark */
        if (strcmp(descr + (descr[0] ? 1 : 0), d + 1) == 0 && strchr("<>|=", descr[0])) dtype = i;
    }
    if (dtype < 0)
        return error_set(err, "%s: dtype '%s' is not supported (use float32/64, (u)int8/16/32/64 or bool)", path,
                         descr);
    if (descr[0] == '>' && DTYPES[dtype].size > 1)
        return error_set(err, "%s: big-endian arrays ('%s') are not supported; save with arr.astype('<%s')", path,
                         descr, descr + 1);
    a->dtype = (NpyDtype)dtype;
    int long_dims = 0;
    a->numel = 1;
    for (int i = 0; i < a->ndim; i++) {
        long_dims += a->shape[i] > 1;
        if (a->shape[i] > 0 && a->numel > (INT64_MAX / 8) / a->shape[i])
            return error_set(err, "%s: not a valid .npy file (impossibly large shape)", path);
        a->numel *= a->shape[i];
    }
    if (fortran && long_dims > 1) /* with at most one dimension > 1 both orders are the same bytes */
        return error_set(err, "%s: fortran_order arrays are not supported; save with np.ascontiguousarray", path);
    return 0;
}

/* ---------------------------------------------------------------------------------------------- load */

int npy_load(const char *path, NpyArray *out, Error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t pre[12];
    char *header = NULL;
    int rc = -1;
    size_t got = fread(pre, 1, 10, f);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        error_set(err, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8, prefix = 10;
    if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            error_set(err, "%s: truncated .npy header", path);
            goto done;
        }
        hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        prefix = 12;
    } else if (major != 1) {
        error_set(err, "%s: .npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", path, major, minor);
        goto done;
    }
    if (hlen > NPY_MAX_HEADER) {
        error_set(err, "%s: not a valid .npy file (header length %zu is too large)", path, hlen);
        goto done;
    }
    header = malloc(hlen + 1);
    if (!header) {
        error_set(err, "%s: out of memory", path);
        goto done;
    }
    if (fread(header, 1, hlen, f) != hlen) {
        error_set(err, "%s: truncated .npy header (expected %zu bytes after byte %zu)", path, hlen, prefix);
        goto done;
    }
    if (parse_header(header, hlen, out, path, err)) goto done;
    size_t nbytes = (size_t)out->numel * (size_t)npy_dtype_size(out->dtype);
    out->data = malloc(nbytes ? nbytes : 1);
    if (!out->data) {
        error_set(err, "%s: out of memory for %zu bytes of data", path, nbytes);
        goto done;
    }
    got = fread(out->data, 1, nbytes, f);
    if (got != nbytes) {
        if (ferror(f)) error_set(err, "%s: read failed: %s", path, strerror(errno));
        else error_set(err, "%s: truncated (expected %zu bytes of data, got %zu)", path, nbytes, got);
        goto done;
    }
    rc = 0;
done:
    fclose(f);
    free(header);
    if (rc) npy_free(out);
    return rc;
}

void npy_free(NpyArray *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------------------------------------- save */

int npy_save(const char *path, NpyDtype dtype, int ndim, const int64_t *shape, const void *data, Error *err) {
    if ((unsigned)dtype >= NPY_DTYPE_COUNT) return error_set(err, "%s: unknown npy dtype %d", path, (int)dtype);
    if (ndim < 0 || ndim > NPY_MAX_DIMS || (ndim > 0 && !shape))
        return error_set(err, "%s: cannot save an array with %d dimensions (0..%d)", path, ndim, NPY_MAX_DIMS);
    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     npy_dtype_descr(dtype));
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > (INT64_MAX / 8) / shape[i]))
            return error_set(err, "%s: cannot save an array with a negative or huge shape", path);
        numel *= shape[i];
        n += snprintf(header + n, sizeof header - (size_t)n, i ? ", %lld" : "%lld", (long long)shape[i]);
    }
    n += snprintf(header + n, sizeof header - (size_t)n, ndim == 1 ? ",), }" : "), }");
    size_t nbytes = (size_t)numel * (size_t)npy_dtype_size(dtype);
    if (nbytes && !data) return error_set(err, "%s: no data to save", path);
    /* pad with spaces and end with '\n' so that magic (6) + version (2) + length (2) + header is 64-aligned */
    int total = (10 + n + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    int hlen = total - 10;
    memset(header + n, ' ', (size_t)(hlen - 1 - n));
    header[hlen - 1] = '\n';
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};

    AtomicFile af;
    if (atomic_open(&af, path, err)) return -1;
    if (fwrite(pre, 1, 10, af.f) == 10 && fwrite(header, 1, (size_t)hlen, af.f) == (size_t)hlen && nbytes)
        fwrite(data, 1, nbytes, af.f);
    return atomic_commit(&af, err); /* a failed fwrite shows up in the stream's error flag */
}
