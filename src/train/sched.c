/* sched.c — Composer 0.9's schedulers (composer/optim/scheduler.py), as closed-form alpha(t). */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "train/sched.h"

typedef struct SchedOptions {
    TimeSpec t_warmup, t_max, step_size;
    TimeList milestones;
    double alpha_i, alpha_f, alpha, gamma;
    bool scale_warmup;
} SchedOptions;

#define T_WARMUP {.name = "t_warmup", .type = F_TIME, .offset = offsetof(SchedOptions, t_warmup), .required = true, \
                  .help = "length of the linear warmup from 0 (not scaled by scale_schedule_ratio)"}
#define T_MAX {.name = "t_max", .type = F_TIME, .offset = offsetof(SchedOptions, t_max), .def = "1dur", \
               .help = "end of the decay"}
#define ALPHA_I(d) {.name = "alpha_i", .type = F_DOUBLE, .offset = offsetof(SchedOptions, alpha_i), .def = d, \
                    .help = "initial multiplier"}
#define ALPHA_F(d) {.name = "alpha_f", .type = F_DOUBLE, .offset = offsetof(SchedOptions, alpha_f), .def = d, \
                    .help = "final multiplier"}
#define GAMMA {.name = "gamma", .type = F_DOUBLE, .offset = offsetof(SchedOptions, gamma), .def = "0.1", \
               .help = "multiplier per step / milestone"}
#define MILESTONES {.name = "milestones", .type = F_TIME_LIST, .offset = offsetof(SchedOptions, milestones), \
                    .required = true, .help = "times at which lr is multiplied by gamma"}
#define SCALE_WARMUP {.name = "scale_warmup", .type = F_BOOL, .offset = offsetof(SchedOptions, scale_warmup), \
                      .def = "false", .help = "stretch the warmup ramp with scale_schedule_ratio"}

static const FieldSpec CONSTANT_FIELDS[] = {
    {.name = "alpha", .type = F_DOUBLE, .offset = offsetof(SchedOptions, alpha), .def = "1.0"}, T_MAX, {0}};
static const FieldSpec STEP_FIELDS[] = {
    {.name = "step_size", .type = F_TIME, .offset = offsetof(SchedOptions, step_size), .required = true},
    GAMMA, {0}};
static const FieldSpec MULTISTEP_FIELDS[] = {MILESTONES, GAMMA, {0}};
static const FieldSpec LINEAR_FIELDS[] = {ALPHA_I("1.0"), ALPHA_F("0.0"), T_MAX, {0}};
static const FieldSpec COSINE_FIELDS[] = {T_MAX, ALPHA_F("0.0"), {0}};
static const FieldSpec COSINE_WARMUP_FIELDS[] = {T_WARMUP, T_MAX, ALPHA_F("0.0"), SCALE_WARMUP, {0}};
static const FieldSpec LINEAR_WARMUP_FIELDS[] = {T_WARMUP, ALPHA_I("1.0"), ALPHA_F("0.0"), T_MAX, SCALE_WARMUP,
                                                 {0}};
static const FieldSpec MULTISTEP_WARMUP_FIELDS[] = {T_WARMUP, MILESTONES, GAMMA, SCALE_WARMUP, {0}};

#define ENTRY(n, f, h) {.name = n, .fields = f, .options_size = sizeof(SchedOptions), .help = h}
static const RegistryEntry SCHED_ENTRIES[] = {
    ENTRY("constant", CONSTANT_FIELDS, "alpha until t_max, then 1"),
    ENTRY("step", STEP_FIELDS, "gamma^floor(t/step_size)"),
    ENTRY("multistep", MULTISTEP_FIELDS, "gamma^(milestones passed)"),
    ENTRY("linear_decay", LINEAR_FIELDS, "alpha_i to alpha_f linearly over t_max"),
    ENTRY("cosine_decay", COSINE_FIELDS, "cosine from 1 to alpha_f over t_max"),
    ENTRY("cosine_decay_with_warmup", COSINE_WARMUP_FIELDS, "linear warmup, then cosine to alpha_f"),
    ENTRY("linear_decay_with_warmup", LINEAR_WARMUP_FIELDS, "linear warmup, then alpha_i to alpha_f"),
    ENTRY("multistep_with_warmup", MULTISTEP_WARMUP_FIELDS, "linear warmup, then multistep"),
};
static const SchedKind SCHED_KINDS[] = {SCHED_CONSTANT, SCHED_STEP, SCHED_MULTISTEP, SCHED_LINEAR,
                                        SCHED_COSINE, SCHED_COSINE_WARMUP, SCHED_LINEAR_WARMUP,
                                        SCHED_MULTISTEP_WARMUP};

