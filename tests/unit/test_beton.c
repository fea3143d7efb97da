/* test_beton.c — FFCV .beton reading and writing: every real FFCV-written fixture in ../shared/fixtures/ffcv
 * against its .expected.json (header, descriptors, record layout, every sample's values, payload sha256s,
 * JPEG decodes with TurboJPEG ISLOW), the writer (ImageNet-like and mixed-field files read back value by value,
 * the byte layout FFCV expects, byte-identical output for 1 and 3 threads, skipping, pages moved when skips
 * shrink the metadata, too-large samples, a missing folder, a failing sample function) and corrupt files
 * (truncated, version 3, type 255, unknown type, alloc table out of range, a dangling image pointer). */
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <turbojpeg.h>

#include "core/fsutil.h"
#include "data/beton.h"
#include "data/beton_writer.h"
#include "testutil.h"

#define MIB (1u << 20)

static char tmp[512];

/* ------------------------------------------------------------------------------------------- helpers */

static const char *join(const char *name) {
    static char bufs[4][600];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", tmp, name);
    return b;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void sha256_hex(const uint8_t *data, size_t n, char out[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    assert_int_equal(EVP_Digest(data, n, md, &len, EVP_sha256(), NULL), 1);
    for (int k = 0; k < 32; k++) snprintf(out + 2 * k, 3, "%02x", md[k]);
}

static void hex_of(const uint8_t *data, size_t n, char *out) {
    for (size_t k = 0; k < n; k++) snprintf(out + 2 * k, 3, "%02x", data[k]);
    out[2 * n] = '\0';
}

static void assert_sha(const uint8_t *data, size_t n, const char *want, const char *what) {
    char got[65];
    sha256_hex(data, n, got);
    if (strcmp(got, want) != 0) fprintf(stderr, "%s: sha256 %s, expected %s\n", what, got, want);
    assert_string_equal(got, want);
}

static void assert_hex(const uint8_t *data, size_t n, const char *want) {
    char *got = malloc(2 * n + 1);
    hex_of(data, n, got);
    assert_string_equal(got, want);
    free(got);
}

static cJSON *load_json(const char *path) {
    uint8_t *text;
    size_t n;
    Error err;
    if (fs_read_all(path, &text, &n, &err)) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse((const char *)text);
    free(text);
    assert_non_null(j);
    return j;
}

static const cJSON *get(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) fail_msg("expected JSON has no key '%s'", key);
    return v;
}
static double num(const cJSON *o, const char *key) {
    const cJSON *v = get(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}
static int64_t inum(const cJSON *o, const char *key) { return (int64_t)num(o, key); }
static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = get(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* Opens path and asserts success. */
static Beton *open_ok(const char *path) {
    Beton *b = NULL;
    Error err = {{0}};
    if (beton_open(path, &b, &err)) fail_msg("%s", err.msg);
    return b;
}

/* Asserts that opening path fails with a one-line message containing the path and every given fragment. */
static void open_fails(const char *path, const char *frag1, const char *frag2) {
    Beton *b = NULL;
    Error err = {{0}};
    assert_int_equal(beton_open(path, &b, &err), -1);
    assert_null(b);
    if (!strstr(err.msg, path) || !strstr(err.msg, frag1) || (frag2 && !strstr(err.msg, frag2)))
        fail_msg("unexpected message: %s", err.msg);
    assert_null(strchr(err.msg, '\n'));
}

static void write_file(const char *path, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *path, size_t *n) {
    uint8_t *d;
    Error err;
    if (fs_read_all(path, &d, n, &err)) fail_msg("%s", err.msg);
    return d;
}

/* Decodes a JPEG with TurboJPEG's defaults (ISLOW IDCT, fancy upsampling) to RGB; returns malloc'ed pixels. */
static uint8_t *decode_jpeg(const uint8_t *jpg, size_t n, int *w, int *h) {
    tjhandle tj = tjInitDecompress();
    assert_non_null(tj);
    int sub, cs;
    assert_int_equal(tjDecompressHeader3(tj, jpg, (unsigned long)n, w, h, &sub, &cs), 0);
    uint8_t *px = malloc((size_t)*w * (size_t)*h * 3);
    assert_int_equal(tjDecompress2(tj, jpg, (unsigned long)n, px, *w, 0, *h, TJPF_RGB, 0), 0);
    tjDestroy(tj);
    return px;
}

/* ------------------------------------------------------------------------------- FFCV-written fixtures */

typedef struct FixtureStats {
    int jpeg, jpeg_exact, raw;
} FixtureStats;

static void check_image(const Beton *b, int f, int64_t i, const cJSON *e, uint64_t first_page, FixtureStats *st) {
    BetonImage im;
    Error err;
    if (beton_get_image(b, f, i, &im, &err)) fail_msg("%s", err.msg);
    assert_int_equal(im.mode, inum(e, "mode"));
    assert_int_equal(im.width, inum(e, "width"));
    assert_int_equal(im.height, inum(e, "height"));
    assert_int_equal(im.ptr, (uint64_t)inum(e, "data_ptr"));
    assert_int_equal(im.size, (uint64_t)inum(e, "stored_size"));
    uint32_t ps = beton_page_size(b);
    assert_int_equal((im.ptr - first_page) / ps, inum(e, "page"));
    assert_int_equal((im.ptr - first_page) % ps, inum(e, "offset_in_page"));
    const uint8_t *data = beton_data(b, im.ptr);
    assert_sha(data, im.size, str(e, "stored_sha256"), "image payload");
    if (im.mode == 1) {
        st->raw++;
        assert_sha(data, im.size, str(e, "decoded_sha256"), "raw image");
        return;
    }
    st->jpeg++;
    int w, h;
    uint8_t *px = decode_jpeg(data, im.size, &w, &h);
    assert_int_equal(w, im.width);
    assert_int_equal(h, im.height);
    char got[65];
    size_t npx = (size_t)w * (size_t)h;
    sha256_hex(px, npx * 3, got);
    if (strcmp(got, str(e, "decoded_sha256")) == 0) {
        st->jpeg_exact++;
    } else {
        const cJSON *mean = get(e, "decoded_channel_mean");
        for (int c = 0; c < 3; c++) {
            double s = 0;
            for (size_t k = 0; k < npx; k++) s += px[k * 3 + c];
            assert_true(fabs(s / (double)npx - cJSON_GetArrayItem(mean, c)->valuedouble) <= 0.5);
        }
    }
    free(px);
}

static void check_float(double got, const cJSON *e) {
    uint8_t bits[8];
    memcpy(bits, &got, 8);
    assert_hex(bits, 8, str(e, "bits_le_hex"));
    const cJSON *v = get(e, "value");
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "nan") == 0) assert_true(isnan(got));
        else if (strcmp(v->valuestring, "inf") == 0) assert_true(isinf(got) && got > 0);
        else if (strcmp(v->valuestring, "-inf") == 0) assert_true(isinf(got) && got < 0);
        else fail_msg("unexpected float string %s", v->valuestring);
    } else {
        assert_true(got == v->valuedouble);
        assert_int_equal(signbit(got) != 0, signbit(v->valuedouble) != 0);
    }
}

