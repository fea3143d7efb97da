/* rng.h — counter-based random numbers (Philox4x32-10).
 *
 * A stream is named by (seed, purpose, a, b): e.g. (seed, RNG_AUGMENT, epoch, sample index). The same name
 * always gives the same numbers, whatever thread draws them or in what order, which is what makes data
 * loading reproducible for any thread count and makes resuming exact without saving generator state. */
#ifndef CTRAIN_CORE_RNG_H
#define CTRAIN_CORE_RNG_H

#include <stdint.h>

/* What a stream is for; part of the counter so two purposes never share numbers. */
typedef enum RngPurpose {
    RNG_INIT = 1,    /* weight initialization: a = parameter index */
    RNG_SHUFFLE = 2, /* epoch order: a = epoch */
    RNG_AUGMENT = 3, /* per-sample augmentation: a = epoch, b = sample index */
    RNG_SYNTHETIC = 4, /* synthetic benchmark data */
    RNG_ALGO = 5,    /* algorithm randomness: a = algorithm slot, b = batch */
    RNG_RANDAUGMENT = 6, /* RandAugment's choices per training sample: a = epoch, b = sample index */
} RngPurpose;

typedef struct Rng {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0..1]: block index; ctr[2]: b; ctr[3]: purpose<<24 ^ a */
    uint32_t out[4];
    int used;        /* how many of out[] were consumed */
} Rng;

/* Starts the stream named (seed, purpose, a, b). */
void rng_init(Rng *r, uint64_t seed, RngPurpose purpose, uint64_t a, uint64_t b);
/* Next 32 random bits. */
uint32_t rng_u32(Rng *r);
/* Uniform float in [0, 1) with 24 random bits. */
float rng_uniform(Rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform_double(Rng *r);
/* Standard normal (Box–Muller, double precision). */
double rng_normal(Rng *r);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint32_t rng_below(Rng *r, uint32_t n);
/* Gamma(shape, 1) (Marsaglia and Tsang's method; shape > 0). */
double rng_gamma(Rng *r, double shape);
/* Beta(a, b) as Gamma(a) / (Gamma(a) + Gamma(b)). */
double rng_beta(Rng *r, double a, double b);
/* Fills perm[0..n) with a uniformly random permutation of 0..n-1 (Fisher–Yates). */
void rng_permutation(Rng *r, int64_t *perm, int64_t n);

#endif
