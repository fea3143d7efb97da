/* fsutil.h — file-system helpers: mkdir -p, atomic file writes (temp file + fsync + rename, so a reader never
 * sees half-written output), atomic symlink updates, whole-file reads.
 *
 * Usage of an atomic write:
 *     AtomicFile af;
 *     if (atomic_open(&af, path, err)) return -1;
 *     fwrite(..., af.f);                       // any number of writes; errors are checked at commit
 *     if (bad) { atomic_abort(&af); return -1; }
 *     return atomic_commit(&af, err);          // on failure the temp is removed and path is untouched */
#ifndef CTRAIN_CORE_FSUTIL_H
#define CTRAIN_CORE_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

/* Creates the folder path and any missing parents (mkdir -p); existing folders are fine. */
int fs_mkdirs(const char *path, Error *err);

/* A file being written under a temporary name next to its final path. */
typedef struct AtomicFile {
    FILE *f;          /* write through this */
    char *final_path; /* where it goes on commit */
    char *tmp_path;   /* ".<name>.tmp-XXXXXX" in the same folder */
} AtomicFile;

/* Creates a temporary file in path's folder and opens it for binary writing. On failure af is zeroed. */
int atomic_open(AtomicFile *af, const char *path, Error *err);

/* Flushes, fsyncs and closes the temp file, renames it onto the final path and fsyncs the folder. Any
 * write error seen on the stream fails the commit ("<path>: write failed: <reason>") and removes the temp.
 * af is zeroed afterwards either way, so a later atomic_abort is harmless. */
int atomic_commit(AtomicFile *af, Error *err);

/* Closes and removes the temp file, leaving the final path untouched; no-op on a zeroed af. */
void atomic_abort(AtomicFile *af);

/* Makes link_path a symlink to target, replacing an existing link atomically (temp link + rename). */
int fs_symlink_atomic(const char *target, const char *link_path, Error *err);

/* Reads a whole file into a malloc'ed buffer (*data, with a NUL byte after the *size bytes); free() it. */
int fs_read_all(const char *path, uint8_t **data, size_t *size, Error *err);

/* True when something (file, folder, valid link) exists at path. */
bool fs_exists(const char *path);

#endif
