/* cutmix.c — CutMix (Composer 0.9 algorithms/cutmix): recipe options and checks. */
#include <stddef.h>

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
