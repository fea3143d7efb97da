/* sam.c — sharpness-aware minimization (Composer 0.9 algorithms/sam): recipe options and checks. */
#include <math.h>
#include <stddef.h>

#include "algorithms/algorithms.h"

const FieldSpec SAM_FIELDS[] = {
    {.name = "rho", .type = F_DOUBLE, .offset = offsetof(SamOptions, rho), .def = "0.05",
     .help = "radius of the ascent step"},
    {.name = "epsilon", .type = F_DOUBLE, .offset = offsetof(SamOptions, epsilon), .def = "1.0e-12",
     .help = "added to the gradient norm"},
    {.name = "interval", .type = F_INT, .offset = offsetof(SamOptions, interval), .def = "1",
     .help = "SAM runs on every interval-th step"},
    {0},
};

/* Checks rho >= 0, epsilon >= 0, interval >= 1. */
int sam_check(const void *options, Error *err) {
    const SamOptions *o = options;
    if (!(o->rho >= 0)) return error_set(err, "rho must be >= 0 (got %g)", o->rho);
    if (!(o->epsilon >= 0)) return error_set(err, "epsilon must be >= 0 (got %g)", o->epsilon);
    if (o->interval < 1) return error_set(err, "interval must be >= 1 (got %d)", o->interval);
    return 0;
}

typedef struct Sam {
    float *e;                 /* [n_weights] the perturbation */
} Sam;

/* Before the optimizer step, on steps with (step + 1) % interval == 0 (Composer's SAMOptimizer): e = g * rho /
 * (||g|| + epsilon) with ||g|| the norm over all parameters; w += e; the batch's gradients again at w + e (the
 * second pass of every micro-batch, events included); w -= e. The base optimizer then steps with the new
 * gradients; the loss reported is the first pass's. */
static int sam_before_step(void *self, const void *options, TrainState *s, Error *err) {
    Sam *m = self;
    const SamOptions *o = options;
    if ((s->opt->steps + 1) % o->interval != 0) return 0;
    Backend *be = s->be;
    Model *md = s->model;
    size_t bytes = (size_t)md->n_weights * sizeof(float);
    if (!m->e && !(m->e = be->ops->alloc(be, bytes))) return error_set(err, "sam: out of memory");
    double norm = sqrt(be->ops->sum_squares(be, md->n_weights, md->grads));
    float scale = (float)(o->rho / (norm + o->epsilon));
    be->ops->copy(be, m->e, md->grads, bytes);
    be->ops->scale(be, md->n_weights, scale, m->e);
    be->ops->axpy(be, md->n_weights, 1.0f, m->e, md->weights);
    int rc = s->rerun(s, err);
    be->ops->axpy(be, md->n_weights, -1.0f, m->e, md->weights);
    return rc;
}

static void sam_destroy(void *self, TrainState *s) {
    Sam *m = self;
    if (m->e) s->be->ops->free(s->be, m->e);
}

const AlgorithmImpl SAM_IMPL = {.state_size = sizeof(Sam), .before_step = sam_before_step, .destroy = sam_destroy};
