/* ema.c — EMA of the weights and buffers (Composer 0.9 algorithms/ema): recipe options and checks. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

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

double ema_smoothing(const EmaOptions *o) {
    double interval = o->update_interval.set ? o->update_interval.value : 1.0;
    return pow(2.0, -(interval / o->half_life.value));
}

typedef struct Ema {
    float *w, *b;             /* EMA copies of the weights [n_weights] and the BN buffers [n_buffers] */
    bool initialized, swapped;
} Ema;

/* ema = ema * s + (1 - s) * model over the weights and the BN running statistics; the first update copies. */
static int ema_update(Ema *m, const EmaOptions *o, TrainState *s, Error *err) {
    Backend *be = s->be;
    Model *md = s->model;
    size_t wb = (size_t)md->n_weights * sizeof(float), bb = (size_t)md->n_buffers * sizeof(float);
    if (!m->initialized) {
        m->w = be->ops->alloc(be, wb);
        m->b = be->ops->alloc(be, bb ? bb : sizeof(float));
        if (!m->w || !m->b) return error_set(err, "ema: out of memory for a copy of the weights");
        be->ops->copy(be, m->w, md->weights, wb);
        if (bb) be->ops->copy(be, m->b, md->buffers, bb);
        m->initialized = true;
    }
    float sm = (float)ema_smoothing(o);
    be->ops->scale(be, md->n_weights, sm, m->w);
    be->ops->axpy(be, md->n_weights, 1.0f - sm, md->weights, m->w);
    if (md->n_buffers) {
        be->ops->scale(be, md->n_buffers, sm, m->b);
        be->ops->axpy(be, md->n_buffers, 1.0f - sm, md->buffers, m->b);
    }
    if (o->train_with_ema_weights) {
        be->ops->copy(be, md->weights, m->w, wb);
        if (bb) be->ops->copy(be, md->buffers, m->b, bb);
    }
    return 0;
}

static void ema_swap(Ema *m, Model *md) {
    float *t = md->weights;
    md->weights = m->w;
    m->w = t;
    t = md->buffers;
    md->buffers = m->b;
    m->b = t;
    m->swapped = !m->swapped;
}

/* BATCH_END (ba units) or EPOCH_END (ep units) every update_interval: update. EVAL_START: evaluate the EMA
 * weights and statistics (once they exist); EVAL_END: back to the training weights. */
static int ema_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    Ema *m = self;
    const EmaOptions *o = options;
    int64_t interval = o->update_interval.set ? (int64_t)o->update_interval.value : 1;
    bool batches = o->half_life.unit == TIME_BATCH;
    if ((batches && e == EVENT_BATCH_END && s->progress->batch % interval == 0) ||
        (!batches && e == EVENT_EPOCH_END && s->progress->epoch % interval == 0))
        return ema_update(m, o, s, err);
    if (e == EVENT_EVAL_START && m->initialized && !m->swapped) ema_swap(m, s->model);
    if (e == EVENT_EVAL_END && m->swapped) ema_swap(m, s->model);
    return 0;
}

/* The EMA copies go into the state file as "ema.<state_dict key>". */
static int ema_save(void *self, const void *options, StWriter *w, TrainState *s, Error *err) {
    Ema *m = self;
    if (!m->initialized) return 0;
    Model *md = s->model;
    float *host = malloc(((size_t)md->n_weights + (size_t)md->n_buffers + 1) * sizeof *host);
    if (!host) return error_set(err, "out of memory");
    s->be->ops->download(s->be, host, m->w, (size_t)md->n_weights * sizeof *host);
    if (md->n_buffers) s->be->ops->download(s->be, host + md->n_weights, m->b, (size_t)md->n_buffers * sizeof *host);
    /* the writer references the data until it writes: keep host alive in the writer's lifetime */
    int rc = 0;
    for (int i = 0; rc == 0 && i < md->n_params; i++) {
        const Param *p = &md->params[i];
        if (p->kind == PARAM_COUNTER) continue;
        char name[128];
        snprintf(name, sizeof name, "ema.%s", p->name);
        const float *data = host + (p->kind == PARAM_TRAINABLE ? p->offset : md->n_weights + p->offset);
        rc = st_writer_add(w, name, ST_F32, p->ndim, p->shape, data, err);
    }
    if (rc == 0) rc = st_writer_keep(w, host, err);
    else free(host);
    return rc;
}

static int ema_load(void *self, const void *options, const SafeTensors *st, const char *path, TrainState *s,
                    Error *err) {
    Ema *m = self;
    Model *md = s->model;
    char first[128];
    snprintf(first, sizeof first, "ema.%s", md->params[0].name);
    if (!st_get(st, first)) return 0; /* saved before the first EMA update */
    Backend *be = s->be;
    if (!m->initialized) {
        m->w = be->ops->alloc(be, (size_t)md->n_weights * sizeof(float));
        m->b = be->ops->alloc(be, (size_t)(md->n_buffers ? md->n_buffers : 1) * sizeof(float));
        if (!m->w || !m->b) return error_set(err, "ema: out of memory");
        m->initialized = true;
    }
    float *host = malloc((size_t)md->n_weights * sizeof *host + (size_t)md->n_buffers * sizeof *host + 4);
    if (!host) return error_set(err, "out of memory");
    int rc = 0;
    for (int i = 0; rc == 0 && i < md->n_params; i++) {
        const Param *p = &md->params[i];
        if (p->kind == PARAM_COUNTER) continue;
        char name[128];
        snprintf(name, sizeof name, "ema.%s", p->name);
        const StTensor *t = st_get(st, name);
        float *dst = host + (p->kind == PARAM_TRAINABLE ? p->offset : md->n_weights + p->offset);
        if (!t) rc = error_set(err, "%s: missing '%s' (the EMA state)", path, name);
        else if (st_read_f32(t, dst, p->numel, err)) rc = error_prefix(err, "%s", path);
    }
    if (rc == 0) {
        be->ops->upload(be, m->w, host, (size_t)md->n_weights * sizeof *host);
        if (md->n_buffers) be->ops->upload(be, m->b, host + md->n_weights, (size_t)md->n_buffers * sizeof *host);
    }
    free(host);
    return rc;
}

static void ema_destroy(void *self, TrainState *s) {
    Ema *m = self;
    if (m->swapped) ema_swap(m, s->model);
    if (m->w) s->be->ops->free(s->be, m->w);
    if (m->b) s->be->ops->free(s->be, m->b);
}

const AlgorithmImpl EMA_IMPL = {.state_size = sizeof(Ema), .run = ema_run, .save = ema_save, .load = ema_load,
                                .destroy = ema_destroy};
