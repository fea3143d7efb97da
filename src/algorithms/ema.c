/* ema.c — EMA of the weights and buffers (Composer 0.9 algorithms/ema): recipe options and checks. */
#include <stddef.h>

#include "algorithms/algorithms.h"

const FieldSpec EMA_FIELDS[] = {
    {.name = "half_life", .type = F_TIME, .offset = offsetof(EmaOptions, half_life), .def = "100ba",
     .help = "time for a weight's contribution to halve (ba or ep); 0.9 requires it, 0.7's default was 100ba"},
    {.name = "update_interval", .type = F_TIME, .offset = offsetof(EmaOptions, update_interval),
     .help = "time between EMA updates, in half_life's unit (default: 1 of that unit)"},
    {.name = "train_with_ema_weights", .type = F_BOOL, .offset = offsetof(EmaOptions, train_with_ema_weights),
     .def = "false", .help = "copy the EMA weights into the model after each update"},
    {0},
};

/* Checks EMA's options: ba or ep times, both in the same unit, both > 0. */
int ema_check(const void *options, Error *err) {
    const EmaOptions *o = options;
    const TimeSpec *h = &o->half_life, *u = &o->update_interval;
    if (h->unit != TIME_BATCH && h->unit != TIME_EPOCH)
        return error_set(err, "half_life must be in ba or ep (e.g. 100ba)");
    if (h->value <= 0) return error_set(err, "half_life must be > 0");
    if (u->set && u->unit != h->unit)
        return error_set(err, "half_life and update_interval must be in the same unit (ba or ep)");
    if (u->set && u->value <= 0) return error_set(err, "update_interval must be > 0");
    return 0;
}
