/* colout.c — ColOut (Composer 0.9 algorithms/colout): recipe options and checks. Only the batch-wise form
 * is implemented. */
#include <stddef.h>

#include "algorithms/algorithms.h"

static const char *const RESIZE_TARGET[] = {"auto", "true", "false", NULL};

const FieldSpec COLOUT_FIELDS[] = {
    {.name = "p_row", .type = F_DOUBLE, .offset = offsetof(ColoutOptions, p_row), .def = "0.15",
     .help = "fraction of rows dropped"},
    {.name = "p_col", .type = F_DOUBLE, .offset = offsetof(ColoutOptions, p_col), .def = "0.15",
     .help = "fraction of columns dropped"},
    {.name = "batch", .type = F_BOOL, .offset = offsetof(ColoutOptions, batch), .def = "true",
     .help = "the same rows/columns for the whole batch, on the device (false is not implemented)"},
    {.name = "resize_target", .type = F_ENUM, .offset = offsetof(ColoutOptions, resize_target), .def = "auto",
     .enum_values = RESIZE_TARGET, .help = "auto or false: targets are class labels"},
    {0},
};

/* Checks the fractions and rejects what ctrain does not implement. */
int colout_check(const void *options, Error *err) {
    const ColoutOptions *o = options;
    if (!(o->p_row >= 0 && o->p_row < 1)) return error_set(err, "p_row must be in [0, 1) (got %g)", o->p_row);
    if (!(o->p_col >= 0 && o->p_col < 1)) return error_set(err, "p_col must be in [0, 1) (got %g)", o->p_col);
    if (!o->batch)
        return error_set(err, "batch: false (per-image ColOut in the data loader) is not implemented in ctrain");
    if (o->resize_target == COLOUT_TARGET_TRUE)
        return error_set(err, "resize_target: true is not implemented in ctrain (targets are class labels)");
    return 0;
}
