/* mixup.c — MixUp (Composer 0.9 algorithms/mixup): options, checks, and the per-micro-batch mixing. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"

const FieldSpec MIXUP_FIELDS[] = {
    {.name = "alpha", .type = F_DOUBLE, .offset = offsetof(MixupOptions, alpha), .def = "0.2",
     .help = "Beta(alpha, alpha) distribution of the mixing coefficient"},
    {.name = "interpolate_loss", .type = F_BOOL, .offset = offsetof(MixupOptions, interpolate_loss),
     .def = "false", .help = "mix the two losses instead of the targets"},
    {0},
};

/* Checks alpha > 0. */
int mixup_check(const void *options, Error *err) {
    const MixupOptions *o = options;
    if (!(o->alpha > 0)) return error_set(err, "alpha must be > 0 (got %g)", o->alpha);
    return 0;
}

typedef struct Mixup {
    float lambda;             /* weight of the permuted sample */
    int64_t *perm;            /* [micro_n] */
    size_t perm_cap;
    float *copy;              /* [micro_n, h, w, c] the micro-batch before mixing */
    size_t copy_cap;
} Mixup;

/* BEFORE_FORWARD: lambda = min(z, 1 - z), z ~ Beta(alpha, alpha); X = (1 - lambda) X + lambda X[perm].
 * BEFORE_LOSS: targets = (1 - lambda) targets + lambda onehot(y[perm]) (y: the labels before any smoothing).
 * interpolate_loss mixes the two losses instead, which for both ctrain losses (linear in the target) is the same. */
static int mixup_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    Mixup *m = self;
    const MixupOptions *o = options;
    if (e == EVENT_BEFORE_FORWARD) {
        size_t img = (size_t)s->h * s->w * s->c, bytes = (size_t)s->micro_n * img * sizeof(float);
        if (algo_grow((void **)&m->perm, &m->perm_cap, (size_t)s->micro_n * sizeof *m->perm, err) ||
            algo_grow((void **)&m->copy, &m->copy_cap, bytes, err))
            return -1;
        Rng r;
        algo_rng(&r, s, ALGO_SLOT_MIXUP);
        double z = rng_beta(&r, o->alpha, o->alpha);
        m->lambda = (float)(z < 1 - z ? z : 1 - z);
        rng_permutation(&r, m->perm, s->micro_n);
        float *x = s->images + (size_t)s->micro_start * img;
        memcpy(m->copy, x, bytes);
        float keep = 1.0f - m->lambda;
        for (int i = 0; i < s->micro_n; i++) {
            float *xi = x + (size_t)i * img;
            const float *xp = m->copy + (size_t)m->perm[i] * img;
            for (size_t k = 0; k < img; k++) xi[k] = keep * xi[k] + m->lambda * xp[k];
        }
    } else if (e == EVENT_BEFORE_LOSS) {
        algo_mix_targets(s, 1.0f - m->lambda, m->perm);
    }
    return 0;
}

static void mixup_destroy(void *self, TrainState *s) {
    Mixup *m = self;
    free(m->perm);
    free(m->copy);
}

const AlgorithmImpl MIXUP_IMPL = {.state_size = sizeof(Mixup), .run = mixup_run, .destroy = mixup_destroy};
