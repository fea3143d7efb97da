/* beton_writer.c — FFCV .beton writer (see beton_writer.h).
 *
 * Threads: a pool of pthreads calls the sample function over chunks of CHUNK consecutive samples, into a
 * ring of 2 x threads chunk slots; the calling thread takes the chunks back in order and packs them into
 * pages one sample at a time, so the bytes written never depend on timing. Memory: the metadata records of
 * all samples, one page buffer, the ring's values, and 4 bytes per page.
 *
 * File positions: the first page goes at roundup(end of metadata, page_size), but the metadata's length
 * depends on how many samples get skipped, so pages are written where they would go with no skips, pointers
 * are kept relative to the first page, and at the end the pages are moved down (rarely: only when skips
 * shrink the metadata across a page boundary) and the relative pointers rebased. The allocation table is
 * rebuilt at the end from the records: every size is in the record or the field's shape except a JPEG's,
 * which is the distance to the next allocation on its page (or to the page's used end), since allocations
 * are packed back to back. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "data/beton_writer.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "beton_writer.c assumes a little-endian host"
#endif

#define CHUNK 32            /* samples per unit of parallel work */
#define TABLE_BUF 4096      /* allocation-table entries written per pwrite */

typedef struct Slot {
    int64_t chunk;          /* the chunk held, valid while done */
    int done;
    BetonValue *values;     /* CHUNK * n_fields */
    signed char *skip;      /* CHUNK: 1 when the sample function skipped it */
    Error *why;             /* CHUNK: the reason */
} Slot;

typedef struct Writer {
    const char *path;
    const BetonFieldSpec *specs;
    int nf;
    BetonType *types;
    size_t *offsets;
    size_t rec;             /* record size */
    int64_t *nbytes;        /* NDArray bytes per field (0 otherwise) */
    int64_t n;
    BetonSampleFn fn;
    void *ctx;

    /* pool */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int64_t next_chunk, packed, n_chunks;
    int window;
    Slot *slots;
    atomic_int stop;
    int failed;
    Error err;

    /* packing */
    int fd;                 /* the temporary file, write-only */
    const char *tmp_path;   /* its name, to read pages back when they move */
    uint32_t ps;
    uint64_t p0_guess;
    uint8_t *page;
    uint64_t used;          /* bytes used in the current page */
    int64_t n_pages;        /* pages started; the current one is n_pages-1 */
    uint32_t *page_used;    /* final used bytes of each page */
    size_t page_cap;
    uint8_t *records;
    int64_t n_written, n_allocs;
} Writer;

static bool is_var(BetonType t) {
    return t == BETON_RGB || t == BETON_BYTES || t == BETON_JSON || t == BETON_NDARRAY || t == BETON_TORCH;
}

/* Bytes one value takes in its page: JSON gets its NUL, an empty Bytes value one reserved byte. */
static uint64_t layout_size(BetonType t, const BetonValue *v) {
    if (t == BETON_JSON) return v->size + 1;
    if (t == BETON_BYTES && v->size == 0) return 1;
    return v->size;
}

/* Records the first failure (under the lock) and tells everyone to stop. */
static void fail_locked(Writer *w, const Error *e) {
    if (!w->failed) {
        w->failed = 1;
        w->err = *e;
    }
    atomic_store(&w->stop, 1);
    pthread_cond_broadcast(&w->cv_work);
    pthread_cond_broadcast(&w->cv_done);
}

static void free_values(BetonValue *v, int nf) {
    for (int f = 0; f < nf; f++) {
        free(v[f].data);
        v[f].data = NULL;
    }
}

