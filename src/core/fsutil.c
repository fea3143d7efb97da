/* fsutil.c — file-system helpers (see fsutil.h): mkdir -p, atomic writes and symlinks, whole-file reads. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"

static char *dup_str(const char *s, Error *err) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d) {
        error_set(err, "out of memory copying a path of %zu bytes", n);
        return NULL;
    }
    memcpy(d, s, n);
    return d;
}

/* Checks that mkdir's EEXIST is a folder and not a file in the way. */
static int mkdir_one(const char *dir, const char *full, Error *err) {
    if (mkdir(dir, 0777) == 0) return 0;
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    if (e == EEXIST) e = ENOTDIR;
    return error_set(err, "%s: cannot create folder %s: %s", full, dir, strerror(e));
}

int fs_mkdirs(const char *path, Error *err) {
    if (!path || !*path) return error_set(err, "cannot create a folder with an empty path");
    char *p = dup_str(path, err);
    if (!p) return -1;
    int rc = 0;
    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/' || s[-1] == '/') continue;
        *s = '\0';
        rc = mkdir_one(p, path, err);
        *s = '/';
    }
    if (rc == 0) rc = mkdir_one(p, path, err);
    free(p);
    return rc;
}

/* Splits path into a malloc'ed folder ("." when there is none) and a pointer to the base name in path. */
static char *dir_of(const char *path, const char **base, Error *err) {
    const char *slash = strrchr(path, '/');
    *base = slash ? slash + 1 : path;
    if (!slash) return dup_str(".", err);
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) {
        error_set(err, "out of memory");
        return NULL;
    }
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* Fills the trailing six characters of name with letters/digits from a per-call mix of time, pid and a
 * caller address (no global state); callers retry on EEXIST. */
static void fill_suffix(char *six, const void *salt, int attempt) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 20) ^
                 (uint64_t)(uintptr_t)salt ^ ((uint64_t)attempt * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < 6; i++, x /= 36) six[i] = alphabet[x % 36];
}

/* Builds "<folder>/.<base><tag>XXXXXX" for a temp next to path. */
static char *temp_name(const char *path, const char *tag, Error *err) {
    const char *base;
    char *dir = dir_of(path, &base, err);
    if (!dir) return NULL;
    if (!*base) {
        free(dir);
        error_set(err, "%s: is a folder path, expected a file name", path);
        return NULL;
    }
    size_t n = strlen(dir) + strlen(base) + strlen(tag) + 10;
    char *t = malloc(n);
    if (t) snprintf(t, n, "%s/.%s%sXXXXXX", dir, base, tag);
    else error_set(err, "out of memory");
    free(dir);
    return t;
}

int atomic_open(AtomicFile *af, const char *path, Error *err) {
    memset(af, 0, sizeof *af);
    af->final_path = dup_str(path, err);
    af->tmp_path = af->final_path ? temp_name(path, ".tmp-", err) : NULL;
    if (!af->tmp_path) goto fail;
    char *six = af->tmp_path + strlen(af->tmp_path) - 6;
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        fill_suffix(six, af, attempt);
        fd = open(af->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        error_set(err, "%s: cannot write: %s (check that the folder exists and is writable)", path,
                  strerror(errno));
        goto fail;
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        error_set(err, "%s: cannot write: %s", path, strerror(errno));
        close(fd);
        unlink(af->tmp_path);
        goto fail;
    }
    return 0;
fail:
    free(af->final_path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return -1;
}

/* fsyncs a folder so a rename in it is durable; file systems that cannot (EINVAL) are tolerated. */
static int fsync_dir(const char *path, Error *err) {
    const char *base;
    char *dir = dir_of(path, &base, err);
    if (!dir) return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL && errno != EROFS))
        rc = error_set(err, "%s: cannot sync folder %s: %s", path, dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

int atomic_commit(AtomicFile *af, Error *err) {
    if (!af->f) return error_set(err, "atomic_commit: file is not open");
    int fd = fileno(af->f), e = 0;
    if (ferror(af->f)) {
        /* The stream saw a failed write earlier and its errno is gone: a one-byte probe write into the
         * doomed temp file reports the cause again (typically ENOSPC). */
        e = write(fd, "", 1) < 0 ? errno : EIO;
    } else if (fflush(af->f) != 0 || ferror(af->f)) {
        e = errno ? errno : EIO;
    } else if (fsync(fd) != 0 && errno != EINVAL) {
        e = errno;
    }
    if (fclose(af->f) != 0 && e == 0) e = errno;
    af->f = NULL;
    int rc = 0;
    if (e) {
        rc = error_set(err, "%s: write failed: %s", af->final_path, strerror(e));
        unlink(af->tmp_path);
    } else if (rename(af->tmp_path, af->final_path) != 0) {
        rc = error_set(err, "%s: cannot replace the file: %s", af->final_path, strerror(errno));
        unlink(af->tmp_path);
    } else {
        rc = fsync_dir(af->final_path, err);
    }
    free(af->final_path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
    return rc;
}

void atomic_abort(AtomicFile *af) {
    if (!af) return;
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->final_path);
    free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

int fs_symlink_atomic(const char *target, const char *link_path, Error *err) {
    char *tmp = temp_name(link_path, ".lnk-", err);
    if (!tmp) return -1;
    char *six = tmp + strlen(tmp) - 6;
    int rc = -1;
    for (int attempt = 0; attempt < 100 && rc != 0; attempt++) {
        fill_suffix(six, tmp, attempt);
        rc = symlink(target, tmp);
        if (rc != 0 && errno != EEXIST) break;
    }
    if (rc != 0) {
        rc = error_set(err, "%s: cannot create symlink: %s (check that the folder exists and is writable)",
                       link_path, strerror(errno));
    } else if (rename(tmp, link_path) != 0) {
        rc = error_set(err, "%s: cannot replace with a symlink to %s: %s", link_path, target, strerror(errno));
        unlink(tmp);
    } else {
        rc = fsync_dir(link_path, err);
    }
    free(tmp);
    return rc;
}

int fs_read_all(const char *path, uint8_t **data, size_t *size, Error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    size_t cap = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
    size_t n = 0;
    uint8_t *buf = malloc(cap);
    int c = 0;
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1 || (c = fgetc(f)) == EOF) break; /* short read or exactly at the end */
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
        if (buf) buf[n++] = (uint8_t)c;
    }
    int e = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!buf) return error_set(err, "%s: out of memory reading %zu bytes", path, cap);
    if (e) {
        free(buf);
        return error_set(err, "%s: read failed: %s", path, strerror(e));
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return 0;
}

bool fs_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0;
}