/* Compares float32 array data with a nested JSON list of values, element by element (sign of zero too). */
static void check_f32_values(const float *x, const cJSON *values, size_t *k) {
    const cJSON *it;
    cJSON_ArrayForEach(it, values) {
        if (cJSON_IsArray(it)) {
            check_f32_values(x, it, k);
            continue;
        }
        double want = it->valuedouble;
        float got = x[(*k)++];
        assert_true((double)got == want);
        assert_int_equal(signbit(got) != 0, signbit(want) != 0);
    }
}

static void check_fixture(const char *name, FixtureStats *st) {
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/ffcv/%s.beton", name);
    char path[4096];
    snprintf(path, sizeof path, "%s", tu_shared(rel));
    snprintf(rel, sizeof rel, "fixtures/ffcv/%s.expected.json", name);
    cJSON *x = load_json(tu_shared(rel));
    Beton *b = open_ok(path);

    /* header */
    const cJSON *hd = get(x, "header");
    assert_int_equal(beton_file_size(b), (uint64_t)inum(x, "file_size"));
    assert_int_equal(inum(hd, "version"), BETON_VERSION);
    assert_int_equal(beton_num_fields(b), inum(hd, "num_fields"));
    assert_int_equal(beton_page_size(b), (uint32_t)inum(hd, "page_size"));
    assert_int_equal(beton_num_samples(b), inum(hd, "num_samples"));
    assert_int_equal(beton_alloc_table_ptr(b), (uint64_t)inum(hd, "alloc_table_ptr"));
    assert_hex(beton_data(b, 0), BETON_HEADER_SIZE, str(hd, "hex"));

    /* descriptors and record layout */
    const cJSON *fields = get(x, "fields"), *meta = get(x, "metadata");
    assert_int_equal(cJSON_GetArraySize(fields), beton_num_fields(b));
    assert_int_equal(beton_metadata_offset(b), (uint64_t)inum(meta, "offset"));
    assert_int_equal(beton_record_size(b), (size_t)inum(meta, "record_size"));
    for (int f = 0; f < beton_num_fields(b); f++) {
        const BetonField *fd = beton_field(b, f);
        const cJSON *e = cJSON_GetArrayItem(fields, f), *m = cJSON_GetArrayItem(get(meta, "fields"), f);
        assert_int_equal(fd->type, inum(e, "type_id"));
        assert_string_equal(fd->name, str(e, "name"));
        assert_int_equal(strlen(fd->name) < 16, cJSON_IsTrue(get(e, "name_has_nul")));
        assert_int_equal(beton_find_field(b, fd->name), f);
        assert_string_equal(str(m, "name"), fd->name);
        assert_int_equal(fd->offset, (size_t)inum(m, "offset"));
        assert_int_equal(fd->size, (size_t)inum(m, "size"));
        if (fd->type == BETON_NDARRAY) {
            const cJSON *args = get(e, "ndarray_args"), *shape = get(args, "decoded_shape");
            assert_string_equal(fd->dtype, str(args, "decoded_dtype"));
            assert_int_equal(fd->ndim, cJSON_GetArraySize(shape));
            int64_t nb = fd->itemsize;
            for (int d = 0; d < fd->ndim; d++) {
                assert_int_equal(fd->shape[d], cJSON_GetArrayItem(shape, d)->valueint);
                nb *= fd->shape[d];
            }
            assert_int_equal(fd->nbytes, nb);
        }
    }
    assert_int_equal(beton_find_field(b, "no_such_field"), -1);

    /* allocation table */
    const cJSON *at = get(x, "alloc_table"), *ent;
    assert_int_equal(beton_alloc_count(b), inum(at, "num_entries"));
    assert_int_equal(beton_alloc_table_ptr(b), (uint64_t)inum(at, "offset"));
    cJSON_ArrayForEach(ent, get(at, "entries_sample_id_ptr_size")) {
        uint64_t ptr = (uint64_t)cJSON_GetArrayItem(ent, 1)->valuedouble;
        assert_int_equal(beton_alloc_size(b, ptr), (int64_t)cJSON_GetArrayItem(ent, 2)->valuedouble);
    }
    const cJSON *fp = get(get(x, "data_region"), "first_page_offset");
    uint64_t first_page = cJSON_IsNumber(fp) ? (uint64_t)fp->valuedouble : 0;

    /* samples */
    const cJSON *s;
    int64_t i = 0;
    cJSON_ArrayForEach(s, get(x, "samples")) {
        assert_int_equal(inum(s, "index"), i);
        assert_hex(beton_record(b, i), beton_record_size(b), str(s, "metadata_hex"));
        int64_t page = -1;
        for (int f = 0; f < beton_num_fields(b); f++) {
            const BetonField *fd = beton_field(b, f);
            const cJSON *e = get(s, fd->name);
            Error err;
            uint64_t ptr, size;
            switch (fd->type) {
            case BETON_INT:
                assert_true(cJSON_IsNumber(e));
                assert_true(beton_get_int(b, f, i) == (int64_t)e->valuedouble);
                break;
            case BETON_FLOAT: check_float(beton_get_float(b, f, i), e); break;
            case BETON_RGB:
                check_image(b, f, i, e, first_page, st);
                if (page < 0) page = inum(e, "page");
                break;
            case BETON_BYTES:
            case BETON_JSON:
                if (beton_get_bytes(b, f, i, &ptr, &size, &err)) fail_msg("%s", err.msg);
                assert_int_equal(ptr, (uint64_t)inum(e, "ptr"));
                assert_int_equal(size, (uint64_t)inum(e, "size"));
                assert_sha(beton_data(b, ptr), size, str(e, "stored_sha256"), "blob");
                if (cJSON_IsNumber(get(e, "page"))) {
                    assert_int_equal((ptr - first_page) / beton_page_size(b), inum(e, "page"));
                    if (page < 0 && size > 0) page = inum(e, "page");
                } else {
                    assert_int_equal(size, 0);
                }
                if (fd->type == BETON_BYTES && cJSON_GetObjectItem(e, "hex"))
                    assert_hex(beton_data(b, ptr), size, str(e, "hex"));
                if (fd->type == BETON_JSON) {
                    const char *text = str(e, "stored_text_without_nul");
                    assert_int_equal(size, strlen(text) + 1);
                    assert_memory_equal(beton_data(b, ptr), text, size - 1);
                    assert_int_equal(beton_data(b, ptr)[size - 1], 0);
                    assert_true(cJSON_IsTrue(get(e, "ends_with_nul")));
                }
                break;
            case BETON_NDARRAY:
            case BETON_TORCH: {
                if (beton_get_ndarray(b, f, i, &ptr, &err)) fail_msg("%s", err.msg);
                assert_int_equal(ptr, (uint64_t)inum(e, "ptr"));
                assert_int_equal(fd->nbytes, inum(e, "size"));
                assert_int_equal((ptr - first_page) / beton_page_size(b), inum(e, "page"));
                assert_hex(beton_data(b, ptr), (size_t)fd->nbytes, str(e, "hex"));
                assert_string_equal(fd->dtype, str(e, "dtype"));
                if (strcmp(fd->dtype, "<f4") == 0) {
                    float *v = malloc((size_t)fd->nbytes);
                    memcpy(v, beton_data(b, ptr), (size_t)fd->nbytes);
                    size_t k = 0;
                    check_f32_values(v, get(e, "values"), &k);
                    assert_int_equal(k * 4, (size_t)fd->nbytes);
                    free(v);
                }
                if (page < 0) page = inum(e, "page");
                break;
            }
            }
        }
        int64_t want_page = page < 0 ? -1 : (int64_t)(first_page / beton_page_size(b)) + page;
        assert_int_equal(beton_sample_page(b, i), want_page);
        i++;
    }
    assert_int_equal(i, beton_num_samples(b));
    assert_null(beton_record(b, i));
    beton_close(b);
    cJSON_Delete(x);
}