/* Checks one value returned by the sample function against its field. */
static int check_value(const Writer *w, int64_t i, int f, const BetonValue *v, Error *err) {
    const char *name = w->specs[f].name;
    switch (w->types[f]) {
    case BETON_RGB:
        if (v->image_mode != 0 && v->image_mode != 1)
            return error_set(err, "%s: sample %lld field '%s': image mode %d is neither 0 (JPEG) nor 1 (raw)",
                             w->path, (long long)i, name, v->image_mode);
        if (v->width < 1 || v->width > 65535 || v->height < 1 || v->height > 65535)
            return error_set(err, "%s: sample %lld field '%s': image size %dx%d is outside 1..65535 (FFCV stores "
                             "u16)", w->path, (long long)i, name, v->width, v->height);
        if (!v->data || v->size == 0)
            return error_set(err, "%s: sample %lld field '%s': no image data", w->path, (long long)i, name);
        if (v->image_mode == 1 && v->size != (uint64_t)v->width * (uint64_t)v->height * 3u)
            return error_set(err, "%s: sample %lld field '%s': raw %dx%d image has %llu bytes, expected %llu",
                             w->path, (long long)i, name, v->width, v->height, (unsigned long long)v->size,
                             (unsigned long long)v->width * (unsigned long long)v->height * 3ull);
        return 0;
    case BETON_BYTES:
    case BETON_JSON:
        if (v->size > 0 && !v->data)
            return error_set(err, "%s: sample %lld field '%s': %llu bytes but no data", w->path, (long long)i,
                             name, (unsigned long long)v->size);
        return 0;
    case BETON_NDARRAY:
    case BETON_TORCH:
        if (!v->data || v->size != (uint64_t)w->nbytes[f])
            return error_set(err, "%s: sample %lld field '%s': array has %llu bytes, the field's dtype and "
                             "shape need %lld", w->path, (long long)i, name,
                             (unsigned long long)(v->data ? v->size : 0), (long long)w->nbytes[f]);
        return 0;
    default: return 0;
    }
}

