/* test_io.c — file helpers and formats: atomic writes and symlinks (fsutil), safetensors (round trip, files
 * written by Python, corrupt files), .npy (files written by numpy, round trip, rejected layouts) and IDX
 * (raw and gzipped, bad and truncated files, Debian's Fashion-MNIST when installed). */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/fsutil.h"
#include "data/idx.h"
#include "data/npy.h"
#include "io/safetensors.h"
#include "testutil.h"

/* ------------------------------------------------------------------------------------------- helpers */

/* dir + "/" + name in one of a few rotating static buffers. */
static const char *join(const char *dir, const char *name) {
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

/* Entries in a folder other than . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static char *read_text(const char *path) {
    uint8_t *data;
    size_t n;
    Error err;
    assert_int_equal(fs_read_all(path, &data, &n, &err), 0);
    return (char *)data;
}

/* True when rc is -1 and the message contains a and (unless NULL) b; prints the message otherwise. */
static bool failed_with(int rc, const Error *err, const char *a, const char *b) {
    if (rc == -1 && strstr(err->msg, a) && (!b || strstr(err->msg, b))) return true;
    fprintf(stderr, "rc %d, message \"%s\" (wanted \"%s\" and \"%s\")\n", rc, rc ? err->msg : "", a, b ? b : "");
    return false;
}
#define assert_fails_with(rc, err, a, b) assert_true(failed_with((rc), &(err), (a), (b)))

/* ------------------------------------------------------------------------------------------- fsutil */

static void test_fs_mkdirs(void **state) {
    const char *tmp = tu_tempdir();
    Error err;
    const char *deep = join(tmp, "a/b//c/d");
    assert_int_equal(fs_mkdirs(deep, &err), 0);
    assert_true(fs_exists(deep));
    assert_int_equal(fs_mkdirs(deep, &err), 0); /* existing is fine */
    const char *file = join(tmp, "plain");
    write_bytes(file, "x", 1);
    assert_fails_with(fs_mkdirs(join(tmp, "plain/sub"), &err), err, "plain/sub", "Not a directory");
    assert_false(fs_exists(join(tmp, "nothing")));
}

static void test_atomic_abort_leaves_nothing(void **state) {
    const char *tmp = tu_tempdir();
    Error err;
    AtomicFile af;
    assert_int_equal(atomic_open(&af, join(tmp, "out.bin"), &err), 0);
    assert_non_null(strstr(af.tmp_path, "/.out.bin.tmp-"));
    fputs("partial", af.f);
    assert_int_equal(count_entries(tmp), 1);
    atomic_abort(&af);
    assert_int_equal(count_entries(tmp), 0);
    atomic_abort(&af); /* harmless twice */
}

static void test_atomic_commit_replaces(void **state) {
    const char *tmp = tu_tempdir();
    const char *path = join(tmp, "out.txt");
    write_bytes(path, "old contents", 12);
    Error err;
    AtomicFile af;
    assert_int_equal(atomic_open(&af, path, &err), 0);
    fputs("new", af.f);
    char *before = read_text(path);
    assert_string_equal(before, "old contents"); /* untouched until commit */
    free(before);
    assert_int_equal(atomic_commit(&af, &err), 0);
    assert_null(af.f);
    char *after = read_text(path);
    assert_string_equal(after, "new");
    free(after);
    assert_int_equal(count_entries(tmp), 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0666 & ~mask); /* like fopen's, not mkstemp's 0600 */
}

static void test_atomic_missing_folder(void **state) {
    const char *tmp = tu_tempdir();
    const char *path = join(tmp, "no/such/folder/out.bin");
    Error err;
    AtomicFile af;
    assert_fails_with(atomic_open(&af, path, &err), err, path, "No such file or directory");
    assert_null(af.f);
    StWriter *w = st_writer_new();
    float x = 1;
    assert_int_equal(st_writer_add(w, "x", ST_F32, 0, NULL, &x, &err), 0);
    assert_fails_with(st_writer_write(w, path, &err), err, path, NULL);
    st_writer_free(w);
    int64_t shape[1] = {1};
    assert_fails_with(npy_save(path, NPY_F32, 1, shape, &x, &err), err, path, NULL);
}

/* A full disk: the temp file's descriptor is pointed at /dev/full, whose writes fail with ENOSPC. */
static void check_disk_full(size_t nbytes) {
    const char *tmp = tu_tempdir();
    const char *path = join(tmp, "ckpt.bin");
    write_bytes(path, "old", 3);
    Error err;
    AtomicFile af;
    assert_int_equal(atomic_open(&af, path, &err), 0);
    int full = open("/dev/full", O_WRONLY);
    if (full < 0) {
        printf("note: /dev/full is missing; disk-full check skipped\n");
        atomic_abort(&af);
        return;
    }
    assert_true(dup2(full, fileno(af.f)) >= 0);
    close(full);
    char *junk = calloc(nbytes, 1);
    fwrite(junk, 1, nbytes, af.f);
    free(junk);
    assert_fails_with(atomic_commit(&af, &err), err, path, "write failed: No space left on device");
    assert_int_equal(count_entries(tmp), 1); /* temp removed */
    char *text = read_text(path);
    assert_string_equal(text, "old");
    free(text);
}

static void test_atomic_disk_full(void **state) {
    check_disk_full(10);       /* fails in fflush at commit */
    check_disk_full(1 << 20);  /* fails inside fwrite, seen through ferror */
}

static void test_symlink_atomic(void **state) {
    const char *tmp = tu_tempdir();
    const char *link = join(tmp, "latest");
    Error err;
    char buf[256];
    assert_int_equal(fs_symlink_atomic("ep1.safetensors", link, &err), 0);
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = 0;
    assert_string_equal(buf, "ep1.safetensors");
    assert_int_equal(fs_symlink_atomic("ep2.safetensors", link, &err), 0);
    n = readlink(link, buf, sizeof buf - 1);
    assert_true(n > 0);
    buf[n] = 0;
    assert_string_equal(buf, "ep2.safetensors");
    assert_int_equal(count_entries(tmp), 1);
    const char *bad = join(tmp, "missing/latest");
    assert_fails_with(fs_symlink_atomic("x", bad, &err), err, bad, NULL);
}

static void test_read_all(void **state) {
    const char *tmp = tu_tempdir();
    Error err;
    uint8_t *data;
    size_t n;
    write_bytes(join(tmp, "empty"), "", 0);
    assert_int_equal(fs_read_all(join(tmp, "empty"), &data, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(data[0], 0);
    free(data);
    write_bytes(join(tmp, "abc"), "abc", 3);
    assert_int_equal(fs_read_all(join(tmp, "abc"), &data, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal((char *)data, "abc");
    free(data);
    const char *missing = join(tmp, "missing");
    assert_fails_with(fs_read_all(missing, &data, &n, &err), err, missing, "No such file");
    assert_null(data);
}

/* ------------------------------------------------------------------------------------------ safetensors */

static void test_st_round_trip(void **state) {
    const char *path = join(tu_tempdir(), "rt.safetensors");
    float f32[6] = {1, -2, 3.5f, 4, 5e-8f, -6e20f};
    uint16_t f16[3] = {0x3c00, 0xc000, 0x0001}; /* 1, -2, smallest subnormal 2^-24 */
    uint16_t bf16[2] = {0x3fc0, 0xc0a0};        /* 1.5, -5 */
    double f64[2] = {0.25, -1e300};
    int64_t i64[3] = {-1, 0, (int64_t)1 << 40};
    int32_t i32[2] = {-5, 7};
    uint8_t u8[4] = {0, 1, 254, 255};
    int8_t i8[2] = {-128, 127};
    uint8_t boolean[3] = {1, 0, 1};
    float scalar = 42.0f;
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s4[1] = {4}, s04[2] = {0, 4};
    const char *names[] = {"f32", "f16", "bf16", "f64", "i64", "i32", "u8", "i8", "bool", "scalar", "empty"};

    Error err;
    StWriter *w = st_writer_new();
    assert_non_null(w);
    assert_int_equal(st_writer_add(w, "f32", ST_F32, 2, s23, f32, &err), 0);
    assert_int_equal(st_writer_add(w, "f16", ST_F16, 1, s3, f16, &err), 0);
    assert_int_equal(st_writer_add(w, "bf16", ST_BF16, 1, s2, bf16, &err), 0);
    assert_int_equal(st_writer_add(w, "f64", ST_F64, 1, s2, f64, &err), 0);
    assert_int_equal(st_writer_add(w, "i64", ST_I64, 1, s3, i64, &err), 0);
    assert_int_equal(st_writer_add(w, "i32", ST_I32, 1, s2, i32, &err), 0);
    assert_int_equal(st_writer_add(w, "u8", ST_U8, 1, s4, u8, &err), 0);
    assert_int_equal(st_writer_add(w, "i8", ST_I8, 1, s2, i8, &err), 0);
    assert_int_equal(st_writer_add(w, "bool", ST_BOOL, 1, s3, boolean, &err), 0);
    assert_int_equal(st_writer_add(w, "scalar", ST_F32, 0, NULL, &scalar, &err), 0);
    assert_int_equal(st_writer_add(w, "empty", ST_F32, 2, s04, NULL, &err), 0);
    assert_int_equal(st_writer_meta(w, "format", "pt", &err), 0);
    assert_int_equal(st_writer_meta(w, "epoch", "1", &err), 0);
    assert_int_equal(st_writer_meta(w, "epoch", "3", &err), 0); /* replaces */
    /* writer errors name the tensor */
    assert_fails_with(st_writer_add(w, "f32", ST_F32, 2, s23, f32, &err), err, "'f32'", "twice");
    int64_t neg[1] = {-1};
    assert_fails_with(st_writer_add(w, "neg", ST_F32, 1, neg, f32, &err), err, "'neg'", "shape");
    assert_fails_with(st_writer_add(w, "deep", ST_F32, 9, s23, f32, &err), err, "'deep'", "dimensions");
    assert_int_equal(st_writer_write(w, path, &err), 0);
    st_writer_free(w);

    /* header lists the tensors in the order added, padded to a multiple of 8 */
    uint8_t *raw;
    size_t size;
    assert_int_equal(fs_read_all(path, &raw, &size, &err), 0);
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    assert_int_equal(hlen % 8, 0);
    const char *prev = (const char *)raw + 8;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char key[32];
        snprintf(key, sizeof key, "\"%s\":{", names[i]);
        const char *at = strstr((const char *)raw + 8, key);
        assert_non_null(at);
        assert_true(at >= prev);
        prev = at;
    }
    free(raw);

    SafeTensors *st;
    assert_int_equal(st_open(path, &st, &err), 0);
    assert_int_equal(st_count(st), 11);
    for (int i = 0; i < 11; i++) assert_string_equal(st_at(st, i)->name, names[i]);
    assert_null(st_at(st, 11));
    assert_null(st_get(st, "nope"));
    assert_string_equal(st_metadata(st, "format"), "pt");
    assert_string_equal(st_metadata(st, "epoch"), "3");
    assert_null(st_metadata(st, "nope"));

    const StTensor *t = st_get(st, "f32");
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 6);
    assert_memory_equal(t->data, f32, sizeof f32);
    float got[6];
    assert_int_equal(st_read_f32(t, got, 6, &err), 0);
    assert_memory_equal(got, f32, sizeof f32);

    t = st_get(st, "f16");
    assert_int_equal(st_read_f32(t, got, 3, &err), 0);
    assert_true(got[0] == 1.0f && got[1] == -2.0f && got[2] == 0x1p-24f);
    t = st_get(st, "bf16");
    assert_int_equal(st_read_f32(t, got, 2, &err), 0);
    assert_true(got[0] == 1.5f && got[1] == -5.0f);
    t = st_get(st, "f64");
    assert_memory_equal(t->data, f64, sizeof f64);
    assert_int_equal(st_read_f32(t, got, 2, &err), 0);
    assert_true(got[0] == 0.25f && isinf(got[1]));
    assert_memory_equal(st_get(st, "i64")->data, i64, sizeof i64);
    assert_memory_equal(st_get(st, "i32")->data, i32, sizeof i32);
    assert_memory_equal(st_get(st, "u8")->data, u8, sizeof u8);
    assert_memory_equal(st_get(st, "i8")->data, i8, sizeof i8);
    assert_memory_equal(st_get(st, "bool")->data, boolean, sizeof boolean);
    assert_int_equal(st_get(st, "bool")->dtype, ST_BOOL);
    t = st_get(st, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(st_read_f32(t, got, 1, &err), 0);
    assert_true(got[0] == 42.0f);
    t = st_get(st, "empty");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->numel, 0);
    assert_int_equal(st_read_f32(t, got, 0, &err), 0);

    /* st_read_f32 checks the element count and the dtype */
    assert_fails_with(st_read_f32(st_get(st, "f32"), got, 5, &err), err, "'f32'", "6 elements, expected 5");
    assert_fails_with(st_read_f32(st_get(st, "i64"), got, 3, &err), err, "'i64'", "I64");
    st_close(st);
}

static void test_st_python_fixture(void **state) {
    const char *path = tu_fixture("st_python_small.safetensors");
    SafeTensors *st;
    Error err;
    assert_int_equal(st_open(path, &st, &err), 0);
    assert_int_equal(st_count(st), 10);
    assert_string_equal(st_metadata(st, "format"), "pt");
    assert_string_equal(st_metadata(st, "source"), "make_io_fixtures.py");

    const StTensor *t = st_get(st, "a.f32");
    assert_non_null(t);
    assert_int_equal(t->ndim, 3);
    assert_true(t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 4);
    float a[24], ref[24];
    assert_int_equal(st_read_f32(t, a, 24, &err), 0);
    for (int i = 0; i < 24; i++) ref[i] = i * 0.5f - 3;
    assert_memory_equal(a, ref, sizeof a);

    t = st_get(st, "b.f16");
    assert_int_equal(t->dtype, ST_F16);
    assert_int_equal(st_read_f32(t, a, 6, &err), 0);
    for (int i = 0; i < 6; i++) assert_true(a[i] == i - 2.5f);

    t = st_get(st, "c.bf16");
    assert_int_equal(t->dtype, ST_BF16);
    assert_int_equal(st_read_f32(t, a, 4, &err), 0);
    assert_true(a[0] == 1.5f && a[1] == -2.0f && a[2] == 3.25f && a[3] == 0.0f);

    t = st_get(st, "d.f64");
    double d[3];
    memcpy(d, t->data, sizeof d);
    assert_true(d[0] == 0.1 && d[1] == -1e10 && d[2] == 7.0);

    t = st_get(st, "e.i64");
    int64_t e[4];
    memcpy(e, t->data, sizeof e);
    assert_true(e[0] == 1 && e[1] == -2 && e[2] == 3 && e[3] == 40000000000LL);

    t = st_get(st, "f.i32");
    int32_t f[3];
    memcpy(f, t->data, sizeof f);
    assert_true(f[0] == -7 && f[1] == 0 && f[2] == 123456);

    t = st_get(st, "g.u8");
    assert_int_equal(t->dtype, ST_U8);
    const uint8_t u8[5] = {0, 60, 120, 180, 240};
    assert_memory_equal(t->data, u8, 5);

    t = st_get(st, "h.bool");
    assert_int_equal(t->dtype, ST_BOOL);
    const uint8_t b[4] = {1, 0, 0, 1};
    assert_memory_equal(t->data, b, 4);

    t = st_get(st, "scalar");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(st_read_f32(t, a, 1, &err), 0);
    assert_true(a[0] == 3.0f);

    t = st_get(st, "empty");
    assert_int_equal(t->numel, 0);
    assert_true(t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 4);
    st_close(st);
}

/* Writes "<u64 len><json padded><data>" as a hand-made safetensors file. */
static void write_st_raw(const char *path, const char *json, const void *data, size_t ndata) {
    size_t n = strlen(json);
    uint64_t len = n;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(&len, 8, 1, f);
    fwrite(json, 1, n, f);
    if (ndata) fwrite(data, 1, ndata, f);
    assert_int_equal(fclose(f), 0);
}

static void expect_st_invalid(const char *path, const char *why) {
    SafeTensors *st = (SafeTensors *)&st; /* must be reset to NULL */
    Error err;
    assert_fails_with(st_open(path, &st, &err), err, path, "not a valid safetensors file");
    if (why && !strstr(err.msg, why)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, why);
    assert_null(st);
}

static void test_st_corrupt(void **state) {
    const char *tmp = tu_tempdir();
    Error err;
    float data[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};

    /* a good file, then cut at several places */
    const char *good = join(tmp, "good.safetensors");
    StWriter *w = st_writer_new();
    assert_int_equal(st_writer_add(w, "w", ST_F32, 1, shape, data, &err), 0);
    assert_int_equal(st_writer_write(w, good, &err), 0);
    st_writer_free(w);
    uint8_t *raw;
    size_t size;
    assert_int_equal(fs_read_all(good, &raw, &size, &err), 0);
    const char *cut = join(tmp, "cut.safetensors");
    write_bytes(cut, raw, 5);                      /* inside the length */
    expect_st_invalid(cut, "shorter than the 8-byte header length");
    write_bytes(cut, raw, 20);                     /* inside the header */
    expect_st_invalid(cut, "runs past the end");
    write_bytes(cut, raw, size - 3);               /* inside the data */
    expect_st_invalid(cut, "truncated");
    write_bytes(cut, raw, 0);                      /* empty */
    expect_st_invalid(cut, NULL);
    free(raw);

    const char *bad = join(tmp, "bad.safetensors");
    write_st_raw(bad, "{not json at all}       ", data, 16);
    expect_st_invalid(bad, "malformed");
    write_st_raw(bad, "[1, 2, 3]", data, 16);
    expect_st_invalid(bad, "start");
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} xx", data, 16);
    expect_st_invalid(bad, "after the header");
    /* offsets that lie */
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[25],\"data_offsets\":[0,100]}}", data, 16);
    expect_st_invalid(bad, "'w' ends at byte 100");
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", data, 16);
    expect_st_invalid(bad, "do not match");
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", data, 16);
    expect_st_invalid(bad, "do not match");
    write_st_raw(bad, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 16);
    expect_st_invalid(bad, "overlap");
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", data, 16);
    expect_st_invalid(bad, "shape");
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0.5,16]}}", data, 16);
    expect_st_invalid(bad, "data_offsets");
    write_st_raw(bad, "{\"w\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 16);
    expect_st_invalid(bad, "dtype 'Q7'");
    write_st_raw(bad, "{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", data, 16);
    expect_st_invalid(bad, "lacks dtype");
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", data, 16);
    expect_st_invalid(bad, "twice");
    write_st_raw(bad, "{\"__metadata__\":{\"k\":3}}", data, 0);
    expect_st_invalid(bad, "__metadata__");
    /* a valid one in the same style, with a gap and unaligned data, still opens */
    write_st_raw(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[5,13]}}", "\0\0\0\0\0abcdefgh", 13);
    SafeTensors *st;
    assert_int_equal(st_open(bad, &st, &err), 0);
    assert_memory_equal(st_get(st, "w")->data, "abcdefgh", 8);
    st_close(st);

    const char *missing = join(tmp, "missing.safetensors");
    assert_fails_with(st_open(missing, &st, &err), err, missing, "No such file");
}