static void test_fixtures(void **state) {
    static const char *names[] = {"rgb_label_raw", "rgb_label_jpg", "rgb_label_proportion", "mixed_fields",
                                  "scalars_empty_bytes"};
    FixtureStats st = {0};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) check_fixture(names[k], &st);
    fprintf(stderr, "fixtures: %d raw images, %d JPEG images of which %d decode to exactly the expected pixels\n",
            st.raw, st.jpeg, st.jpeg_exact);
    assert_int_equal(st.raw + st.jpeg, 24 + 24 + 65 + 10);
    assert_int_equal(st.jpeg, 24 + 38 + 6);
}

/* The fixture's orphaned bytes and unsorted table (README "Surprises") read through the public API. */
static void test_fixture_surprises(void **state) {
    Beton *b = open_ok(tu_shared("fixtures/ffcv/rgb_label_proportion.beton"));
    int img = beton_find_field(b, "image");
    /* samples 44-64 sit on page 1 (absolute page 2), the rest on pages 0 and 2 */
    assert_int_equal(beton_sample_page(b, 0), 1);
    assert_int_equal(beton_sample_page(b, 44), 2);
    assert_int_equal(beton_sample_page(b, 43), 3);
    BetonImage im;
    Error err;
    assert_int_equal(beton_get_image(b, img, 44, &im, &err), 0);
    assert_int_equal(im.ptr, 2u * 2097152u);
    assert_int_equal(beton_get_image(b, -1, 0, &im, &err), -1);
    assert_non_null(strstr(err.msg, "field -1"));
    assert_int_equal(beton_get_image(b, img, 65, &im, &err), -1);
    assert_non_null(strstr(err.msg, "sample 65"));
    uint64_t p, n;
    assert_int_equal(beton_get_bytes(b, img, 0, &p, &n, &err), -1);
    assert_non_null(strstr(err.msg, "not Bytes"));
    assert_int_equal(beton_get_int(b, img, 0), 0);
    assert_true(isnan(beton_get_float(b, beton_find_field(b, "label"), 0)));
    assert_true(beton_fd(b) >= 0);
    beton_close(b);

    b = open_ok(tu_shared("fixtures/ffcv/mixed_fields.beton"));
    assert_int_equal(beton_find_field(b, "sixteen_chars_ab"), 2);
    assert_int_equal(beton_sample_page(b, 7), 2); /* rewritten on the second page */
    beton_close(b);

    b = open_ok(tu_shared("fixtures/ffcv/scalars_empty_bytes.beton"));
    assert_int_equal(beton_alloc_size(b, 0), 0);
    assert_int_equal(beton_get_bytes(b, 2, 4, &p, &n, &err), 0);
    assert_int_equal(p, 0);
    assert_int_equal(n, 0);
    assert_int_equal(beton_sample_page(b, 0), -1);
    beton_close(b);
}

