/* squeeze_excite.c — squeeze-and-excitation blocks (Composer 0.9 algorithms/squeeze_excite): recipe options
 * and checks. */
#include <stddef.h>

#include "algorithms/algorithms.h"

const FieldSpec SQUEEZE_EXCITE_FIELDS[] = {
    {.name = "latent_channels", .type = F_DOUBLE, .offset = offsetof(SqueezeExciteOptions, latent_channels),
     .def = "64", .help = "width of the SE bottleneck (< 1: a fraction of the conv's channels)"},
    {.name = "min_channels", .type = F_INT, .offset = offsetof(SqueezeExciteOptions, min_channels), .def = "128",
     .help = "convs with fewer output channels get no SE block"},
    {0},
};

/* Checks latent_channels > 0 and min_channels >= 0. */
int squeeze_excite_check(const void *options, Error *err) {
    const SqueezeExciteOptions *o = options;
    if (!(o->latent_channels > 0))
        return error_set(err, "latent_channels must be > 0 (got %g)", o->latent_channels);
    if (o->min_channels < 0) return error_set(err, "min_channels must be >= 0 (got %d)", o->min_channels);
    return 0;
}


/* INIT: the model is built with squeeze-excite blocks (resnet_build_surgery). */
static int squeeze_excite_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    if (e != EVENT_INIT) return 0;
    const SqueezeExciteOptions *o = options;
    s->surgery.squeeze_excite = true;
    s->surgery.se_latent_channels = o->latent_channels;
    s->surgery.se_min_channels = o->min_channels;
    return 0;
}

const AlgorithmImpl SQUEEZE_EXCITE_IMPL = {.run = squeeze_excite_run};