const Registry SCHEDULER_REGISTRY = {"scheduler", SCHED_ENTRIES, sizeof SCHED_ENTRIES / sizeof SCHED_ENTRIES[0]};

double sched_time_to_batches(const TimeSpec *t, const SchedContext *ctx, double ssr) {
    const TimeSpec *md = &ctx->max_duration;
    switch (t->unit) {
    case TIME_DURATION:
        /* dur against the already-scaled max_duration; no ssr. */
        if (md->unit == TIME_EPOCH) return (double)(int64_t)(t->value * (double)ctx->steps_per_epoch * md->value);
        if (md->unit == TIME_SAMPLE) return (double)(int64_t)(t->value * md->value) / (double)ctx->batch_size;
        return (double)(int64_t)(t->value * md->value);
    case TIME_EPOCH:
        return (double)(int64_t)(t->value * (double)ctx->steps_per_epoch * ssr);
    case TIME_SAMPLE:
        return (double)(int64_t)(t->value * ssr) / (double)ctx->batch_size;
    case TIME_BATCH:
    default:
        return (double)(int64_t)(t->value * ssr);
    }
}

int sched_compile(Schedule *s, const ChoiceList *schedulers, const SchedContext *ctx, Error *err) {
    memset(s, 0, sizeof *s);
    s->kind = SCHED_NONE;
    if (schedulers->n == 0) return 0;
    if (schedulers->n > 1)
        return error_set(err, "schedulers: ctrain takes one scheduler, the recipe gives %d (combine them into "
                              "one, e.g. cosine_decay_with_warmup)", schedulers->n);
    const Choice *c = &schedulers->items[0];
    const SchedOptions *o = c->options;
    int idx = (int)(c->entry - SCHED_ENTRIES);
    s->kind = SCHED_KINDS[idx];
    s->alpha_i = o->alpha_i;
    s->alpha_f = o->alpha_f;
    s->alpha = o->alpha;
    s->gamma = o->gamma;
    double ssr = ctx->ssr;
    if (o->t_max.set) s->t_max = sched_time_to_batches(&o->t_max, ctx, ssr);
    if (o->step_size.set) s->step_size = sched_time_to_batches(&o->step_size, ctx, ssr);
    if (o->t_warmup.set) {
        s->warmup = sched_time_to_batches(&o->t_warmup, ctx, 1.0);
        s->warmup_ramp = sched_time_to_batches(&o->t_warmup, ctx, o->scale_warmup ? ssr : 1.0);
    }
    s->n_milestones = o->milestones.n;
    for (int i = 0; i < o->milestones.n; i++)
        s->milestones[i] = sched_time_to_batches(&o->milestones.v[i], ctx, ssr);
    if (s->kind == SCHED_STEP && s->step_size <= 0)
        return error_set(err, "schedulers.step.step_size must be at least one batch");
    return 0;
}

static double cosine_anneal(double x, double min_y) { return min_y + (1.0 - min_y) * (1.0 + cos(x * M_PI)) / 2.0; }

static double frac_min1(double num, double den) {
    if (den <= 0) return 1.0;
    double f = num / den;
    return f < 1.0 ? f : 1.0;
}

double sched_alpha(const Schedule *s, int64_t batch) {
    double t = (double)batch;
    switch (s->kind) {
    case SCHED_NONE:
        return 1.0;
    case SCHED_CONSTANT:
        return t < s->t_max ? s->alpha : 1.0;
    case SCHED_STEP:
        return pow(s->gamma, floor(t / s->step_size));
    case SCHED_MULTISTEP: {
        double f = 1.0;
        for (int i = 0; i < s->n_milestones; i++)
            if (t >= s->milestones[i]) f *= s->gamma;
        return f;
    }
    case SCHED_LINEAR:
        return s->alpha_i + frac_min1(t, s->t_max) * (s->alpha_f - s->alpha_i);
    case SCHED_COSINE:
        return cosine_anneal(frac_min1(t, s->t_max), s->alpha_f);
    default:
        break;
    }
    /* the *_with_warmup family */
    if (t < s->warmup) return frac_min1(t, s->warmup_ramp);
    switch (s->kind) {
    case SCHED_COSINE_WARMUP:
        return cosine_anneal(frac_min1(t - s->warmup, s->t_max - s->warmup), s->alpha_f);
    case SCHED_LINEAR_WARMUP:
        return s->alpha_i + frac_min1(t - s->warmup, s->t_max - s->warmup) * (s->alpha_f - s->alpha_i);
    case SCHED_MULTISTEP_WARMUP: {
        double f = 1.0;
        for (int i = 0; i < s->n_milestones; i++)
            if (t >= s->milestones[i]) f *= s->gamma;
        return f;
    }
    default:
        return 1.0;
    }
}
