/* sam.c — sharpness-aware minimization (Composer 0.9 algorithms/sam): recipe options and checks. */
#include <stddef.h>

#include "algorithms/algorithms.h"

const FieldSpec SAM_FIELDS[] = {
    {.name = "rho", .type = F_DOUBLE, .offset = offsetof(SamOptions, rho), .def = "0.05",
     .help = "radius of the ascent step"},
    {.name = "epsilon", .type = F_DOUBLE, .offset = offsetof(SamOptions, epsilon), .def = "1.0e-12",
     .help = "added to the gradient norm"},
    {.name = "interval", .type = F_INT, .offset = offsetof(SamOptions, interval), .def = "1",
     .help = "SAM runs on every interval-th step"},
    {0},
};

/* Checks rho >= 0, epsilon >= 0, interval >= 1. */
int sam_check(const void *options, Error *err) {
    const SamOptions *o = options;
    if (!(o->rho >= 0)) return error_set(err, "rho must be >= 0 (got %g)", o->rho);
    if (!(o->epsilon >= 0)) return error_set(err, "epsilon must be >= 0 (got %g)", o->epsilon);
    if (o->interval < 1) return error_set(err, "interval must be >= 1 (got %d)", o->interval);
    return 0;
}
