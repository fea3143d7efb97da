/* order.c — epoch orders and sharding (see order.h). */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/order.h"

int64_t order_per_rank(int64_t n, int world) {
    if (world < 1) world = 1;
    return (n + world - 1) / world;
}

/* FFCV's QUASI_RANDOM: pages in random order, each page's samples shuffled, outputs drawn from a window of
 * active pages. full [n] receives the whole epoch's order. */
static int quasi_random(uint64_t seed, int64_t epoch, int64_t n, int window, OrderPageFn page_of, const void *ctx,
                        int64_t *full, Error *err) {
    /* group samples by page: sort (page, sample) pairs */
    int64_t *page = malloc((size_t)n * sizeof *page), *idx = malloc((size_t)n * sizeof *idx);
    if (!page || !idx) {
        free(page);
        free(idx);
        return error_set(err, "out of memory for the quasi-random order of %lld samples", (long long)n);
    }
    int64_t max_page = -1;
    for (int64_t s = 0; s < n; s++) {
        page[s] = page_of(ctx, s);
        if (page[s] > max_page) max_page = page[s];
    }
    /* counting sort by page (samples without a page go to one extra group) */
    int64_t groups = max_page + 2;
    int64_t *start = calloc((size_t)groups + 1, sizeof *start);
    if (!start) {
        free(page);
        free(idx);
        return error_set(err, "out of memory");
    }
    for (int64_t s = 0; s < n; s++) start[(page[s] < 0 ? max_page + 1 : page[s]) + 1]++;
    for (int64_t g = 0; g < groups; g++) start[g + 1] += start[g];
    int64_t *fill = malloc((size_t)groups * sizeof *fill);
    if (!fill) {
        free(page);
        free(idx);
        free(start);
        return error_set(err, "out of memory");
    }
    memcpy(fill, start, (size_t)groups * sizeof *fill);
    for (int64_t s = 0; s < n; s++) idx[fill[page[s] < 0 ? max_page + 1 : page[s]]++] = s;
    /* shuffle inside each group, then the order of the non-empty groups */
    Rng r;
    int64_t ne = 0;
    for (int64_t g = 0; g < groups; g++) {
        int64_t len = start[g + 1] - start[g];
        if (len == 0) continue;
        rng_init(&r, seed, RNG_SHUFFLE, (uint64_t)epoch, (uint64_t)g + 1);
        for (int64_t i = len - 1; i > 0; i--) {
            int64_t j = (int64_t)rng_below(&r, (uint32_t)(i + 1)), t = idx[start[g] + i];
            idx[start[g] + i] = idx[start[g] + j];
            idx[start[g] + j] = t;
        }
        page[ne++] = g; /* reuse page[] as the list of non-empty groups */
    }
    rng_init(&r, seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
    for (int64_t i = ne - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint32_t)(i + 1)), t = page[i];
        page[i] = page[j];
        page[j] = t;
    }
    /* draw from a window of active groups; fill[g] = next unread position of group g */
    memcpy(fill, start, (size_t)groups * sizeof *fill);
    int64_t *active = malloc((size_t)(window > 0 ? window : 1) * sizeof *active), na = 0, next = 0;
    if (!active) {
        free(page);
        free(idx);
        free(start);
        free(fill);
        return error_set(err, "out of memory");
    }
    for (int64_t out = 0; out < n; out++) {
        while (na < window && next < ne) active[na++] = page[next++];
        int64_t k = (int64_t)rng_below(&r, (uint32_t)na), g = active[k];
        full[out] = idx[fill[g]++];
        if (fill[g] == start[g + 1]) active[k] = active[--na];
    }
    free(active);
    free(page);
    free(idx);
    free(start);
    free(fill);
    return 0;
}

int order_make(LoaderOrder kind, uint64_t seed, int64_t epoch, int64_t n, int rank, int world, int window,
               OrderPageFn page_of, const void *ctx, int64_t *out, Error *err) {
    if (world < 1) world = 1;
    int64_t per = order_per_rank(n, world);
    int64_t *full = world == 1 ? out : malloc((size_t)(n ? n : 1) * sizeof *full);
    if (!full) return error_set(err, "out of memory for the order of %lld samples", (long long)n);
    if (kind == ORDER_QUASI_RANDOM && page_of) {
        if (quasi_random(seed, epoch, n, window > 0 ? window : 1, page_of, ctx, full, err)) {
            if (full != out) free(full);
            return -1;
        }
    } else if (kind == ORDER_RANDOM || kind == ORDER_QUASI_RANDOM) {
        Rng r;
        rng_init(&r, seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
        rng_permutation(&r, full, n);
    } else {
        for (int64_t i = 0; i < n; i++) full[i] = i;
    }
    if (full != out) {
        /* pad by repeating the start (DistributedSampler), then take every world-th */
        for (int64_t i = 0; i < per; i++) out[i] = full[(rank + i * world) % n];
        free(full);
    }
    return 0;
}
