/* label_smoothing.c — label smoothing (Composer 0.9 algorithms/label_smoothing): at BEFORE_LOSS the targets become
 * targets * (1 - smoothing) + smoothing / num_classes. */
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

/* BEFORE_LOSS: targets = targets * (1 - s) + s / C (Composer's smooth_labels on the current targets). */
static int ls_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    if (e != EVENT_BEFORE_LOSS) return 0;
    const LabelSmoothingOptions *o = options;
    float keep = (float)(1.0 - o->smoothing), add = (float)(o->smoothing / s->classes);
    for (size_t i = 0; i < (size_t)s->micro_n * s->classes; i++) s->targets[i] = s->targets[i] * keep + add;
    return 0;
}

const AlgorithmImpl LABEL_SMOOTHING_IMPL = {.run = ls_run};
