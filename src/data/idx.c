/* idx.c — IDX reader (see idx.h). Layout: magic bytes 0x00 0x00 <type> <ndim>, ndim big-endian u32 dims,
 * then the elements row-major, big-endian. zlib's gz* functions read .gz and plain files alike. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data/idx.h"

#define IDX_CHUNK (16u << 20) /* read in pieces, so a lying header cannot make us allocate gigabytes up front */

typedef struct IdxType {
    uint8_t code;
    int size;
    const char *name;
} IdxType;

static const IdxType TYPES[] = {
    {0x08, 1, "uint8"}, {0x09, 1, "int8"}, {0x0B, 2, "int16"},
    {0x0C, 4, "int32"}, {0x0D, 4, "float32"}, {0x0E, 8, "float64"},
};

static uint64_t load_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

/* Reads up to n bytes; returns how many, or -1 on a zlib/IO error (message in err). */
static int64_t read_bytes(gzFile g, void *dst, int64_t n, const char *path, Error *err) {
    int64_t got = 0;
    while (got < n) {
        int64_t want = n - got < IDX_CHUNK ? n - got : IDX_CHUNK;
        int r = gzread(g, (uint8_t *)dst + got, (unsigned)want);
        if (r < 0) {
            int code;
            const char *msg = gzerror(g, &code);
            size_t plen = strlen(path); /* zlib puts "<path>: " in front of its message; drop it */
            if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0) msg += plen + 2;
            return error_set(err, "%s: corrupt or unreadable data (%s)", path,
                             code == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0) break;
        got += r;
    }
    return got;
}

/* Converts big-endian elements of a wider type to uint8, failing on a value outside 0..255. */
static int to_u8(const uint8_t *raw, const IdxType *t, int64_t numel, uint8_t *dst, const char *path, Error *err) {
    for (int64_t i = 0; i < numel; i++) {
        uint64_t bits = load_be(raw + i * t->size, t->size);
        double v;
        switch (t->code) {
        case 0x09: v = (int8_t)bits; break;
        case 0x0B: v = (int16_t)bits; break;
        case 0x0C: v = (int32_t)bits; break;
        case 0x0D: {
            uint32_t b32 = (uint32_t)bits;
            float fv;
            memcpy(&fv, &b32, 4);
            v = fv;
            break;
        }
        default: memcpy(&v, &bits, 8); break;
        }
        if (!(v >= 0 && v <= 255) || v != floor(v))
            return error_set(err, "%s: IDX %s element %lld is %g, which is not an integer in 0..255 (only 8-bit "
                                  "data is supported; convert the file to uint8)", path, t->name, (long long)i, v);
        dst[i] = (uint8_t)v;
    }
    return 0;
}

int idx_load(const char *path, IdxArray *out, Error *err) {
    memset(out, 0, sizeof *out);
    gzFile g = gzopen(path, "rb");
    if (!g) return error_set(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(g, 1u << 17);
    uint8_t head[4 + 4 * IDX_MAX_DIMS], *raw = NULL;
    int rc = -1;
    int64_t got = read_bytes(g, head, 4, path, err);
    if (got < 0) goto done;
    if (got < 4) {
        error_set(err, "%s: not an IDX file (only %lld bytes long)", path, (long long)got);
        goto done;
    }
    const IdxType *type = NULL;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].code == head[2]) type = &TYPES[i];
    if (head[0] != 0 || head[1] != 0 || !type || head[3] == 0) {
        error_set(err, "%s: not an IDX file (bad magic 0x%02x%02x%02x%02x)", path, head[0], head[1], head[2],
                  head[3]);
        goto done;
    }
    if (head[3] > IDX_MAX_DIMS) {
        error_set(err, "%s: IDX file with %d dimensions is not supported (at most %d)", path, head[3], IDX_MAX_DIMS);
        goto done;
    }
    out->ndim = head[3];
    if ((got = read_bytes(g, head + 4, 4 * out->ndim, path, err)) < 0) goto done;
    if (got < 4 * out->ndim) {
        error_set(err, "%s: truncated (expected %d bytes of dimensions, got %lld)", path, 4 * out->ndim,
                  (long long)got);
        goto done;
    }
    out->numel = 1;
    for (int i = 0; i < out->ndim; i++) {
        out->dims[i] = (int64_t)load_be(head + 4 + 4 * i, 4);
        if (out->dims[i] > 0 && out->numel > ((int64_t)1 << 40) / out->dims[i]) {
            error_set(err, "%s: IDX dimensions describe more than 2^40 elements; corrupt header?", path);
            goto done;
        }
        out->numel *= out->dims[i];
    }

    /* read the data, growing the buffer as it arrives */
    int64_t want = out->numel * type->size, have = 0, cap = 0;
    while (have < want) {
        int64_t ncap = cap ? cap * 2 : IDX_CHUNK;
        if (ncap > want) ncap = want;
        uint8_t *nb = realloc(raw, (size_t)ncap);
        if (!nb) {
            error_set(err, "%s: out of memory reading %lld bytes", path, (long long)ncap);
            goto done;
        }
        raw = nb;
        cap = ncap;
        if ((got = read_bytes(g, raw + have, cap - have, path, err)) < 0) goto done;
        have += got;
        if (have < cap) break;
    }
    if (have < want) {
        error_set(err, "%s: truncated (expected %lld bytes of data, got %lld)", path, (long long)want, (long long)have);
        goto done;
    }
    if (type->code == 0x08) {
        out->data = raw ? raw : malloc(1);
        raw = NULL;
    } else {
        out->data = malloc(out->numel ? (size_t)out->numel : 1);
        if (!out->data) {
            error_set(err, "%s: out of memory", path);
            goto done;
        }
        if (to_u8(raw, type, out->numel, out->data, path, err)) goto done;
    }
    if (!out->data) {
        error_set(err, "%s: out of memory", path);
        goto done;
    }
    rc = 0;
done:
    gzclose(g);
    free(raw);
    if (rc) idx_free(out);
    return rc;
}

void idx_free(IdxArray *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
