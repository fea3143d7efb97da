/* testutil.c — see testutil.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "testutil.h"

double tu_compare(const char *name, const float *got, const float *ref, size_t n, double atol, double rtol) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]), tol = atol + rtol * fabs((double)ref[i]);
        double r = d / tol;
        if (isnan(got[i]) != isnan(ref[i])) r = INFINITY;
        if (r > worst || isnan(r)) {
            worst = isnan(r) ? INFINITY : r;
            at = i;
        }
    }
    if (worst > 1.0)
        fprintf(stderr, "%s: element %zu of %zu: got %.8g, expected %.8g (%.3g x tolerance)\n", name, at, n,
                got[at], ref[at], worst);
    return worst;
}

double tu_rel_error(const float *got, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

void tu_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, RNG_SYNTHETIC, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(&r);
}

const char *tu_fixture(const char *name) {
    static char buf[4096];
    const char *dir = getenv("CTRAIN_FIXTURES");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : CTRAIN_SOURCE_DIR "/tests/fixtures", name);
    return buf;
}

const char *tu_shared(const char *name) {
    static char buf[4096];
    const char *dir = getenv("CTRAIN_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : CTRAIN_SOURCE_DIR "/../shared", name);
    return buf;
}

const char *tu_tempdir(void) {
    static char buf[256];
    const char *base = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/ctrain-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        abort();
    }
    return buf;
}

int tu_device_missing(const char *device) {
    Backend *be = NULL;
    Error err = {{0}};
    if (backend_create(device, 1, &be, &err) == 0) {
        backend_destroy(be);
        return 0;
    }
    /* only "there is no GPU here" skips; any other failure to start the backend is the test's to report */
    if (!strstr(err.msg, "no usable NVIDIA GPU") && !strstr(err.msg, "built without CUDA")) return 0;
    printf("skipped: no GPU (%s)\n", err.msg);
    return 1;
}
