/* timeline.c — recipe durations to batches (Composer 0.9 trainer.py + scheduler.py semantics). */
#include <math.h>
#include <string.h>

#include "data/loader.h"
#include "train/optim.h"
#include "train/timeline.h"

int timeline_compute(const Config *cfg, int64_t train_samples, Timeline *t, Error *err) {
    memset(t, 0, sizeof *t);
    t->train_samples = train_samples;
    t->batch_size = cfg->train_batch_size;
    if (t->batch_size < 1) return error_set(err, "train_batch_size must be >= 1 (got %d)", t->batch_size);
    int ga = config_grad_accum(cfg);
    t->grad_accum = ga < 1 ? 1 : ga;
    if (t->grad_accum > t->batch_size)
        return error_set(err, "grad_accum %d is larger than train_batch_size %d", t->grad_accum, t->batch_size);
    t->micro_batch = (t->batch_size + t->grad_accum - 1) / t->grad_accum;

    bool drop_last = true;
    const Choice *td = &cfg->train_dataset;
    if (td->entry && strcmp(td->entry->name, "imagenet") == 0) drop_last = ((const ImagenetOptions *)td->options)->drop_last;
    else if (td->entry) drop_last = ((const ArrayDatasetOptions *)td->options)->drop_last;
    t->steps_per_epoch = drop_last ? train_samples / t->batch_size : (train_samples + t->batch_size - 1) / t->batch_size;
    if (cfg->train_subset_num_batches > 0 && cfg->train_subset_num_batches < t->steps_per_epoch)
        t->steps_per_epoch = cfg->train_subset_num_batches;
    if (t->steps_per_epoch < 1)
        return error_set(err, "train_batch_size %d is larger than the %lld training samples", t->batch_size,
                         (long long)train_samples);

    double ssr = cfg->scale_schedule_ratio;
    if (!(ssr > 0)) return error_set(err, "scale_schedule_ratio must be > 0 (got %g)", ssr);
    if (!cfg->max_duration.set) return error_set(err, "max_duration: the recipe must say how long to train (e.g. 90ep)");
    t->max_duration = cfg->max_duration;
    if (t->max_duration.unit == TIME_DURATION)
        return error_set(err, "max_duration: must be in ep, ba or sp, not dur");
    t->max_duration.value = (double)(int64_t)(cfg->max_duration.value * ssr);
    if (t->max_duration.value < 1)
        return error_set(err, "max_duration %g x scale_schedule_ratio %g truncates to 0", cfg->max_duration.value, ssr);
    switch (t->max_duration.unit) {
    case TIME_EPOCH:
        t->total_batches = (int64_t)t->max_duration.value * t->steps_per_epoch;
        break;
    case TIME_BATCH:
        t->total_batches = (int64_t)t->max_duration.value;
        break;
    default: /* samples */
        t->total_batches = (int64_t)ceil(t->max_duration.value / t->batch_size);
        break;
    }
    t->max_epochs = (t->total_batches + t->steps_per_epoch - 1) / t->steps_per_epoch;

    if (cfg->schedulers.n == 0 && ssr != 1.0)
        return error_set(err, "scale_schedule_ratio %g needs a scheduler (Composer: \"Specifying "
                              "scale_schedule_ratio without schedulers has no effect\")", ssr);
    SchedContext ctx = {.steps_per_epoch = t->steps_per_epoch, .batch_size = t->batch_size,
                        .max_duration = t->max_duration, .ssr = ssr};
    if (sched_compile(&t->sched, &cfg->schedulers, &ctx, err)) return -1;
    t->warmup_batches = (int64_t)t->sched.warmup;
    if (cfg->optimizers.entry) t->base_lr = ((const SgdOptions *)cfg->optimizers.options)->lr;
    return 0;
}

double timeline_lr(const Timeline *t, int64_t batch) { return t->base_lr * sched_alpha(&t->sched, batch); }
