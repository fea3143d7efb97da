/* error.h — ctrain's one error-handling policy.
 *
 * Library functions return 0 on success and -1 on failure. On failure they fill an Error with one line
 * that names the file/key/shape at fault and says what to do; callers add context with error_prefix().
 * Only main() prints the message and exits. Nothing in src/ (outside src/cli) calls exit(). */
#ifndef CTRAIN_CORE_ERROR_H
#define CTRAIN_CORE_ERROR_H

#include <stddef.h>

typedef struct Error {
    char msg[1024];
} Error;

/* Formats the message into err (if err is not NULL) and returns -1, so `return error_set(err, ...)`. */
int error_set(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Puts "<context>: " in front of the message already in err; returns -1. */
int error_prefix(Error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation helpers that report failure through err instead of aborting. */
void *xcalloc(Error *err, size_t count, size_t size);

#endif
