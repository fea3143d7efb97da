/* mixup.c — MixUp (Composer 0.9 algorithms/mixup): recipe options and checks. */
#include <stddef.h>

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
