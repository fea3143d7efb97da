/* randaugment.c — RandAugment (Composer 0.9 algorithms/randaugment): recipe options and checks. */
#include <stddef.h>

#include "algorithms/algorithms.h"

static const char *const SETS[] = {"all", "safe", "original", NULL};

const FieldSpec RANDAUGMENT_FIELDS[] = {
    {.name = "severity", .type = F_INT, .offset = offsetof(RandaugmentOptions, severity), .def = "9",
     .help = "strength of the ops, 0-10"},
    {.name = "depth", .type = F_INT, .offset = offsetof(RandaugmentOptions, depth), .def = "2",
     .help = "ops applied to each image"},
    {.name = "augmentation_set", .type = F_ENUM, .offset = offsetof(RandaugmentOptions, augmentation_set),
     .def = "all", .enum_values = SETS, .help = "all, safe or original"},
    {0},
};

/* Checks severity in 0..10 and depth >= 0 (Composer's transform allows 0: no ops). */
int randaugment_check(const void *options, Error *err) {
    const RandaugmentOptions *o = options;
    if (o->severity < 0 || o->severity > 10)
        return error_set(err, "severity must be between 0 and 10 (got %d)", o->severity);
    if (o->depth < 0) return error_set(err, "depth must be >= 0 (got %d)", o->depth);
    return 0;
}

/* FIT_START: the training loader applies RandAugment to every image after its crop and flip, before
 * normalization (where Composer's RandAugmentTransform sits in the PIL pipeline). Image data (imagenet) only. */
static int randaugment_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    if (e != EVENT_FIT_START) return 0;
    const RandaugmentOptions *o = options;
    return loader_set_randaugment(s->train_loader, o->depth, o->severity, o->augmentation_set, err);
}

const AlgorithmImpl RANDAUGMENT_IMPL = {.run = randaugment_run};
