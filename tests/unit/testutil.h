/* testutil.h — helpers shared by the unit tests (cmocka): tolerant array comparison, random fills,
 * fixture paths and temporary folders. */
#ifndef CTRAIN_TESTS_TESTUTIL_H
#define CTRAIN_TESTS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Worst element of |a-b| / (atol + rtol*|ref|) over n floats (<= 1 means within tolerance); prints the
 * first offending index with its values when > 1. name labels the message. */
double tu_compare(const char *name, const float *got, const float *ref, size_t n, double atol, double rtol);
/* Max |a-b| / max(|ref|) over n floats: relative error of the whole tensor. */
double tu_rel_error(const float *got, const float *ref, size_t n);
/* Fills x[n] with uniform values in [lo, hi) from a deterministic stream named by seed. */
void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed);
/* Path of a committed fixture file (tests/fixtures/<name>), in a static buffer. */
const char *tu_fixture(const char *name);
/* Path under ../shared (e.g. "reference/composer-recipes/resnet50_mild.yaml"), in a static buffer. */
const char *tu_shared(const char *name);
/* Makes a fresh empty temporary folder and returns its path (static buffer, valid until the next call). */
const char *tu_tempdir(void);

/* The exit status ctest reports as "skipped" (SKIP_RETURN_CODE). */
#define TU_SKIPPED 77
/* True (after printing "skipped: no GPU (...)") when the backend called device cannot be created here. */
int tu_device_missing(const char *device);

/* cmocka assertion that a tu_compare result is within tolerance. */
#define assert_close(name, got, ref, n, atol, rtol) \
    assert_true(tu_compare((name), (got), (ref), (n), (atol), (rtol)) <= 1.0)

#endif
