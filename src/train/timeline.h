/* timeline.h — what a recipe means in batches: the run's length after scale_schedule_ratio, steps per
 * epoch, micro-batches, warmup, and the compiled learning-rate schedule. Shared by `ctrain train` and any
 * command that previews a run. */
#ifndef CTRAIN_TRAIN_TIMELINE_H
#define CTRAIN_TRAIN_TIMELINE_H

#include <stdint.h>

#include "config/config.h"
#include "train/sched.h"

typedef struct Timeline {
    TimeSpec max_duration;     /* after scale_schedule_ratio (Composer truncates: int(value * ssr)) */
    int64_t train_samples;
    int64_t steps_per_epoch;   /* batches per epoch (drop_last, train_subset_num_batches applied) */
    int64_t total_batches;
    int64_t max_epochs;        /* epochs started (the last may be partial when max_duration is in ba/sp) */
    int64_t warmup_batches;    /* of the scheduler (0 when it has none) */
    int batch_size;            /* global batch */
    int grad_accum;
    int micro_batch;           /* ceil(batch_size / grad_accum) */
    double base_lr;
    Schedule sched;
} Timeline;

/* Computes the timeline of cfg for a training set of train_samples samples. */
int timeline_compute(const Config *cfg, int64_t train_samples, Timeline *t, Error *err);
/* The learning rate of the batch that follows `batch` completed batches. */
double timeline_lr(const Timeline *t, int64_t batch);

#endif