/* ---------------------------------------------------------------------------------------- the writer */

/* Checks the byte layout FFCV's writer produces and readers rely on, by parsing the file independently:
 * header, first page at roundup(metadata end, page_size) with a zero gap, whole aligned pages, each sample's
 * allocations on one page and packed back to back (an empty one holds one reserved byte), zero page tails,
 * and a table with one entry per allocation running to EOF. Returns the number of pages. */
static int64_t check_layout(const char *path, const BetonType *types, int nf, int64_t n, uint32_t ps) {
    size_t size;
    uint8_t *d = read_file(path, &size);
    uint16_t version, nfields;
    uint32_t page_size;
    memcpy(&version, d, 2);
    memcpy(&nfields, d + 2, 2);
    memcpy(&page_size, d + 4, 4);
    assert_int_equal(version, 2);
    assert_int_equal(nfields, nf);
    assert_int_equal(page_size, ps);
    assert_int_equal(rd64(d + 8), (uint64_t)n);
    uint64_t a = rd64(d + 16);
    size_t offsets[64];
    size_t rec = beton_record_layout(types, nf, offsets);
    int nvar = 0;
    for (int f = 0; f < nf; f++) {
        assert_int_equal(d[24 + 1041 * f], types[f]);
        nvar += types[f] == BETON_RGB || types[f] == BETON_BYTES || types[f] == BETON_JSON ||
                types[f] == BETON_NDARRAY || types[f] == BETON_TORCH;
    }
    uint64_t m = 24 + 1041 * (uint64_t)nf, dend = m + rec * (uint64_t)n;
    assert_true(a <= size);
    assert_int_equal((size - a) % 24, 0);
    int64_t entries = (int64_t)((size - a) / 24);
    assert_int_equal(entries, (int64_t)nvar * n);
    if (entries == 0) {
        assert_int_equal(a, dend);
        free(d);
        return 0;
    }
    uint64_t p0 = (dend + ps - 1) / ps * ps;
    assert_true(a >= p0 && (a - p0) % ps == 0);
    int64_t pages = (int64_t)((a - p0) / ps);
    for (uint64_t k = dend; k < p0; k++) assert_int_equal(d[k], 0);
    uint64_t cursor = p0; /* where the next allocation must start */
    int64_t last_sid = -1, sid_page = -1, cur_page = -1;
    for (int64_t e = 0; e < entries; e++) {
        const uint8_t *t = d + a + 24 * (uint64_t)e;
        int64_t sid = (int64_t)rd64(t);
        uint64_t ptr = rd64(t + 8), sz = rd64(t + 16);
        assert_true(ptr >= p0 && ptr < a);
        int64_t page = (int64_t)((ptr - p0) / ps);
        assert_true(ptr + sz <= p0 + (uint64_t)(page + 1) * ps); /* inside its page */
        assert_true(sid == last_sid || sid == last_sid + 1);   /* sample order, renumbered from 0 */
        if (sid != last_sid) sid_page = page;
        assert_int_equal(page, sid_page);                        /* one page per sample */
        if (page != cur_page) {                                  /* a new page starts with its first sample */
            assert_int_equal(page, cur_page + 1);
            uint64_t tail_from = cursor;
            uint64_t page_end = p0 + (uint64_t)page * ps;
            for (uint64_t k = tail_from; cur_page >= 0 && k < page_end; k++) assert_int_equal(d[k], 0);
            cursor = page_end;
            cur_page = page;
        }
        assert_int_equal(ptr, cursor); /* back to back */
        cursor = ptr + (sz ? sz : 1);
        last_sid = sid;
    }
    assert_int_equal(last_sid, n - 1);
    assert_int_equal(cur_page, pages - 1);
    for (uint64_t k = cursor; k < a; k++) assert_int_equal(d[k], 0);
    free(d);
    return pages;
}

/* ImageNet-like samples: a synthetic image (raw, or JPEG for i % 3 == 1) and a label. */
static int imagenet_dims(int64_t i, int *w, int *h) {
    *w = 20 + (int)((i * 37) % 280);
    *h = 16 + (int)((i * 53) % 250);
    return 0;
}

static uint8_t *imagenet_pixels(int64_t i, int w, int h) {
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                px[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)c] =
                    (uint8_t)(x * 3 + y * 5 + c * 70 + i * 11 + ((x * y) % 7));
    return px;
}

static uint8_t *imagenet_jpeg(const uint8_t *px, int w, int h, uint64_t *size) {
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    if (!tj || tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpg, &n, TJSAMP_420, 90, 0) != 0) return NULL;
    tjDestroy(tj);
    uint8_t *out = malloc(n);
    memcpy(out, jpg, n);
    tjFree(jpg);
    *size = n;
    return out;
}

typedef struct SkipLog {
    int64_t skip_mod;  /* skip i when i % skip_mod == skip_rem (0 = never) */
    int64_t skip_rem;
    int64_t skipped[256];
    int n_skipped;
    int64_t last_done;
} SkipLog;

static bool skip_this(const SkipLog *s, int64_t i) { return s && s->skip_mod && i % s->skip_mod == s->skip_rem; }

static int imagenet_fn(void *ctx, int64_t i, BetonValue *v, Error *err) {
    if (skip_this(ctx, i)) {
        error_set(err, "sample %lld is unreadable on purpose", (long long)i);
        return 1;
    }
    int w, h;
    imagenet_dims(i, &w, &h);
    uint8_t *px = imagenet_pixels(i, w, h);
    v[0].width = w;
    v[0].height = h;
    if (i % 3 == 1) {
        v[0].image_mode = 0;
        v[0].data = imagenet_jpeg(px, w, h, &v[0].size);
        free(px);
        if (!v[0].data) return error_set(err, "JPEG encoding failed");
    } else {
        v[0].image_mode = 1;
        v[0].data = px;
        v[0].size = (uint64_t)w * (uint64_t)h * 3;
    }
    v[1].i = i * 7 - 30;
    return 0;
}

