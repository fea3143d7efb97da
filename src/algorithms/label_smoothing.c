/* label_smoothing.c — label smoothing (Composer 0.9 algorithms/label_smoothing): recipe options and checks. */
#include <stddef.h>

#include "algorithms/algorithms.h"

const FieldSpec LABEL_SMOOTHING_FIELDS[] = {
    {.name = "smoothing", .type = F_DOUBLE, .offset = offsetof(LabelSmoothingOptions, smoothing), .def = "0.1",
     .help = "targets become onehot*(1-smoothing) + smoothing/num_classes"},
    {0},
};

/* Checks 0 <= smoothing < 1. */
int label_smoothing_check(const void *options, Error *err) {
    const LabelSmoothingOptions *o = options;
    if (!(o->smoothing >= 0 && o->smoothing < 1))
        return error_set(err, "smoothing must be in [0, 1) (got %g)", o->smoothing);
    return 0;
}
