/* error.c — formatting of the one-line error messages (see error.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int error_set(Error *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int error_prefix(Error *err, const char *fmt, ...) {
    if (!err) return -1;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    size_t at = n < 0 ? 0 : (size_t)n;
    if (at + 2 < sizeof err->msg) {
        memcpy(err->msg + at, ": ", 2);
        at += 2;
        size_t room = sizeof err->msg - at - 1, len = strlen(old);
        memcpy(err->msg + at, old, len < room ? len : room);
        err->msg[at + (len < room ? len : room)] = 0;
    }
    return -1;
}

void *xcalloc(Error *err, size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) error_set(err, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}