static void on_skip(void *ctx, int64_t i, const char *why) {
    SkipLog *s = ctx;
    assert_non_null(strstr(why, "on purpose"));
    if (s->n_skipped > 0) assert_true(i > s->skipped[s->n_skipped - 1]);
    s->skipped[s->n_skipped++] = i;
}

static void on_progress(void *ctx, int64_t done, int64_t total) {
    SkipLog *s = ctx;
    assert_true(done > s->last_done && done <= total);
    s->last_done = done;
}

static const BetonFieldSpec IMAGENET_FIELDS[] = {{.type = BETON_RGB, .name = "image"},
                                                 {.type = BETON_INT, .name = "label"}};
static const BetonType IMAGENET_TYPES[] = {BETON_RGB, BETON_INT};

static int64_t write_imagenet(const char *path, int64_t n, int threads, SkipLog *log) {
    BetonWriteOptions o = {.page_size = 2 * MIB, .threads = threads, .on_skip = on_skip, .progress = on_progress,
                           .ctx = log};
    int64_t written = -1;
    Error err;
    if (beton_write(path, IMAGENET_FIELDS, 2, n, imagenet_fn, log, &o, &written, &err)) fail_msg("%s", err.msg);
    assert_int_equal(log->last_done, n);
    return written;
}

/* Reads an ImageNet-like file back and compares every sample with a fresh rendering of its source. */
static void check_imagenet(const char *path, int64_t n, const SkipLog *log) {
    Beton *b = open_ok(path);
    assert_int_equal(beton_num_fields(b), 2);
    assert_string_equal(beton_field(b, 0)->name, "image");
    assert_int_equal(beton_record_size(b), 24);
    assert_int_equal(beton_field(b, 1)->offset, 16);
    int64_t out = 0;
    tjhandle tj = tjInitDecompress();
    for (int64_t i = 0; i < n; i++) {
        if (skip_this(log, i)) continue;
        int w, h;
        imagenet_dims(i, &w, &h);
        uint8_t *px = imagenet_pixels(i, w, h);
        BetonImage im;
        Error err;
        if (beton_get_image(b, 0, out, &im, &err)) fail_msg("%s", err.msg);
        assert_int_equal(im.width, w);
        assert_int_equal(im.height, h);
        assert_int_equal(im.mode, i % 3 == 1 ? 0 : 1);
        if (im.mode == 1) {
            assert_int_equal(im.size, (uint64_t)w * h * 3);
            assert_memory_equal(beton_data(b, im.ptr), px, im.size);
        } else {
            uint64_t jn;
            uint8_t *jpg = imagenet_jpeg(px, w, h, &jn);
            assert_int_equal(im.size, jn);
            assert_memory_equal(beton_data(b, im.ptr), jpg, jn);
            free(jpg);
        }
        assert_int_equal(beton_get_int(b, 1, out), i * 7 - 30);
        assert_int_equal(beton_sample_page(b, out), (int64_t)(im.ptr / beton_page_size(b)));
        free(px);
        out++;
    }
    tjDestroy(tj);
    assert_int_equal(beton_num_samples(b), out);
    assert_int_equal(beton_alloc_count(b), out);
    beton_close(b);
}

static bool same_file(const char *p, const char *q) {
    size_t n1, n2;
    uint8_t *a = read_file(p, &n1), *b = read_file(q, &n2);
    bool same = n1 == n2 && memcmp(a, b, n1) == 0;
    free(a);
    free(b);
    return same;
}

