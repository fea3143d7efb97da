/* blurpool.c — BlurPool (Zhang 2019) as Composer 0.9 applies it: recipe options and checks. */
#include <stddef.h>

#include "algorithms/algorithms.h"

const FieldSpec BLURPOOL_FIELDS[] = {
    {.name = "replace_convs", .type = F_BOOL, .offset = offsetof(BlurpoolOptions, replace_convs), .def = "true",
     .help = "blur before strided convolutions"},
    {.name = "replace_maxpools", .type = F_BOOL, .offset = offsetof(BlurpoolOptions, replace_maxpools),
     .def = "true", .help = "max-pool with stride 1, then blur with the pool's stride"},
    {.name = "blur_first", .type = F_BOOL, .offset = offsetof(BlurpoolOptions, blur_first), .def = "true",
     .help = "blur then strided conv (true), or stride-1 conv then strided blur (false, ~4x the cost)"},
    {.name = "min_channels", .type = F_INT, .offset = offsetof(BlurpoolOptions, min_channels), .def = "16",
     .help = "convs with fewer input channels are left alone"},
    {0},
};

/* Checks BlurPool's options. */
int blurpool_check(const void *options, Error *err) {
    const BlurpoolOptions *o = options;
    if (o->min_channels < 0) return error_set(err, "min_channels must be >= 0 (got %d)", o->min_channels);
    return 0;
}


/* INIT: the model is built with blurs (resnet_build_surgery does the surgery). */
static int blurpool_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    if (e != EVENT_INIT) return 0;
    const BlurpoolOptions *o = options;
    s->surgery.blurpool = true;
    s->surgery.blur_convs = o->replace_convs;
    s->surgery.blur_maxpools = o->replace_maxpools;
    s->surgery.blur_first = o->blur_first;
    s->surgery.blur_min_channels = o->min_channels;
    return 0;
}

const AlgorithmImpl BLURPOOL_IMPL = {.run = blurpool_run};
