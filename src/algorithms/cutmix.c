/* cutmix.c — CutMix (Composer 0.9 algorithms/cutmix): recipe options and checks. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"

const FieldSpec CUTMIX_FIELDS[] = {
    {.name = "alpha", .type = F_DOUBLE, .offset = offsetof(CutmixOptions, alpha), .def = "1.0",
     .help = "Beta(alpha, alpha) distribution of the box area"},
    {.name = "interpolate_loss", .type = F_BOOL, .offset = offsetof(CutmixOptions, interpolate_loss),
     .def = "false", .help = "mix the two losses instead of the targets"},
    {.name = "uniform_sampling", .type = F_BOOL, .offset = offsetof(CutmixOptions, uniform_sampling),
     .def = "false", .help = "sample box centres so that every pixel is equally likely to be cut"},
    {0},
};

/* Checks alpha > 0. */
int cutmix_check(const void *options, Error *err) {
    const CutmixOptions *o = options;
    if (!(o->alpha > 0)) return error_set(err, "alpha must be > 0 (got %g)", o->alpha);
    return 0;
}

typedef struct Cutmix {
    float keep;               /* adjusted lambda: the fraction of each image that stays its own */
    int64_t *perm;
    size_t perm_cap;
    float *copy;
    size_t copy_cap;
} Cutmix;

/* numpy's randint(lo, hi): uniform in [lo, hi). */
static int64_t randint(Rng *r, int64_t lo, int64_t hi) { return lo + (int64_t)rng_below(r, (uint32_t)(hi - lo)); }
static int64_t clip(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }
/* Python's floor division by 2 */
static int64_t half_floor(int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

/* BEFORE_FORWARD: lambda ~ Beta(alpha, alpha); a box of side int(side * sqrt(1 - lambda)) around a random center
 * (clipped to the image) is filled from X[perm]; the kept fraction 1 - box area / image area weighs the targets.
 * BEFORE_LOSS: targets = keep * targets + (1 - keep) onehot(y[perm]). (Composer's _rand_bbox, _adjust_lambda.) */
static int cutmix_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    Cutmix *m = self;
    const CutmixOptions *o = options;
    if (e == EVENT_BEFORE_FORWARD) {
        size_t img = (size_t)s->h * s->w * s->c, bytes = (size_t)s->micro_n * img * sizeof(float);
        if (algo_grow((void **)&m->perm, &m->perm_cap, (size_t)s->micro_n * sizeof *m->perm, err) ||
            algo_grow((void **)&m->copy, &m->copy_cap, bytes, err))
            return -1;
        Rng r;
        algo_rng(&r, s, ALGO_SLOT_CUTMIX);
        rng_permutation(&r, m->perm, s->micro_n);
        double lambda = rng_beta(&r, o->alpha, o->alpha), ratio = sqrt(1.0 - lambda);
        int64_t H = s->h, W = s->w, cut_h = (int64_t)(H * ratio), cut_w = (int64_t)(W * ratio);
        int64_t cy, cx;
        if (o->uniform_sampling) {
            cy = randint(&r, half_floor(-cut_h), H + half_floor(cut_h));
            cx = randint(&r, half_floor(-cut_w), W + half_floor(cut_w));
        } else {
            cy = randint(&r, 0, H);
            cx = randint(&r, 0, W);
        }
        int64_t y1 = clip(cy - cut_h / 2, 0, H), y2 = clip(cy + cut_h / 2, 0, H);
        int64_t x1 = clip(cx - cut_w / 2, 0, W), x2 = clip(cx + cut_w / 2, 0, W);
        m->keep = (float)(1.0 - (double)((y2 - y1) * (x2 - x1)) / (double)(H * W));
        float *x = s->images + (size_t)s->micro_start * img;
        memcpy(m->copy, x, bytes);
        size_t row = (size_t)(x2 - x1) * s->c;
        for (int i = 0; i < s->micro_n; i++)
            for (int64_t yy = y1; yy < y2; yy++) {
                size_t at = ((size_t)yy * W + (size_t)x1) * s->c;
                memcpy(x + (size_t)i * img + at, m->copy + (size_t)m->perm[i] * img + at, row * sizeof(float));
            }
    } else if (e == EVENT_BEFORE_LOSS) {
        algo_mix_targets(s, m->keep, m->perm);
    }
    return 0;
}

static void cutmix_destroy(void *self, TrainState *s) {
    Cutmix *m = self;
    free(m->perm);
    free(m->copy);
}

const AlgorithmImpl CUTMIX_IMPL = {.state_size = sizeof(Cutmix), .run = cutmix_run, .destroy = cutmix_destroy};