static void test_write_imagenet(void **state) {
    const int64_t n = 70;
    SkipLog l3 = {0}, l1 = {0};
    assert_int_equal(write_imagenet(join("in3.beton"), n, 3, &l3), n);
    assert_int_equal(write_imagenet(join("in1.beton"), n, 1, &l1), n);
    check_imagenet(join("in3.beton"), n, NULL);
    int64_t pages = check_layout(join("in3.beton"), IMAGENET_TYPES, 2, n, 2 * MIB);
    assert_true(pages >= 2);
    assert_true(same_file(join("in3.beton"), join("in1.beton")));
    /* the default 8 MiB pages, all cores */
    Error err;
    int64_t written;
    if (beton_write(join("in8.beton"), IMAGENET_FIELDS, 2, 10, imagenet_fn, NULL, NULL, &written, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(written, 10);
    assert_int_equal(check_layout(join("in8.beton"), IMAGENET_TYPES, 2, 10, 8 * MIB), 1);
    check_imagenet(join("in8.beton"), 10, NULL);
}

static void test_write_skips(void **state) {
    const int64_t n = 70;
    SkipLog a = {.skip_mod = 7, .skip_rem = 3}, b = {.skip_mod = 7, .skip_rem = 3};
    assert_int_equal(write_imagenet(join("sk3.beton"), n, 3, &a), n - 10);
    assert_int_equal(a.n_skipped, 10);
    for (int k = 0; k < 10; k++) assert_int_equal(a.skipped[k], 7 * k + 3);
    assert_int_equal(write_imagenet(join("sk1.beton"), n, 1, &b), n - 10);
    assert_true(same_file(join("sk3.beton"), join("sk1.beton")));
    check_imagenet(join("sk3.beton"), n, &a);
    check_layout(join("sk3.beton"), IMAGENET_TYPES, 2, n - 10, 2 * MIB);
}

/* Mixed fields: Float, Int, Bytes (some empty, some with NULs), JSON, NDArray <f4 [3,4], with a 16-char name. */
static double mixed_float(int64_t i) {
    static const double special[] = {0.0, -0.0, INFINITY, NAN, 1e-300, 3.141592653589793, 9007199254740992.0};
    return i < 7 ? special[i] : (double)i * 0.5;
}
static int64_t mixed_int(int64_t i) {
    return i == 0 ? INT64_MIN : i == 1 ? (int64_t)1 << 62 : i == 2 ? INT64_MAX : i - 20;
}
static uint64_t mixed_blob_size(int64_t i) {
    return i % 4 == 0 ? 0 : i == 5 ? 300000 : (uint64_t)((i * 131) % 5000) + 1;
}
static uint8_t mixed_blob_byte(int64_t i, uint64_t k) { return (uint8_t)((k * 7 + (uint64_t)i) % 251); }
static int mixed_json(int64_t i, char *buf, size_t cap) {
    return snprintf(buf, cap, "{\"i\": %lld, \"name\": \"s%lld\", \"list\": [1, 2.5, null]}", (long long)i,
                    (long long)i);
}
static float mixed_arr(int64_t i, int k) { return (i == 3 && k == 0) ? -0.0f : (float)i + (float)k * 0.25f - 2.0f; }

static int mixed_fn(void *ctx, int64_t i, BetonValue *v, Error *err) {
    v[0].f = mixed_float(i);
    v[1].i = mixed_int(i);
    v[2].size = mixed_blob_size(i);
    v[2].data = v[2].size ? malloc(v[2].size) : NULL;
    for (uint64_t k = 0; k < v[2].size; k++) v[2].data[k] = mixed_blob_byte(i, k);
    char json[128];
    int len = mixed_json(i, json, sizeof json);
    v[3].data = malloc((size_t)len);
    memcpy(v[3].data, json, (size_t)len);
    v[3].size = (uint64_t)len;
    float arr[12];
    for (int k = 0; k < 12; k++) arr[k] = mixed_arr(i, k);
    v[4].data = malloc(sizeof arr);
    memcpy(v[4].data, arr, sizeof arr);
    v[4].size = sizeof arr;
    return 0;
}

static const BetonFieldSpec MIXED_FIELDS[] = {
    {.type = BETON_FLOAT, .name = "sixteen_chars_ab"},
    {.type = BETON_INT, .name = "label"},
    {.type = BETON_BYTES, .name = "blob"},
    {.type = BETON_JSON, .name = "meta"},
    {.type = BETON_NDARRAY, .name = "arr", .dtype = "<f4", .ndim = 2, .shape = {3, 4}},
};
static const BetonType MIXED_TYPES[] = {BETON_FLOAT, BETON_INT, BETON_BYTES, BETON_JSON, BETON_NDARRAY};

static void test_write_mixed(void **state) {
    const int64_t n = 40;
    BetonWriteOptions o = {.page_size = 2 * MIB, .threads = 3};
    Error err;
    int64_t written;
    if (beton_write(join("mixed.beton"), MIXED_FIELDS, 5, n, mixed_fn, NULL, &o, &written, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(written, n);
    o.threads = 1;
    if (beton_write(join("mixed1.beton"), MIXED_FIELDS, 5, n, mixed_fn, NULL, &o, &written, &err))
        fail_msg("%s", err.msg);
    assert_true(same_file(join("mixed.beton"), join("mixed1.beton")));
    check_layout(join("mixed.beton"), MIXED_TYPES, 5, n, 2 * MIB);

    Beton *b = open_ok(join("mixed.beton"));
    assert_int_equal(beton_num_fields(b), 5);
    assert_string_equal(beton_field(b, 0)->name, "sixteen_chars_ab");
    assert_int_equal(beton_record_size(b), 56);
    static const size_t offs[] = {0, 8, 16, 32, 48};
    for (int f = 0; f < 5; f++) {
        assert_int_equal(beton_field(b, f)->type, MIXED_TYPES[f]);
        assert_int_equal(beton_field(b, f)->offset, offs[f]);
    }
    const BetonField *arr = beton_field(b, 4);
    assert_string_equal(arr->dtype, "<f4");
    assert_int_equal(arr->ndim, 2);
    assert_int_equal(arr->shape[0], 3);
    assert_int_equal(arr->shape[1], 4);
    assert_int_equal(arr->nbytes, 48);
    /* the NDArray arguments exactly as FFCV writes them */
    const uint8_t *args = beton_data(b, 24 + 4 * 1041 + 17);
    assert_int_equal(rd64(args), 3);
    assert_int_equal(rd64(args + 8), 4);
    assert_int_equal(rd64(args + 256), 13);
    assert_memory_equal(args + 264, "[[\"\", \"<f4\"]]", 13);
    for (int k = 264 + 13; k < 1024; k++) assert_int_equal(args[k], 0);
    assert_int_equal(beton_alloc_count(b), 3 * n);

    for (int64_t i = 0; i < n; i++) {
        double fv = beton_get_float(b, 0, i), want = mixed_float(i);
        assert_memory_equal(&fv, &want, 8);
        assert_true(beton_get_int(b, 1, i) == mixed_int(i));
        uint64_t ptr, size;
        if (beton_get_bytes(b, 2, i, &ptr, &size, &err)) fail_msg("%s", err.msg);
        assert_int_equal(size, mixed_blob_size(i));
        assert_int_equal(beton_alloc_size(b, ptr), (int64_t)size);
        const uint8_t *p = beton_data(b, ptr);
        for (uint64_t k = 0; k < size; k++) assert_int_equal(p[k], mixed_blob_byte(i, k));
        if (beton_get_bytes(b, 3, i, &ptr, &size, &err)) fail_msg("%s", err.msg);
        char json[128];
        int len = mixed_json(i, json, sizeof json);
        assert_int_equal(size, (uint64_t)len + 1);
        assert_int_equal(beton_alloc_size(b, ptr), (int64_t)size);
        assert_memory_equal(beton_data(b, ptr), json, (size_t)len + 1);
        cJSON *parsed = cJSON_Parse((const char *)beton_data(b, ptr));
        assert_non_null(parsed);
        assert_int_equal(cJSON_GetObjectItem(parsed, "i")->valueint, i);
        cJSON_Delete(parsed);
        if (beton_get_ndarray(b, 4, i, &ptr, &err)) fail_msg("%s", err.msg);
        assert_int_equal(beton_alloc_size(b, ptr), 48);
        float got[12];
        memcpy(got, beton_data(b, ptr), 48);
        for (int k = 0; k < 12; k++) {
            float w = mixed_arr(i, k);
            assert_memory_equal(&got[k], &w, 4);
        }
        assert_true(beton_sample_page(b, i) >= 1);
    }
    beton_close(b);

}

/* A sample function for fields (Float, Int) only. */
static int scalar_fn(void *ctx, int64_t i, BetonValue *v, Error *err) {
    v[0].f = mixed_float(i);
    v[1].i = mixed_int(i);
    return 0;
}

static void test_write_scalars(void **state) {
    static const BetonFieldSpec scalars[] = {{.type = BETON_FLOAT, .name = "score"}, {.type = BETON_INT, .name = "id"}};
    static const BetonType types[] = {BETON_FLOAT, BETON_INT};
    Error err;
    int64_t written;
    if (beton_write(join("scalars.beton"), scalars, 2, 5, scalar_fn, NULL, NULL, &written, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(check_layout(join("scalars.beton"), types, 2, 5, BETON_DEFAULT_PAGE_SIZE), 0);
    Beton *b = open_ok(join("scalars.beton"));
    assert_int_equal(beton_file_size(b), 24 + 2 * 1041 + 5 * 16);
    assert_int_equal(beton_alloc_count(b), 0);
    for (int64_t i = 0; i < 5; i++) {
        assert_true(beton_get_int(b, 1, i) == mixed_int(i));
        assert_int_equal(beton_sample_page(b, i), -1);
    }
    beton_close(b);
    /* zero samples */
    if (beton_write(join("empty.beton"), MIXED_FIELDS, 5, 0, mixed_fn, NULL, NULL, &written, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(written, 0);
    b = open_ok(join("empty.beton"));
    assert_int_equal(beton_num_samples(b), 0);
    assert_int_equal(beton_alloc_count(b), 0);
    beton_close(b);
}

/* Enough samples that the metadata just crosses into a second 2 MiB page, then skips that pull it back: the
 * pages must move down to the first page boundary after the (shorter) metadata. */
typedef struct ManyCtx {
    int64_t skip_below; /* skip i < skip_below */
} ManyCtx;

static int many_fn(void *ctx, int64_t i, BetonValue *v, Error *err) {
    const ManyCtx *c = ctx;
    if (i < c->skip_below) return 1;
    v[0].i = i;
    v[1].size = (uint64_t)(i % 9);
    v[1].data = v[1].size ? malloc(v[1].size) : NULL;
    for (uint64_t k = 0; k < v[1].size; k++) v[1].data[k] = (uint8_t)(i + (int64_t)k);
    return 0;
}

static void test_write_moves_pages(void **state) {
    static const BetonFieldSpec fields[] = {{.type = BETON_INT, .name = "i"}, {.type = BETON_BYTES, .name = "b"}};
    static const BetonType types[] = {BETON_INT, BETON_BYTES};
    const int64_t n = 87300; /* 2106 + 24 n = 2097306 > 2 MiB */
    for (int pass = 0; pass < 2; pass++) {
        ManyCtx c = {.skip_below = pass ? 10 : 0};
        BetonWriteOptions o = {.page_size = 2 * MIB, .threads = 2};
        Error err;
        int64_t written;
        if (beton_write(join("many.beton"), fields, 2, n, many_fn, &c, &o, &written, &err)) fail_msg("%s", err.msg);
        assert_int_equal(written, n - c.skip_below);
        check_layout(join("many.beton"), types, 2, written, 2 * MIB);
        Beton *b = open_ok(join("many.beton"));
        uint64_t ptr, size;
        assert_int_equal(beton_get_bytes(b, 1, 0, &ptr, &size, &err), 0);
        assert_int_equal(ptr, pass ? 2 * MIB : 4 * MIB);
        for (int64_t k = 0; k < written; k++) {
            int64_t i = k + c.skip_below;
            assert_true(beton_get_int(b, 0, k) == i);
            assert_int_equal(beton_get_bytes(b, 1, k, &ptr, &size, &err), 0);
            assert_int_equal(size, (uint64_t)(i % 9));
            const uint8_t *p = beton_data(b, ptr);
            for (uint64_t j = 0; j < size; j++) assert_int_equal(p[j], (uint8_t)(i + (int64_t)j));
        }
        beton_close(b);
    }
}

static int huge_fn(void *ctx, int64_t i, BetonValue *v, Error *err) {
    v[0].size = i == 5 ? 2 * MIB + 1 : 10;
    v[0].data = calloc(1, v[0].size);
    return 0;
}

static int failing_fn(void *ctx, int64_t i, BetonValue *v, Error *err) {
    v[0].size = 10;
    v[0].data = calloc(1, 10);
    if (i == 77) return error_set(err, "cannot read photo_77.jpg");
    return 0;
}

static int bad_raw_fn(void *ctx, int64_t i, BetonValue *v, Error *err) {
    v[0].image_mode = 1;
    v[0].width = 4;
    v[0].height = 4;
    v[0].size = 47;
    v[0].data = calloc(1, 47);
    return 0;
}

/* True when dir holds nothing (no output, no temporary file). */
static bool folder_empty(const char *dir) {
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(dd);
    return entries == 0;
}

static void test_write_errors(void **state) {
    static const BetonFieldSpec blob[] = {{.type = BETON_BYTES, .name = "blob"}};
    BetonWriteOptions o = {.page_size = 2 * MIB, .threads = 3};
    Error err;
    int64_t written;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/errs", tmp);
    Error e2;
    assert_int_equal(fs_mkdirs(dir, &e2), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/out.beton", dir);

    assert_int_equal(beton_write(path, blob, 1, 10, huge_fn, NULL, &o, &written, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "sample 5"));
    assert_non_null(strstr(err.msg, "--page_size"));
    assert_false(fs_exists(path));

    assert_int_equal(beton_write(path, blob, 1, 300, failing_fn, NULL, &o, &written, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "sample 77"));
    assert_non_null(strstr(err.msg, "photo_77.jpg"));
    assert_false(fs_exists(path));

    static const BetonFieldSpec img[] = {{.type = BETON_RGB, .name = "image"}};
    assert_int_equal(beton_write(path, img, 1, 3, bad_raw_fn, NULL, &o, &written, &err), -1);
    assert_non_null(strstr(err.msg, "47 bytes"));
    assert_true(folder_empty(dir)); /* no temp file left either */

    char missing[700];
    snprintf(missing, sizeof missing, "%s/no/such/folder/out.beton", tmp);
    assert_int_equal(beton_write(missing, blob, 1, 10, failing_fn, NULL, &o, &written, &err), -1);
    assert_non_null(strstr(err.msg, missing));
    assert_null(strchr(err.msg, '\n'));
    snprintf(missing, sizeof missing, "%s/no", tmp);
    assert_false(fs_exists(missing));

    o.page_size = 3 * MIB;
    assert_int_equal(beton_write(path, blob, 1, 10, failing_fn, NULL, &o, &written, &err), -1);
    assert_non_null(strstr(err.msg, "page size"));
    o.page_size = 1 * MIB;
    assert_int_equal(beton_write(path, blob, 1, 10, failing_fn, NULL, &o, &written, &err), -1);
    o.page_size = 0;
    static const BetonFieldSpec longname[] = {{.type = BETON_BYTES, .name = "seventeen_chars_x"}};
    assert_int_equal(beton_write(path, longname, 1, 10, failing_fn, NULL, &o, &written, &err), -1);
    assert_non_null(strstr(err.msg, "16 characters"));
    static const BetonFieldSpec baddtype[] = {{.type = BETON_NDARRAY, .name = "a", .dtype = "float", .ndim = 1,
                                               .shape = {3}}};
    assert_int_equal(beton_write(path, baddtype, 1, 10, failing_fn, NULL, &o, &written, &err), -1);
    assert_non_null(strstr(err.msg, "dtype"));
    assert_true(folder_empty(dir));
}

/* ------------------------------------------------------------------------------------- corrupt files */

static void test_corrupt(void **state) {
    size_t n;
    uint8_t *orig = read_file(tu_shared("fixtures/ffcv/rgb_label_raw.beton"), &n);
    uint8_t *d = malloc(n + 64);
    const char *p = join("corrupt.beton");

    write_file(p, orig, 10);
    open_fails(p, "too small", NULL);
    write_file(p, orig, 2000);
    open_fails(p, "truncated", "descriptors");
    write_file(p, orig, 2500);
    open_fails(p, "truncated", "metadata");
    write_file(p, orig, 3000);
    open_fails(p, "allocation table pointer", "truncated");
    write_file(p, orig, n - 7);
    open_fails(p, "not a multiple of 24", NULL);
    memcpy(d, orig, n);
    memset(d + n, 0, 5);
    write_file(p, d, n + 5);
    open_fails(p, "not a multiple of 24", NULL);

    memcpy(d, orig, n);
    d[0] = 3;
    write_file(p, d, n);
    open_fails(p, "version 3: ctrain reads FFCV format version 2", "ctrain convert");

    memcpy(d, orig, n);
    d[24] = 255;
    write_file(p, d, n);
    open_fails(p, "field 'image' has a custom type (255) that ctrain cannot decode", NULL);

    memcpy(d, orig, n);
    d[24 + 1041] = 9;
    write_file(p, d, n);
    open_fails(p, "field 'label' has unknown type id 9", NULL);

    memcpy(d, orig, n);
    uint64_t beyond = n + 24;
    memcpy(d + 16, &beyond, 8);
    write_file(p, d, n);
    open_fails(p, "allocation table pointer", NULL);

    memcpy(d, orig, n);
    uint64_t far = (uint64_t)n * 2; /* table entry 0's ptr past the end */
    memcpy(d + rd64(orig + 16) + 8, &far, 8);
    write_file(p, d, n);
    open_fails(p, "allocation table entry 0", "outside");

    /* a record whose image pointer has no table entry: the file opens, that one sample fails */
    memcpy(d, orig, n);
    uint64_t m = 24 + 2 * 1041, ptr = rd64(orig + m + 5) + 1;
    memcpy(d + m + 5, &ptr, 8);
    write_file(p, d, n);
    Beton *b = open_ok(p);
    BetonImage im;
    Error err;
    assert_int_equal(beton_get_image(b, 0, 0, &im, &err), -1);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "has no allocation-table entry"));
    assert_int_equal(beton_get_image(b, 0, 1, &im, &err), 0);
    beton_close(b);

    /* a raw image whose table size disagrees with width*height*3 */
    memcpy(d, orig, n);
    d[m + 1] ^= 1; /* width 256 -> 257 */
    write_file(p, d, n);
    b = open_ok(p);
    assert_int_equal(beton_get_image(b, 0, 0, &im, &err), -1);
    assert_non_null(strstr(err.msg, "raw 257x256 image has 196608 bytes"));
    beton_close(b);

    open_fails(tmp, "not a regular file", NULL);
    open_fails(join("does_not_exist.beton"), "cannot open", NULL);
    free(d);
    free(orig);
}

static int setup(void **state) {
    snprintf(tmp, sizeof tmp, "%s", tu_tempdir());
    return 0;
}

static int teardown(void **state) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),       cmocka_unit_test(test_fixture_surprises),
        cmocka_unit_test(test_write_imagenet), cmocka_unit_test(test_write_skips),
        cmocka_unit_test(test_write_mixed),    cmocka_unit_test(test_write_scalars),
        cmocka_unit_test(test_write_moves_pages), cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_corrupt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
