/* stochastic_depth.c — stochastic depth on ResNet bottlenecks (Composer 0.9 algorithms/stochastic_depth):
 * recipe options and checks. */
#include <stddef.h>
#include <string.h>

#include "algorithms/algorithms.h"

static const char *const METHODS[] = {"block", "sample", NULL};
static const char *const DISTRIBUTIONS[] = {"uniform", "linear", NULL};

const FieldSpec STOCHASTIC_DEPTH_FIELDS[] = {
    {.name = "target_layer_name", .type = F_STRING, .offset = offsetof(StochasticDepthOptions, target_layer_name),
     .required = true, .help = "the block type to modify: ResNetBottleneck (ctrain also: ResNetBasicBlock)"},
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
    if (strcmp(o->target_layer_name, "ResNetBottleneck") != 0 && strcmp(o->target_layer_name, "ResNetBasicBlock") != 0)
        return error_set(err, "target_layer_name: ctrain implements ResNetBottleneck and ResNetBasicBlock (got '%s')",
                         o->target_layer_name);
    if (!(o->drop_rate >= 0 && o->drop_rate <= 1))
        return error_set(err, "drop_rate must be in [0, 1] (got %g)", o->drop_rate);
    if (o->drop_warmup.value < 0 || (o->drop_warmup.unit == TIME_DURATION && o->drop_warmup.value > 1))
        return error_set(err, "drop_warmup must be between 0 and 1dur");
    if (o->stochastic_method == SD_METHOD_SAMPLE && o->drop_warmup.value != 0)
        return error_set(err, "drop_warmup must be 0 with stochastic_method sample");
    return 0;
}


/* INIT: the model is built with drop layers on its residual branches. BATCH_START (block mode with a
 * drop_warmup): while batch < W = int(warmup in batches), the drop rates are batch / W of their values; from W
 * on they are left as they are, as Composer does (so they stay at (W-1)/W until the run ends or resumes). */
static int stochastic_depth_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    (void)self;
    (void)err;
    const StochasticDepthOptions *o = options;
    if (e == EVENT_INIT) {
        s->surgery.stochastic_depth = true;
        s->surgery.sd_method = o->stochastic_method;
        s->surgery.sd_drop_rate = o->drop_rate;
        s->surgery.sd_distribution = o->drop_distribution;
        s->surgery.sd_basic_blocks = strcmp(o->target_layer_name, "ResNetBasicBlock") == 0;
        return 0;
    }
    if (e == EVENT_BATCH_START && o->drop_warmup.set && o->drop_warmup.value > 0) {
        SchedContext ctx = {.steps_per_epoch = s->tl->steps_per_epoch, .batch_size = s->tl->batch_size,
                            .max_duration = s->tl->max_duration, .ssr = 1.0};
        int64_t warm = (int64_t)sched_time_to_batches(&o->drop_warmup, &ctx, 1.0);
        if (s->progress->batch < warm) model_set_drop_scale(s->model, (double)s->progress->batch / (double)warm);
    }
    return 0;
}

const AlgorithmImpl STOCHASTIC_DEPTH_IMPL = {.run = stochastic_depth_run};