/* Thread body: fills chunk slots with the sample function's values. */
static void *worker_main(void *arg) {
    Writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!atomic_load(&w->stop) && w->next_chunk < w->n_chunks && w->next_chunk >= w->packed + w->window)
            pthread_cond_wait(&w->cv_work, &w->mu);
        if (atomic_load(&w->stop) || w->next_chunk >= w->n_chunks) break;
        int64_t c = w->next_chunk++;
        pthread_mutex_unlock(&w->mu);

        Slot *s = &w->slots[c % w->window];
        int64_t first = c * CHUNK, cnt = w->n - first < CHUNK ? w->n - first : CHUNK;
        Error e;
        int fatal = 0;
        for (int64_t j = 0; j < cnt && !fatal && !atomic_load(&w->stop); j++) {
            BetonValue *v = s->values + j * w->nf;
            memset(v, 0, sizeof *v * (size_t)w->nf);
            Error se;
            se.msg[0] = '\0';
            int rc = w->fn(w->ctx, first + j, v, &se);
            s->skip[j] = 0;
            if (rc == 1) {
                s->skip[j] = 1;
                s->why[j] = se;
                if (!se.msg[0]) snprintf(s->why[j].msg, sizeof s->why[j].msg, "skipped by the sample function");
                free_values(v, w->nf);
            } else if (rc != 0) {
                error_set(&e, "%s: sample %lld: %s", w->path, (long long)(first + j),
                          se.msg[0] ? se.msg : "the sample function failed");
                fatal = 1;
            } else {
                for (int f = 0; f < w->nf && !fatal; f++)
                    if (check_value(w, first + j, f, &v[f], &e)) fatal = 1;
            }
        }
        pthread_mutex_lock(&w->mu);
        if (fatal) {
            fail_locked(w, &e);
        } else if (!atomic_load(&w->stop)) {
            s->chunk = c;
            s->done = 1;
            pthread_cond_broadcast(&w->cv_done);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ packing */

static int pwrite_all(const Writer *w, const void *buf, size_t len, uint64_t off, Error *err) {
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t k = pwrite(w->fd, p, len, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return error_set(err, "%s: write failed: %s", w->path, k < 0 ? strerror(errno) : "no progress");
        p += k;
        len -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* Writes the current page in full (zero tail) where it goes with no skips, and clears the buffer. */
static int flush_page(Writer *w, Error *err) {
    if (w->n_pages == 0) return 0;
    uint64_t off = w->p0_guess + (uint64_t)(w->n_pages - 1) * w->ps;
    if (pwrite_all(w, w->page, w->ps, off, err)) return -1;
    memset(w->page, 0, (size_t)w->used);
    return 0;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Places sample src (output index w->n_written) into the current page, or a fresh one, and fills its
 * record with pointers relative to the first page; frees its values' data. */
static int pack_sample(Writer *w, int64_t src, BetonValue *v, Error *err) {
    uint64_t need = 0;
    int allocs = 0;
    for (int f = 0; f < w->nf; f++)
        if (is_var(w->types[f])) {
            need += layout_size(w->types[f], &v[f]);
            allocs++;
        }
    if (need > w->ps)
        return error_set(err, "%s: sample %lld needs %llu bytes of data but one page holds %u; write with a larger "
                         "--page_size (a power of two)", w->path, (long long)src, (unsigned long long)need, w->ps);
    if (allocs > 0 && (w->n_pages == 0 || w->used + need > w->ps)) {
        if (flush_page(w, err)) return -1;
        if ((size_t)w->n_pages == w->page_cap) {
            size_t cap = w->page_cap ? 2 * w->page_cap : 64;
            uint32_t *p = realloc(w->page_used, cap * sizeof *p);
            if (!p) return error_set(err, "%s: out of memory", w->path);
            w->page_used = p;
            w->page_cap = cap;
        }
        w->page_used[w->n_pages++] = 0;
        w->used = 0;
    }
    uint8_t *r = w->records + (uint64_t)w->n_written * w->rec;
    for (int f = 0; f < w->nf; f++) {
        uint8_t *p = r + w->offsets[f];
        BetonType t = w->types[f];
        if (t == BETON_INT) {
            memcpy(p, &v[f].i, 8);
            continue;
        }
        if (t == BETON_FLOAT) {
            memcpy(p, &v[f].f, 8);
            continue;
        }
        uint64_t rel = (uint64_t)(w->n_pages - 1) * w->ps + w->used;
        if (v[f].size) memcpy(w->page + w->used, v[f].data, (size_t)v[f].size);
        w->used += layout_size(t, &v[f]);
        if (t == BETON_RGB) {
            p[0] = (uint8_t)v[f].image_mode;
            put16(p + 1, (uint16_t)v[f].width);
            put16(p + 3, (uint16_t)v[f].height);
            put64(p + 5, rel);
        } else if (t == BETON_BYTES || t == BETON_JSON) {
            put64(p, rel);
            put64(p + 8, t == BETON_JSON ? v[f].size + 1 : v[f].size); /* JSON's size counts its NUL */
        } else {
            put64(p, rel);
        }
    }
    if (allocs > 0) w->page_used[w->n_pages - 1] = (uint32_t)w->used;
    free_values(v, w->nf);
    w->n_written++;
    w->n_allocs += allocs;
    return 0;
}

/* Moves the n_pages pages from p0_guess down to p0 (p0 < p0_guess, both multiples of the page size),
 * reading them back through a second, read-only descriptor of the temporary file. */
static int move_pages(Writer *w, uint64_t p0, Error *err) {
    int rfd = open(w->tmp_path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) return error_set(err, "%s: cannot read back the temporary file: %s", w->path, strerror(errno));
    int rc = 0;
    for (int64_t k = 0; k < w->n_pages && rc == 0; k++) {
        uint64_t from = w->p0_guess + (uint64_t)k * w->ps, to = p0 + (uint64_t)k * w->ps;
        size_t got = 0;
        while (got < w->ps && rc == 0) {
            ssize_t r = pread(rfd, w->page + got, w->ps - got, (off_t)(from + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                rc = error_set(err, "%s: cannot read back page %lld: %s", w->path, (long long)k,
                               r < 0 ? strerror(errno) : "short file");
            else got += (size_t)r;
        }
        if (rc == 0) rc = pwrite_all(w, w->page, w->ps, to, err);
    }
    close(rfd);
    return rc;
}

/* Allocation-table output: a buffer of entries flushed to the file at offset a. */
typedef struct TableOut {
    uint8_t *buf;
    int64_t nbuf, emitted;
    uint64_t a, p0;
} TableOut;

static int table_push(Writer *w, TableOut *t, uint64_t sid, uint64_t rel_ptr, uint64_t size, Error *err) {
    uint8_t *e = t->buf + t->nbuf * BETON_ALLOC_ENTRY_SIZE;
    put64(e, sid);
    put64(e + 8, rel_ptr + t->p0);
    put64(e + 16, size);
    if (++t->nbuf < TABLE_BUF) return 0;
    int rc = pwrite_all(w, t->buf, (size_t)t->nbuf * BETON_ALLOC_ENTRY_SIZE,
                        t->a + (uint64_t)t->emitted * BETON_ALLOC_ENTRY_SIZE, err);
    t->emitted += t->nbuf;
    t->nbuf = 0;
    return rc;
}

/* Streams the allocation table to offset a: one entry per allocation in (sample, field) order, pointers
 * rebased by p0 (the records still hold relative pointers). A JPEG's size is the distance to the next
 * allocation on its page, or to the page's used end when it is the page's last allocation. */
static int write_table(Writer *w, uint64_t p0, uint64_t a, Error *err) {
    TableOut t = {.buf = malloc((size_t)TABLE_BUF * BETON_ALLOC_ENTRY_SIZE), .a = a, .p0 = p0};
    if (!t.buf) return error_set(err, "%s: out of memory", w->path);
    bool have = false, pend_jpeg = false;
    uint64_t pend_sid = 0, pend_ptr = 0, pend_size = 0;
    int rc = 0;
    for (int64_t s = 0; s < w->n_written && rc == 0; s++) {
        const uint8_t *r = w->records + (uint64_t)s * w->rec;
        for (int f = 0; f < w->nf && rc == 0; f++) {
            BetonType ty = w->types[f];
            if (!is_var(ty)) continue;
            const uint8_t *p = r + w->offsets[f];
            uint64_t ptr, size;
            bool jpeg = false;
            if (ty == BETON_RGB) {
                uint16_t wd, ht;
                memcpy(&wd, p + 1, 2);
                memcpy(&ht, p + 3, 2);
                ptr = get64(p + 5);
                jpeg = p[0] == 0;
                size = (uint64_t)wd * ht * 3u; /* raw; a JPEG's is found from the next pointer */
            } else if (ty == BETON_BYTES || ty == BETON_JSON) {
                ptr = get64(p);
                size = get64(p + 8);
            } else {
                ptr = get64(p);
                size = (uint64_t)w->nbytes[f];
            }
            if (have) {
                if (pend_jpeg) {
                    uint64_t page = pend_ptr / w->ps;
                    pend_size = ptr / w->ps == page ? ptr - pend_ptr : page * w->ps + w->page_used[page] - pend_ptr;
                }
                rc = table_push(w, &t, pend_sid, pend_ptr, pend_size, err);
            }
            have = true;
            pend_sid = (uint64_t)s;
            pend_ptr = ptr;
            pend_size = size;
            pend_jpeg = jpeg;
        }
    }
    if (rc == 0 && have) {
        if (pend_jpeg) {
            uint64_t page = pend_ptr / w->ps;
            pend_size = page * w->ps + w->page_used[page] - pend_ptr;
        }
        rc = table_push(w, &t, pend_sid, pend_ptr, pend_size, err);
    }
    if (rc == 0 && t.nbuf > 0) {
        rc = pwrite_all(w, t.buf, (size_t)t.nbuf * BETON_ALLOC_ENTRY_SIZE,
                        a + (uint64_t)t.emitted * BETON_ALLOC_ENTRY_SIZE, err);
        t.emitted += t.nbuf;
    }
    free(t.buf);
    if (rc == 0 && t.emitted != w->n_allocs)
        rc = error_set(err, "%s: internal error: %lld table entries for %lld allocations", w->path,
                       (long long)t.emitted, (long long)w->n_allocs);
    return rc;
}

/* Writes header, descriptors, metadata and table around the pages already written; returns the file size. */
static int finalize(Writer *w, uint64_t *file_size, Error *err) {
    uint64_t m = BETON_HEADER_SIZE + (uint64_t)BETON_DESC_SIZE * (uint64_t)w->nf;
    uint64_t d = m + (uint64_t)w->n_written * w->rec, p0 = 0, a = d;
    if (w->n_pages > 0) {
        if (flush_page(w, err)) return -1;
        p0 = (d + w->ps - 1) / w->ps * w->ps;
        if (p0 < w->p0_guess && move_pages(w, p0, err)) return -1;
        a = p0 + (uint64_t)w->n_pages * w->ps;
    }
    if (write_table(w, p0, a, err)) return -1;
    for (int64_t s = 0; s < w->n_written; s++)
        for (int f = 0; f < w->nf; f++) {
            if (!is_var(w->types[f])) continue;
            uint8_t *p = w->records + (uint64_t)s * w->rec + w->offsets[f] + (w->types[f] == BETON_RGB ? 5 : 0);
            put64(p, get64(p) + p0);
        }

    uint8_t hdr[BETON_HEADER_SIZE] = {0};
    put16(hdr, BETON_VERSION);
    put16(hdr + 2, (uint16_t)w->nf);
    memcpy(hdr + 4, &w->ps, 4);
    put64(hdr + 8, (uint64_t)w->n_written);
    put64(hdr + 16, a);
    if (pwrite_all(w, hdr, sizeof hdr, 0, err)) return -1;
    for (int f = 0; f < w->nf; f++) {
        uint8_t desc[BETON_DESC_SIZE] = {0};
        const BetonFieldSpec *s = &w->specs[f];
        desc[0] = (uint8_t)s->type;
        memcpy(desc + 1, s->name, strlen(s->name));
        if (s->type == BETON_NDARRAY || s->type == BETON_TORCH) {
            uint8_t *args = desc + 17;
            for (int k = 0; k < s->ndim; k++) put64(args + 8 * k, (uint64_t)s->shape[k]);
            char json[64];
            int len = snprintf(json, sizeof json, "[[\"\", \"%s\"]]", s->dtype);
            put64(args + 256, (uint64_t)len);
            memcpy(args + 264, json, (size_t)len);
        }
        if (pwrite_all(w, desc, sizeof desc, BETON_HEADER_SIZE + (uint64_t)f * BETON_DESC_SIZE, err)) return -1;
    }
    if (w->n_written > 0 && pwrite_all(w, w->records, (size_t)(d - m), m, err)) return -1;
    *file_size = a + (uint64_t)w->n_allocs * BETON_ALLOC_ENTRY_SIZE;
    if (ftruncate(w->fd, (off_t)*file_size) != 0)
        return error_set(err, "%s: cannot set the file size: %s", w->path, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------------------------------- setup */

/* Validates the field specs and page size; fills w's layout. */
static int check_specs(Writer *w, uint32_t ps, Error *err) {
    const char *path = w->path;
    if (w->nf < 1 || w->nf > 65535) return error_set(err, "%s: %d fields; a .beton file has 1 to 65535", path, w->nf);
    if (ps < BETON_MIN_PAGE_SIZE || (ps & (ps - 1)))
        return error_set(err, "%s: page size %u is not a power of two of at least %u (2 MiB, FFCV's minimum)", path,
                         ps, BETON_MIN_PAGE_SIZE);
    for (int f = 0; f < w->nf; f++) {
        const BetonFieldSpec *s = &w->specs[f];
        if (!s->name || !s->name[0] || strlen(s->name) > 16)
            return error_set(err, "%s: field %d: name '%s' must have 1 to 16 characters", path, f,
                             s->name ? s->name : "");
        for (int g = 0; g < f; g++)
            if (strcmp(w->specs[g].name, s->name) == 0)
                return error_set(err, "%s: two fields are called '%s'", path, s->name);
        if ((unsigned)s->type > BETON_TORCH)
            return error_set(err, "%s: field '%s' has unknown type %d", path, s->name, (int)s->type);
        w->types[f] = s->type;
        if (s->type != BETON_NDARRAY && s->type != BETON_TORCH) continue;
        int itemsize = s->dtype && strlen(s->dtype) < 32 ? beton_dtype_itemsize(s->dtype) : -1;
        if (itemsize <= 0)
            return error_set(err, "%s: field '%s': dtype '%s' is not a numpy descr such as \"<f4\"", path, s->name,
                             s->dtype ? s->dtype : "(none)");
        if (s->ndim < 1 || s->ndim > BETON_MAX_NDIM)
            return error_set(err, "%s: field '%s': %d dimensions; FFCV stores 1 to 32", path, s->name, s->ndim);
        int64_t nb = itemsize;
        for (int k = 0; k < s->ndim; k++) {
            if (s->shape[k] < 1 || s->shape[k] > (int64_t)ps / nb)
                return error_set(err, "%s: field '%s': shape entry %lld (dimension %d) is not between 1 and what "
                                 "fits in a page", path, s->name, (long long)s->shape[k], k);
            nb *= s->shape[k];
        }
        w->nbytes[f] = nb;
    }
    w->rec = beton_record_layout(w->types, w->nf, w->offsets);
    return 0;
}

/* Creates the pool's slots (values zeroed). */
static int make_slots(Writer *w, Error *err) {
    w->slots = xcalloc(err, (size_t)w->window, sizeof *w->slots);
    if (!w->slots) return -1;
    for (int k = 0; k < w->window; k++) {
        Slot *s = &w->slots[k];
        s->values = xcalloc(err, (size_t)CHUNK * (size_t)w->nf, sizeof *s->values);
        s->skip = xcalloc(err, CHUNK, sizeof *s->skip);
        s->why = xcalloc(err, CHUNK, sizeof *s->why);
        if (!s->values || !s->skip || !s->why) return -1;
    }
    return 0;
}

static void free_slots(Writer *w) {
    if (!w->slots) return;
    for (int k = 0; k < w->window; k++) {
        Slot *s = &w->slots[k];
        if (s->values)
            for (int j = 0; j < CHUNK; j++) free_values(s->values + j * w->nf, w->nf);
        free(s->values);
        free(s->skip);
        free(s->why);
    }
    free(w->slots);
}

/* Runs the pool and packs every chunk in order; returns 0 or -1 with w->err set. */
static int run(Writer *w, const BetonWriteOptions *o, int threads) {
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    int started = 0;
    Error e;
    if (!tid) {
        error_set(&w->err, "%s: out of memory", w->path);
        return -1;
    }
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, worker_main, w) != 0) break;
    pthread_mutex_lock(&w->mu);
    if (started == 0) {
        error_set(&e, "%s: cannot start a writer thread", w->path);
        fail_locked(w, &e);
    }
    for (int64_t c = 0; c < w->n_chunks && !atomic_load(&w->stop); c++) {
        Slot *s = &w->slots[c % w->window];
        while (!atomic_load(&w->stop) && !(s->done && s->chunk == c)) pthread_cond_wait(&w->cv_done, &w->mu);
        if (atomic_load(&w->stop)) break;
        pthread_mutex_unlock(&w->mu);

        int64_t first = c * CHUNK, cnt = w->n - first < CHUNK ? w->n - first : CHUNK;
        int rc = 0;
        for (int64_t j = 0; j < cnt && rc == 0; j++) {
            if (s->skip[j]) {
                if (o->on_skip) o->on_skip(o->ctx, first + j, s->why[j].msg);
                continue;
            }
            rc = pack_sample(w, first + j, s->values + j * w->nf, &e);
        }
        if (rc == 0 && o->progress) o->progress(o->ctx, first + cnt, w->n);

        pthread_mutex_lock(&w->mu);
        if (rc) {
            fail_locked(w, &e);
            break;
        }
        s->done = 0;
        w->packed = c + 1;
        pthread_cond_broadcast(&w->cv_work);
    }
    atomic_store(&w->stop, 1);
    pthread_cond_broadcast(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
    for (int k = 0; k < started; k++) pthread_join(tid[k], NULL);
    free(tid);
    return w->failed ? -1 : 0;
}

int beton_write(const char *path, const BetonFieldSpec *fields, int n_fields, int64_t n, BetonSampleFn fn, void *ctx,
                const BetonWriteOptions *opts, int64_t *written, Error *err) {
    BetonWriteOptions none = {0};
    const BetonWriteOptions *o = opts ? opts : &none;
    if (written) *written = 0;
    if (n < 0) return error_set(err, "%s: negative sample count %lld", path, (long long)n);
    if (!fields || !fn) return error_set(err, "%s: beton_write needs field specs and a sample function", path);
    Writer w = {.path = path, .specs = fields, .nf = n_fields, .n = n, .fn = fn, .ctx = ctx, .fd = -1};
    w.ps = o->page_size ? o->page_size : BETON_DEFAULT_PAGE_SIZE;
    int nf_alloc = n_fields > 0 ? n_fields : 1;
    w.types = xcalloc(err, (size_t)nf_alloc, sizeof *w.types);
    w.offsets = xcalloc(err, (size_t)nf_alloc, sizeof *w.offsets);
    w.nbytes = xcalloc(err, (size_t)nf_alloc, sizeof *w.nbytes);
    int rc = (!w.types || !w.offsets || !w.nbytes) ? error_prefix(err, "%s", path) : check_specs(&w, w.ps, err);

    uint64_t m = BETON_HEADER_SIZE + (uint64_t)BETON_DESC_SIZE * (uint64_t)n_fields;
    if (rc == 0 && (uint64_t)n > (UINT64_MAX / 2 - m) / w.rec)
        rc = error_set(err, "%s: %lld samples are too many for one file", path, (long long)n);
    if (rc == 0) {
        w.p0_guess = (m + (uint64_t)n * w.rec + w.ps - 1) / w.ps * w.ps;
        w.records = xcalloc(err, (size_t)n ? (size_t)n : 1, w.rec);
        w.page = xcalloc(err, 1, w.ps);
        if (!w.records || !w.page) rc = error_prefix(err, "%s: metadata of %lld samples", path, (long long)n);
    }
    int threads = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    w.n_chunks = (n + CHUNK - 1) / CHUNK;
    if (threads > w.n_chunks) threads = w.n_chunks > 0 ? (int)w.n_chunks : 1;
    w.window = 2 * threads;
    if (rc == 0) rc = make_slots(&w, err);

    AtomicFile af = {0};
    if (rc == 0) rc = atomic_open(&af, path, err);
    bool opened = rc == 0;
    if (opened) {
        w.fd = fileno(af.f);
        w.tmp_path = af.tmp_path;
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv_work, NULL);
        pthread_cond_init(&w.cv_done, NULL);
        atomic_init(&w.stop, 0);
        rc = run(&w, o, threads);
        if (rc) *err = w.err;
        pthread_cond_destroy(&w.cv_work);
        pthread_cond_destroy(&w.cv_done);
        pthread_mutex_destroy(&w.mu);
    }
    uint64_t size = 0;
    if (rc == 0) rc = finalize(&w, &size, err);
    if (opened) {
        if (rc == 0) rc = atomic_commit(&af, err);
        else atomic_abort(&af);
    }
    if (rc == 0 && written) *written = w.n_written;
    free_slots(&w);
    free(w.records);
    free(w.page);
    free(w.page_used);
    free(w.types);
    free(w.offsets);
    free(w.nbytes);
    return rc;
}
