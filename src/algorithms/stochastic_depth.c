/* stochastic_depth.c — stochastic depth on ResNet bottlenecks (Composer 0.9 algorithms/stochastic_depth):
 * recipe options and checks. */
#include <stddef.h>
#include <string.h>

#include "algorithms/algorithms.h"

static const char *const METHODS[] = {"block", "sample", NULL};
static const char *const DISTRIBUTIONS[] = {"uniform", "linear", NULL};

const FieldSpec STOCHASTIC_DEPTH_FIELDS[] = {
    {.name = "target_layer_name", .type = F_STRING, .offset = offsetof(StochasticDepthOptions, target_layer_name),
     .required = true, .help = "the block type to modify: ResNetBottleneck"},
    {.name = "stochastic_method", .type = F_ENUM, .offset = offsetof(StochasticDepthOptions, stochastic_method),
     .def = "block", .enum_values = METHODS, .help = "block (drop whole branches) or sample (per sample)"},
    {.name = "drop_rate", .type = F_DOUBLE, .offset = offsetof(StochasticDepthOptions, drop_rate), .def = "0.2",
     .help = "drop probability of the last block"},
    {.name = "drop_distribution", .type = F_ENUM, .offset = offsetof(StochasticDepthOptions, drop_distribution),
     .def = "linear", .enum_values = DISTRIBUTIONS, .help = "uniform or linear in the block's depth"},
    {.name = "drop_warmup", .type = F_TIME, .offset = offsetof(StochasticDepthOptions, drop_warmup),
     .def = "0.0dur", .help = "linear ramp of the drop rate from 0 (block method only)"},
    {.name = "use_same_gpu_seed", .type = F_BOOL, .offset = offsetof(StochasticDepthOptions, use_same_gpu_seed),
     .def = "true", .help = "Composer 0.7: the same block-drop decisions on every rank"},
    {0},
};

/* Checks the target layer, drop rate and warmup. */
int stochastic_depth_check(const void *options, Error *err) {
    const StochasticDepthOptions *o = options;
    if (strcmp(o->target_layer_name, "ResNetBottleneck") != 0)
        return error_set(err, "target_layer_name: ctrain implements ResNetBottleneck only (got '%s')",
                         o->target_layer_name);
    if (!(o->drop_rate >= 0 && o->drop_rate <= 1))
        return error_set(err, "drop_rate must be in [0, 1] (got %g)", o->drop_rate);
    if (o->drop_warmup.value < 0 || (o->drop_warmup.unit == TIME_DURATION && o->drop_warmup.value > 1))
        return error_set(err, "drop_warmup must be between 0 and 1dur");
    if (o->stochastic_method == SD_METHOD_SAMPLE && o->drop_warmup.value != 0)
        return error_set(err, "drop_warmup must be 0 with stochastic_method sample");
    return 0;
}