/* ------------------------------------------------------------------------------------------------ npy */

static void test_npy_numpy_fixtures(void **state) {
    NpyArray a;
    Error err;
    assert_int_equal(npy_load(tu_fixture("npy_f32_2x3x4x1.npy"), &a, &err), 0);
    assert_int_equal(a.dtype, NPY_F32);
    assert_int_equal(a.ndim, 4);
    assert_true(a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4 && a.shape[3] == 1);
    assert_int_equal(a.numel, 24);
    for (int i = 0; i < 24; i++) assert_true(((float *)a.data)[i] == i / 4.0f - 1);
    npy_free(&a);
    assert_null(a.data);

    assert_int_equal(npy_load(tu_fixture("npy_u8.npy"), &a, &err), 0);
    assert_int_equal(a.dtype, NPY_U8);
    assert_true(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 5);
    for (int i = 0; i < 10; i++) assert_int_equal(((uint8_t *)a.data)[i], i * 25);
    npy_free(&a);

    assert_int_equal(npy_load(tu_fixture("npy_i64.npy"), &a, &err), 0);
    assert_int_equal(a.dtype, NPY_I64);
    const int64_t i64[6] = {0, 9, 3, 3, 1, -5};
    assert_true(a.ndim == 1 && a.shape[0] == 6);
    assert_memory_equal(a.data, i64, sizeof i64);
    npy_free(&a);

    assert_int_equal(npy_load(tu_fixture("npy_i32.npy"), &a, &err), 0);
    assert_int_equal(a.dtype, NPY_I32);
    const int32_t i32[4] = {2, 7, 1, 8};
    assert_memory_equal(a.data, i32, sizeof i32);
    npy_free(&a);

    assert_int_equal(npy_load(tu_fixture("npy_bool.npy"), &a, &err), 0);
    assert_int_equal(a.dtype, NPY_BOOL);
    assert_memory_equal(a.data, "\1\0\1", 3);
    npy_free(&a);

    assert_int_equal(npy_load(tu_fixture("npy_f64_scalar.npy"), &a, &err), 0);
    assert_int_equal(a.dtype, NPY_F64);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.numel, 1);
    assert_true(*(double *)a.data == 2.5);
    npy_free(&a);

    assert_int_equal(npy_load(tu_fixture("npy_v2.npy"), &a, &err), 0); /* format version 2.0 */
    assert_true(a.dtype == NPY_F32 && a.ndim == 1 && a.shape[0] == 3);
    const float v2[3] = {1, 2, 3};
    assert_memory_equal(a.data, v2, sizeof v2);
    npy_free(&a);

    const char *fortran = tu_fixture("npy_fortran.npy");
    assert_fails_with(npy_load(fortran, &a, &err), err, fortran,
                      "fortran_order arrays are not supported; save with np.ascontiguousarray");
    assert_null(a.data);
    const char *big = tu_fixture("npy_bigendian.npy");
    assert_fails_with(npy_load(big, &a, &err), err, big, "big-endian");
}

