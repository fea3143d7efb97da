/* progressive_resizing.c — progressive resizing (Composer 0.9 algorithms/progressive_resizing): options,
 * checks, and the shrinking of training batches, by nearest-neighbour downscaling (mode resize) or by one random
 * crop for the whole batch (mode crop). resize_targets must be false: ctrain's targets are class labels. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"

static const char *const MODES[] = {"resize", "crop", NULL};

const FieldSpec PROGRESSIVE_RESIZING_FIELDS[] = {
    {.name = "mode", .type = F_ENUM, .offset = offsetof(ProgressiveResizingOptions, mode), .def = "resize",
     .enum_values = MODES, .help = "resize (nearest-neighbour downscaling) or crop (one random crop per batch)"},
    {.name = "initial_scale", .type = F_DOUBLE, .offset = offsetof(ProgressiveResizingOptions, initial_scale),
     .def = "0.5", .help = "image scale at the start"},
    {.name = "finetune_fraction", .type = F_DOUBLE,
     .offset = offsetof(ProgressiveResizingOptions, finetune_fraction), .def = "0.2",
     .help = "fraction of training at full size at the end"},
    {.name = "delay_fraction", .type = F_DOUBLE, .offset = offsetof(ProgressiveResizingOptions, delay_fraction),
     .def = "0.5", .help = "fraction of training at initial_scale at the start"},
    {.name = "size_increment", .type = F_INT, .offset = offsetof(ProgressiveResizingOptions, size_increment),
     .def = "4", .help = "sizes are rounded to multiples of this"},
    {.name = "resize_targets", .type = F_BOOL, .offset = offsetof(ProgressiveResizingOptions, resize_targets),
     .def = "false", .help = "must be false: targets are class labels"},
    {0},
};

/* Checks the fractions and rejects what ctrain does not implement. */
int progressive_resizing_check(const void *options, Error *err) {
    const ProgressiveResizingOptions *o = options;
    if (o->resize_targets)
        return error_set(err, "resize_targets: true is not implemented in ctrain (targets are class labels)");
    if (!(o->initial_scale > 0 && o->initial_scale <= 1))
        return error_set(err, "initial_scale must be in (0, 1] (got %g)", o->initial_scale);
    if (!(o->delay_fraction >= 0 && o->delay_fraction <= 1))
        return error_set(err, "delay_fraction must be in [0, 1] (got %g)", o->delay_fraction);
    if (!(o->finetune_fraction >= 0 && o->finetune_fraction <= 1))
        return error_set(err, "finetune_fraction must be in [0, 1] (got %g)", o->finetune_fraction);
    if (o->delay_fraction + o->finetune_fraction > 1)
        return error_set(err, "delay_fraction + finetune_fraction must be <= 1 (got %g)",
                         o->delay_fraction + o->finetune_fraction);
    if (o->size_increment < 1) return error_set(err, "size_increment must be >= 1 (got %d)", o->size_increment);
    return 0;
}

/* The scale factor Composer passes to F.interpolate: w' / W with w' = round(W * scale / size_increment) *
 * size_increment (Python's round: halves to even), scale growing linearly from initial_scale after delay_fraction
 * to 1 at 1 - finetune_fraction. */
static double pinned_scale(const ProgressiveResizingOptions *o, int full, double f) {
    double s = 0;
    if (f >= o->delay_fraction) {
        double span = 1.0 - o->finetune_fraction - o->delay_fraction;
        s = span > 0 ? (f - o->delay_fraction) / span : 1.0;
        if (s > 1) s = 1;
    }
    double scale = o->initial_scale + (1.0 - o->initial_scale) * s;
    return nearbyint(full * scale / o->size_increment) * o->size_increment / full;
}

/* The side a batch of full x full images shrinks to: F.interpolate's output size floor(input * factor) in resize
 * mode, int(factor * input) in crop mode (the same number, both in double). */
