/* sched.h — learning-rate schedules as Composer 0.9 defines them, stepped every batch.
 *
 * A schedule gives alpha(t), the multiplier of the optimizer's lr, at t = completed batches; batch t trains
 * with lr * alpha(t) (so batch 0 of a warmup runs at lr 0). Times in the recipe convert to batches as
 * Composer's _convert_time does: `dur` against the (already scaled) max_duration, `ep` and `ba` multiplied
 * by scale_schedule_ratio and truncated. Warmups are NOT scaled unless scale_warmup is set (and then, as in
 * Composer, only the warmup ramp is stretched, not its boundary). */
#ifndef CTRAIN_TRAIN_SCHED_H
#define CTRAIN_TRAIN_SCHED_H

#include <stdint.h>

#include "config/schema.h"

/* schedulers: {cosine_decay_with_warmup|linear_decay_with_warmup|multistep|constant|...: options} */
extern const Registry SCHEDULER_REGISTRY;

typedef enum SchedKind {
    SCHED_NONE = 0,            /* no scheduler: alpha = 1 */
    SCHED_CONSTANT,
    SCHED_STEP,
    SCHED_MULTISTEP,
    SCHED_LINEAR,
    SCHED_COSINE,
    SCHED_COSINE_WARMUP,
    SCHED_LINEAR_WARMUP,
    SCHED_MULTISTEP_WARMUP,
} SchedKind;

/* A schedule with every time converted to batches (fractional batches for sample-based times). */
typedef struct Schedule {
    SchedKind kind;
    double alpha_i, alpha_f, alpha, gamma;
    double warmup;             /* warmup boundary, batches */
    double warmup_ramp;        /* length of the warmup ramp, batches (differs only with scale_warmup) */
    double t_max;              /* batches */
    double step_size;          /* batches */
    double milestones[LIST_MAX];
    int n_milestones;
} Schedule;

/* The facts a schedule needs about the run. */
typedef struct SchedContext {
    int64_t steps_per_epoch;   /* batches per epoch (dataloader length) */
    int64_t batch_size;        /* global samples per batch (for `sp` times) */
    TimeSpec max_duration;     /* after scale_schedule_ratio */
    double ssr;                /* scale_schedule_ratio */
} SchedContext;

/* Converts a recipe time to batches exactly as Composer's _convert_time(time, state, ssr). */
double sched_time_to_batches(const TimeSpec *t, const SchedContext *ctx, double ssr);
/* Compiles the recipe's scheduler list (empty, or one entry) for a run. */
int sched_compile(Schedule *s, const ChoiceList *schedulers, const SchedContext *ctx, Error *err);
/* The lr multiplier for the batch that follows `batch` completed batches. */
double sched_alpha(const Schedule *s, int64_t batch);

#endif