/* Writes a .npy file with a hand-written header (version 1.0), no alignment padding. */
static void write_npy_raw(const char *path, const char *dict, const void *data, size_t n) {
    size_t hlen = strlen(dict);
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)hlen, (uint8_t)(hlen >> 8)};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, hlen, f);
    if (n) fwrite(data, 1, n, f);
    assert_int_equal(fclose(f), 0);
}

static void test_npy_header_parsing(void **state) {
    const char *tmp = tu_tempdir();
    const char *path = join(tmp, "h.npy");
    NpyArray a;
    Error err;
    int32_t v[6] = {1, 2, 3, 4, 5, 6};
    /* keys in another order, double quotes, no trailing comma, Python 2 long suffix */
    write_npy_raw(path, "{\"shape\": (2L, 3L), 'fortran_order': False, \"descr\": \"<i4\"}\n", v, sizeof v);
    assert_int_equal(npy_load(path, &a, &err), 0);
    assert_true(a.dtype == NPY_I32 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
    assert_memory_equal(a.data, v, sizeof v);
    npy_free(&a);
    /* fortran order with a single long dimension is the same bytes */
    write_npy_raw(path, "{'descr': '<i4', 'fortran_order': True, 'shape': (1, 6), }", v, sizeof v);
    assert_int_equal(npy_load(path, &a, &err), 0);
    npy_free(&a);
    /* empty array */
    write_npy_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", NULL, 0);
    assert_int_equal(npy_load(path, &a, &err), 0);
    assert_int_equal(a.numel, 0);
    npy_free(&a);

    write_npy_raw(path, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", v, 10);
    assert_fails_with(npy_load(path, &a, &err), err, path, "truncated (expected 24 bytes of data, got 10)");
    write_npy_raw(path, "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2,), }", v, 8);
    assert_fails_with(npy_load(path, &a, &err), err, path, "structured");
    write_npy_raw(path, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", v, 24);
    assert_fails_with(npy_load(path, &a, &err), err, path, "'<U3' is not supported");
    write_npy_raw(path, "{'descr': '<f4', 'shape': (2,), }", v, 8);
    assert_fails_with(npy_load(path, &a, &err), err, path, "lacks");
    write_npy_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", v, 8);
    assert_fails_with(npy_load(path, &a, &err), err, path, "'extra'");
    write_npy_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,", v, 8);
    assert_fails_with(npy_load(path, &a, &err), err, path, "not a valid .npy file");
    write_npy_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", v, 4);
    assert_fails_with(npy_load(path, &a, &err), err, path, "dimensions");
    write_bytes(path, "PK\3\4 not numpy", 15);
    assert_fails_with(npy_load(path, &a, &err), err, path, "not a .npy file");
    write_bytes(path, "\x93NUMPY\x01\x00\x40\x00{'descr'", 17);
    assert_fails_with(npy_load(path, &a, &err), err, path, "truncated .npy header");
    const char *missing = join(tmp, "missing.npy");
    assert_fails_with(npy_load(missing, &a, &err), err, missing, "No such file");
}

static void test_npy_round_trip(void **state) {
    const char *tmp = tu_tempdir();
    Error err;
    NpyArray a;
    float f[24];
    for (int i = 0; i < 24; i++) f[i] = i * 0.125f - 1;
    int64_t shape4[4] = {2, 3, 4, 1}, shape1[1] = {5}, shape0[2] = {0, 7};
    int64_t labels[5] = {4, 0, -1, 1LL << 40, 9};
    double scalar = -0.5;
    struct {
        const char *name;
        NpyDtype dtype;
        int ndim;
        const int64_t *shape;
        const void *data;
        size_t bytes;
        const char *header; /* as numpy writes it */
    } cases[] = {
        {"f32.npy", NPY_F32, 4, shape4, f, sizeof f,
         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4, 1), }"},
        {"i64.npy", NPY_I64, 1, shape1, labels, sizeof labels,
         "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"},
        {"u8.npy", NPY_U8, 1, shape1, "\1\2\3\4\5", 5, "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }"},
        {"scalar.npy", NPY_F64, 0, NULL, &scalar, sizeof scalar,
         "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"},
        {"empty.npy", NPY_F32, 2, shape0, NULL, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 7), }"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const char *path = join(tmp, cases[c].name);
        assert_int_equal(npy_save(path, cases[c].dtype, cases[c].ndim, cases[c].shape, cases[c].data, &err), 0);
        uint8_t *raw;
        size_t size;
        assert_int_equal(fs_read_all(path, &raw, &size, &err), 0);
        size_t hlen = raw[8] | (size_t)raw[9] << 8;
        assert_int_equal((10 + hlen) % 64, 0); /* data 64-byte aligned, header ends in '\n' */
        assert_int_equal(raw[9 + hlen], '\n');
        assert_memory_equal(raw + 10, cases[c].header, strlen(cases[c].header));
        assert_int_equal(size, 10 + hlen + cases[c].bytes);
        free(raw);
        assert_int_equal(npy_load(path, &a, &err), 0);
        assert_int_equal(a.dtype, cases[c].dtype);
        assert_int_equal(a.ndim, cases[c].ndim);
        for (int i = 0; i < a.ndim; i++) assert_int_equal(a.shape[i], cases[c].shape[i]);
        if (cases[c].bytes) assert_memory_equal(a.data, cases[c].data, cases[c].bytes);
        npy_free(&a);
    }
    assert_int_equal(count_entries(tmp), 5); /* no temp files left */
    assert_fails_with(npy_save(join(tmp, "x.npy"), NPY_F32, 9, shape4, f, &err), err, "x.npy", "dimensions");
}

/* ------------------------------------------------------------------------------------------------ idx */

/* Builds an IDX file in buf: magic, big-endian dims, then n data bytes; returns its length. */
static size_t make_idx(uint8_t *buf, uint8_t type, int ndim, const uint32_t *dims, const void *data, size_t n) {
    size_t k = 0;
    buf[k++] = 0;
    buf[k++] = 0;
    buf[k++] = type;
    buf[k++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++)
        for (int s = 24; s >= 0; s -= 8) buf[k++] = (uint8_t)(dims[i] >> s);
    memcpy(buf + k, data, n);
    return k + n;
}

static void test_idx_raw_and_gz(void **state) {
    const char *tmp = tu_tempdir();
    uint8_t pixels[24], buf[256];
    for (int i = 0; i < 24; i++) pixels[i] = (uint8_t)(i * 10);
    uint32_t dims[3] = {2, 3, 4};
    size_t n = make_idx(buf, 0x08, 3, dims, pixels, sizeof pixels);
    const char *raw = join(tmp, "imgs-idx3-ubyte"), *gz = join(tmp, "imgs-idx3-ubyte.gz");
    write_bytes(raw, buf, n);
    write_gz(gz, buf, n);
    const char *paths[2] = {raw, gz};
    for (int p = 0; p < 2; p++) {
        IdxArray a;
        Error err;
        assert_int_equal(idx_load(paths[p], &a, &err), 0);
        assert_int_equal(a.ndim, 3);
        assert_true(a.dims[0] == 2 && a.dims[1] == 3 && a.dims[2] == 4);
        assert_int_equal(a.numel, 24);
        assert_memory_equal(a.data, pixels, 24);
        idx_free(&a);
        assert_null(a.data);
    }
}

static void test_idx_other_types(void **state) {
    const char *tmp = tu_tempdir();
    const char *path = join(tmp, "labels.idx");
    uint8_t buf[256];
    IdxArray a;
    Error err;
    uint32_t dims[1] = {3};
    /* int32 labels 0, 7, 255 (big-endian) convert */
    const uint8_t i32[12] = {0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 255};
    write_bytes(path, buf, make_idx(buf, 0x0C, 1, dims, i32, sizeof i32));
    assert_int_equal(idx_load(path, &a, &err), 0);
    assert_memory_equal(a.data, "\0\7\377", 3);
    idx_free(&a);
    /* float32 1.0, 2.5, 3.0: 2.5 is not a uint8 */
    const uint8_t f32[12] = {0x3f, 0x80, 0, 0, 0x40, 0x20, 0, 0, 0x40, 0x40, 0, 0};
    write_bytes(path, buf, make_idx(buf, 0x0D, 1, dims, f32, sizeof f32));
    assert_fails_with(idx_load(path, &a, &err), err, path, "float32 element 1 is 2.5");
    /* int16 256 is out of range */
    const uint8_t i16[6] = {0, 1, 1, 0, 0, 2};
    write_bytes(path, buf, make_idx(buf, 0x0B, 1, dims, i16, sizeof i16));
    assert_fails_with(idx_load(path, &a, &err), err, path, "int16 element 1 is 256");
    assert_null(a.data);
}

static void test_idx_errors(void **state) {
    const char *tmp = tu_tempdir();
    const char *path = join(tmp, "bad-idx"), *gz = join(tmp, "bad-idx.gz");
    IdxArray a;
    Error err;
    uint8_t buf[256], pixels[24] = {0};
    write_bytes(path, "P5\n28 28\n255\n", 13); /* a PGM image */
    assert_fails_with(idx_load(path, &a, &err), err, path, "not an IDX file (bad magic 0x50350a32)");
    write_bytes(path, "\0\0\x08\x03", 4);
    assert_fails_with(idx_load(path, &a, &err), err, path, "truncated (expected 12 bytes of dimensions, got 0)");
    write_bytes(path, "\0\0", 2);
    assert_fails_with(idx_load(path, &a, &err), err, path, "not an IDX file");
    write_bytes(path, "\0\0\x08\x07", 4);
    assert_fails_with(idx_load(path, &a, &err), err, path, "7 dimensions");

    uint32_t dims[3] = {2, 3, 4};
    size_t n = make_idx(buf, 0x08, 3, dims, pixels, sizeof pixels);
    write_bytes(path, buf, n - 5);
    assert_fails_with(idx_load(path, &a, &err), err, path, "truncated (expected 24 bytes of data, got 19)");
    write_gz(gz, buf, n - 5);
    assert_fails_with(idx_load(gz, &a, &err), err, gz, "truncated (expected 24 bytes of data, got 19)");
    /* a gzip file cut short in the middle of its stream */
    uint8_t *whole;
    size_t size;
    write_gz(gz, buf, n);
    assert_int_equal(fs_read_all(gz, &whole, &size, &err), 0);
    write_bytes(gz, whole, size - 12);
    free(whole);
    assert_fails_with(idx_load(gz, &a, &err), err, gz, "truncated");
    /* a gzip file damaged in the middle of its stream */
    static uint8_t noise[24000], big[16 + 24000];
    uint32_t bdims[3] = {20, 30, 40}, x = 12345;
    for (int i = 0; i < 24000; i++) noise[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
    write_gz(gz, big, make_idx(big, 0x08, 3, bdims, noise, sizeof noise));
    assert_int_equal(fs_read_all(gz, &whole, &size, &err), 0);
    memset(whole + size / 2, 'x', 50);
    write_bytes(gz, whole, size);
    free(whole);
    assert_fails_with(idx_load(gz, &a, &err), err, gz, "corrupt");
    /* a header that claims a huge array fails as truncated, not as out of memory */
    uint32_t huge[3] = {60000, 10000, 1000};
    write_bytes(path, buf, make_idx(buf, 0x08, 3, huge, pixels, sizeof pixels));
    assert_fails_with(idx_load(path, &a, &err), err, path, "got 24)");
    const char *missing = join(tmp, "missing.gz");
    assert_fails_with(idx_load(missing, &a, &err), err, missing, "No such file");
    assert_null(a.data);
}

static void test_idx_fashion_mnist(void **state) {
    const char *images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (!fs_exists(images) || !fs_exists(labels)) {
        printf("note: %s not installed (Debian package dataset-fashion-mnist); real IDX files NOT checked\n",
               images);
        return;
    }
    IdxArray a;
    Error err;
    if (idx_load(images, &a, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.ndim, 3);
    assert_true(a.dims[0] == 10000 && a.dims[1] == 28 && a.dims[2] == 28);
    assert_int_equal(a.numel, 10000 * 28 * 28);
    int maxpix = 0;
    for (int64_t i = 0; i < a.numel; i++) maxpix = a.data[i] > maxpix ? a.data[i] : maxpix;
    assert_true(maxpix > 200);
    idx_free(&a);
    if (idx_load(labels, &a, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.dims[0], 10000);
    int count[10] = {0};
    for (int64_t i = 0; i < a.numel; i++) {
        assert_true(a.data[i] <= 9);
        count[a.data[i]]++;
    }
    for (int c = 0; c < 10; c++) assert_int_equal(count[c], 1000); /* the test set is balanced */
    idx_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fs_mkdirs),
        cmocka_unit_test(test_atomic_abort_leaves_nothing),
        cmocka_unit_test(test_atomic_commit_replaces),
        cmocka_unit_test(test_atomic_missing_folder),
        cmocka_unit_test(test_atomic_disk_full),
        cmocka_unit_test(test_symlink_atomic),
        cmocka_unit_test(test_read_all),
        cmocka_unit_test(test_st_round_trip),
        cmocka_unit_test(test_st_python_fixture),
        cmocka_unit_test(test_st_corrupt),
        cmocka_unit_test(test_npy_numpy_fixtures),
        cmocka_unit_test(test_npy_header_parsing),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_idx_raw_and_gz),
        cmocka_unit_test(test_idx_other_types),
        cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_idx_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
