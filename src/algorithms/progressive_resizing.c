/* progressive_resizing.c — progressive resizing (Composer 0.9 algorithms/progressive_resizing): recipe
 * options and checks. Only mode `resize` with resize_targets false is implemented. */
#include <stddef.h>

#include "algorithms/algorithms.h"

static const char *const MODES[] = {"resize", "crop", NULL};

const FieldSpec PROGRESSIVE_RESIZING_FIELDS[] = {
    {.name = "mode", .type = F_ENUM, .offset = offsetof(ProgressiveResizingOptions, mode), .def = "resize",
     .enum_values = MODES, .help = "resize (nearest-neighbour downscaling); crop is not implemented"},
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
    if (o->mode != PR_MODE_RESIZE)
        return error_set(err, "mode: only 'resize' is implemented in ctrain (got '%s')", MODES[o->mode]);
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