int progressive_resizing_size(const ProgressiveResizingOptions *o, int full, double f) {
    double factor = pinned_scale(o, full, f);
    return factor >= 1.0 ? full : (int)floor((double)full * factor);
}

typedef struct Resize {
    float *copy;
    size_t copy_cap;
} Resize;

/* The fraction of training done, as Composer's state.get_elapsed_duration() (epochs when max_duration is in
 * epochs, so the size is constant within an epoch). */
static double elapsed(const TrainState *s) {
    if (s->tl->max_duration.unit == TIME_EPOCH) return (double)s->progress->epoch / s->tl->max_duration.value;
    return (double)s->progress->batch / (double)s->tl->total_batches;
}

/* Crop mode, as Composer's _make_crop: the oh x ow window at (top, left) of every image, with top and left drawn
 * once for the batch as torch.randint(H - oh) and torch.randint(W - ow) do, uniform on [0, H - oh) (so never
 * the last offset, H - oh). In place: every row moves to a lower address. */
static void crop_batch(TrainState *s, int oh, int ow) {
    Rng r;
    algo_rng_batch(&r, s, ALGO_SLOT_PROGRESSIVE_RESIZING);
    int top = (int)rng_below(&r, (uint32_t)(s->h - oh)), left = (int)rng_below(&r, (uint32_t)(s->w - ow));
    size_t row = (size_t)ow * s->c * sizeof(float);
    for (int i = 0; i < s->n; i++)
        for (int y = 0; y < oh; y++)
            memmove(s->images + ((size_t)i * oh + y) * ow * s->c,
                    s->images + (((size_t)i * s->h + top + y) * s->w + left) * s->c, row);
}

/* Resize mode, exactly as F.interpolate(X, scale_factor=factor, mode='nearest', recompute_scale_factor=False):
 * source index floor(out * (float)(1 / factor)), from a copy of the batch in m. */
static int downscale_batch(Resize *m, TrainState *s, double factor, int oh, int ow, Error *err) {
    size_t bytes = (size_t)s->n * s->h * s->w * s->c * sizeof(float);
    if (algo_grow((void **)&m->copy, &m->copy_cap, bytes, err)) return -1;
    memcpy(m->copy, s->images, bytes);
    float inv = (float)(1.0 / factor);
    float *dst = s->images;
    for (int i = 0; i < s->n; i++)
        for (int y = 0; y < oh; y++) {
            int sy = (int)floorf((float)y * inv);
            if (sy > s->h - 1) sy = s->h - 1;
            for (int x = 0; x < ow; x++) {
                int sx = (int)floorf((float)x * inv);
                if (sx > s->w - 1) sx = s->w - 1;
                const float *p = m->copy + (((size_t)i * s->h + sy) * s->w + sx) * s->c;
                for (int c = 0; c < s->c; c++) *dst++ = p[c];
            }
        }
    return 0;
}

/* AFTER_DATALOADER: shrinks the training batch by the current factor to floor(H * factor) x floor(W * factor),
 * by downscale_batch (mode resize) or crop_batch (mode crop). */
static int resize_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    if (e != EVENT_AFTER_DATALOADER) return 0;
    const ProgressiveResizingOptions *o = options;
    double f = elapsed(s), factor = pinned_scale(o, s->w, f);
    if (factor >= 1.0) return 0;
    int oh = (int)floor((double)s->h * factor), ow = (int)floor((double)s->w * factor);
    if (oh < 1 || ow < 1)
        return error_set(err, "progressive_resizing: %dx%d images would shrink to nothing", s->h, s->w);
    if (o->mode == PR_MODE_CROP)
        crop_batch(s, oh, ow);
    else if (downscale_batch(self, s, factor, oh, ow, err))
        return -1;
    s->h = oh;
    s->w = ow;
    return 0;
}

static void resize_destroy(void *self, TrainState *s) { free(((Resize *)self)->copy); }

const AlgorithmImpl PROGRESSIVE_RESIZING_IMPL = {.state_size = sizeof(Resize), .run = resize_run,
                                                 .destroy = resize_destroy};
