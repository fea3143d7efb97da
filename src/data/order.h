/* order.h — the sample order of an epoch for one process: sequential, random (a permutation drawn from
 * (seed, SHUFFLE, epoch)), or quasi-random (FFCV's page-local order for data sets larger than RAM: samples
 * shuffled within each page, pages drawn from a small active set so a batch touches few pages). Sharding follows
 * torch's DistributedSampler: the order is padded by repeating its start to a multiple of world, and rank r
 * takes every world-th sample starting at r. */
#ifndef CTRAIN_DATA_ORDER_H
#define CTRAIN_DATA_ORDER_H

#include <stdint.h>

#include "core/error.h"
#include "data/loader.h"

/* Samples per rank: ceil(n / world). */
int64_t order_per_rank(int64_t n, int world);

/* The page of sample s (quasi-random order), or -1 when it has none. */
typedef int64_t (*OrderPageFn)(const void *ctx, int64_t s);

/* Fills out [order_per_rank(n, world)] with this rank's samples of the epoch. kind is ORDER_SEQUENTIAL,
 * ORDER_RANDOM or ORDER_QUASI_RANDOM (which needs page_of; window = pages kept active, FFCV: 2 x batch). */
int order_make(LoaderOrder kind, uint64_t seed, int64_t epoch, int64_t n, int rank, int world, int window,
               OrderPageFn page_of, const void *ctx, int64_t *out, Error *err);

#endif
