/* checkpoint.c — weights (torchvision state_dict as safetensors) and training state files (see checkpoint.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/safetensors.h"

#define STATE_FORMAT "ctrain-state-1"

/* Copies every float parameter and buffer to one host block laid out like the backend blocks. */
static int download_all(const Model *m, float **w, float **b, Error *err) {
    Backend *be = m->be;
    *w = malloc((size_t)(m->n_weights ? m->n_weights : 1) * sizeof **w);
    *b = malloc((size_t)(m->n_buffers ? m->n_buffers : 1) * sizeof **b);
    if (!*w || !*b) {
        free(*w);
        free(*b);
        return error_set(err, "out of memory");
    }
    be->ops->download(be, *w, m->weights, (size_t)m->n_weights * sizeof **w);
    if (m->n_buffers) be->ops->download(be, *b, m->buffers, (size_t)m->n_buffers * sizeof **b);
    return 0;
}

static void shape_text(const int64_t *shape, int ndim, char *out, size_t size) {
    size_t at = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < ndim && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (at < size) snprintf(out + at, size - at, "]");
}

int ckpt_save_weights(const Model *m, const char *path, int n_meta, const char *const *meta_keys,
                      const char *const *meta_values, Error *err) {
    float *w, *b;
    if (download_all(m, &w, &b, err)) return -1;
    StWriter *st = st_writer_new();
    int rc = st ? 0 : error_set(err, "out of memory");
    for (int i = 0; rc == 0 && i < m->n_params; i++) {
        const Param *p = &m->params[i];
        const void *data = p->kind == PARAM_TRAINABLE ? (const void *)(w + p->offset)
                           : p->kind == PARAM_BUFFER  ? (const void *)(b + p->offset)
                                                      : (const void *)&m->counters[p->offset];
        rc = st_writer_add(st, p->name, p->kind == PARAM_COUNTER ? ST_I64 : ST_F32, p->ndim, p->shape, data, err);
    }
    if (rc == 0) rc = st_writer_meta(st, "format", "pt", err);
    for (int i = 0; rc == 0 && i < n_meta; i++) rc = st_writer_meta(st, meta_keys[i], meta_values[i], err);
    if (rc == 0) rc = st_writer_write(st, path, err);
    st_writer_free(st);
    free(w);
    free(b);
    return rc;
}

static bool ignored(const LoadRules *r, const char *name) {
    if (!r || !r->ignore) return false;
    for (int i = 0; i < r->ignore->n; i++)
        if (strcmp(r->ignore->v[i], name) == 0) return true;
    return false;
}

static bool same_shape(const StTensor *t, const Param *p) {
    if (t->ndim != p->ndim) return false;
    for (int i = 0; i < p->ndim; i++)
        if (t->shape[i] != p->shape[i]) return false;
    return true;
}

int ckpt_load_weights(Model *m, const char *path, const LoadRules *rules, Error *err) {
    SafeTensors *st;
    if (st_open(path, &st, err)) return -1;
    bool strict = rules ? rules->strict : true;
    int rc = 0;
    /* Unexpected keys first, so a file for a different model says so before any shape complaint. */
    for (int i = 0; rc == 0 && i < st_count(st); i++) {
        const StTensor *t = st_at(st, i);
        if (strict && model_find_param(m, t->name) < 0 && !ignored(rules, t->name))
            rc = error_set(err, "%s: unexpected key '%s' (not in this model; is it the right model_name? set "
                                "load_strict_model_weights: false to skip it)", path, t->name);
    }
    float *host = NULL;
    size_t host_cap = 0;
    for (int i = 0; rc == 0 && i < m->n_params; i++) {
        const Param *p = &m->params[i];
        if (ignored(rules, p->name)) continue;
        const StTensor *t = st_get(st, p->name);
        if (!t) {
            if (strict) rc = error_set(err, "%s: missing key '%s' (set load_strict_model_weights: false or list it "
                                            "in load_ignore_keys to keep the initial value)", path, p->name);
            continue;
        }
        if (!same_shape(t, p)) {
            char a[96], b[96];
            shape_text(t->shape, t->ndim, a, sizeof a);
            shape_text(p->shape, p->ndim, b, sizeof b);
            rc = error_set(err, "%s: '%s' has shape %s but the model expects %s (wrong model_name or num_classes? "
                                "list it in load_ignore_keys to fine-tune with a new layer)", path, p->name, a, b);
            break;
        }
        if (p->kind == PARAM_COUNTER) {
            if (t->dtype != ST_I64) {
                rc = error_set(err, "%s: '%s' must be I64", path, p->name);
                break;
            }
            memcpy(&m->counters[p->offset], t->data, sizeof(int64_t));
            continue;
        }
        if ((size_t)p->numel > host_cap) {
            free(host);
            host_cap = (size_t)p->numel;
            host = malloc(host_cap * sizeof *host);
            if (!host) {
                rc = error_set(err, "out of memory");
                break;
            }
        }
        if (st_read_f32(t, host, p->numel, err)) {
            rc = error_prefix(err, "%s", path);
            break;
        }
        m->be->ops->upload(m->be, model_param_data(m, i), host, (size_t)p->numel * sizeof *host);
    }
    free(host);
    st_close(st);
    return rc;
}

int ckpt_save_state(const Model *m, const Optimizer *o, const Progress *p, const CkptHooks *hooks, const char *path,
                    Error *err) {
    float *mom = NULL;
    if (o->momentum) {
        mom = malloc((size_t)m->n_weights * sizeof *mom);
        if (!mom) return error_set(err, "out of memory");
        m->be->ops->download(m->be, mom, o->momentum, (size_t)m->n_weights * sizeof *mom);
    }
    StWriter *st = st_writer_new();
    int rc = st ? 0 : error_set(err, "out of memory");
    char name[128];
    for (int i = 0; rc == 0 && mom && i < m->n_params; i++) {
        const Param *q = &m->params[i];
        if (q->kind != PARAM_TRAINABLE) continue;
        snprintf(name, sizeof name, "momentum_buffer.%s", q->name);
        rc = st_writer_add(st, name, ST_F32, q->ndim, q->shape, mom + q->offset, err);
    }
    char v[5][32];
    snprintf(v[0], sizeof v[0], "%" PRId64, p->epoch);
    snprintf(v[1], sizeof v[1], "%" PRId64, p->batch_in_epoch);
    snprintf(v[2], sizeof v[2], "%" PRId64, p->batch);
    snprintf(v[3], sizeof v[3], "%" PRId64, p->samples);
    snprintf(v[4], sizeof v[4], "%" PRId64, o->steps);
    const char *keys[5] = {"epoch", "batch_in_epoch", "batch", "samples", "optimizer_steps"};
    if (rc == 0 && hooks && hooks->save) rc = hooks->save(hooks->ctx, st, err);
    if (rc == 0) rc = st_writer_meta(st, "format", STATE_FORMAT, err);
    for (int i = 0; rc == 0 && i < 5; i++) rc = st_writer_meta(st, keys[i], v[i], err);
    if (rc == 0) rc = st_writer_write(st, path, err);
    st_writer_free(st);
    free(mom);
    return rc;
}

static int meta_int(const SafeTensors *st, const char *path, const char *key, int64_t *out, Error *err) {
    const char *s = st_metadata(st, key);
    char *end;
    if (!s) return error_set(err, "%s: state file lacks '%s'", path, key);
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0) return error_set(err, "%s: state '%s' is not a count ('%s')", path, key, s);
    *out = v;
    return 0;
}

int ckpt_load_state(const Model *m, Optimizer *o, Progress *p, const CkptHooks *hooks, const char *path, Error *err) {
    SafeTensors *st;
    if (st_open(path, &st, err)) return -1;
    int rc = 0;
    const char *fmt = st_metadata(st, "format");
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0)
        rc = error_set(err, "%s: not a ctrain state file (format '%s', expected '%s')", path, fmt ? fmt : "none",
                       STATE_FORMAT);
    if (rc == 0) rc = meta_int(st, path, "epoch", &p->epoch, err);
    if (rc == 0) rc = meta_int(st, path, "batch_in_epoch", &p->batch_in_epoch, err);
    if (rc == 0) rc = meta_int(st, path, "batch", &p->batch, err);
    if (rc == 0) rc = meta_int(st, path, "samples", &p->samples, err);
    if (rc == 0) rc = meta_int(st, path, "optimizer_steps", &o->steps, err);
    float *host = NULL;
    if (rc == 0 && o->momentum && o->steps > 0) {
        host = malloc((size_t)m->n_weights * sizeof *host);
        if (!host) rc = error_set(err, "out of memory");
        char name[128];
        for (int i = 0; rc == 0 && i < m->n_params; i++) {
            const Param *q = &m->params[i];
            if (q->kind != PARAM_TRAINABLE) continue;
            snprintf(name, sizeof name, "momentum_buffer.%s", q->name);
            const StTensor *t = st_get(st, name);
            if (!t) rc = error_set(err, "%s: missing '%s' (was the optimizer's momentum changed?)", path, name);
            else if (!same_shape(t, q)) rc = error_set(err, "%s: '%s' has the wrong shape for this model", path, name);
            else if (st_read_f32(t, host + q->offset, q->numel, err)) rc = error_prefix(err, "%s", path);
        }
        if (rc == 0) m->be->ops->upload(m->be, o->momentum, host, (size_t)m->n_weights * sizeof *host);
    }
    if (rc == 0 && hooks && hooks->load) rc = hooks->load(hooks->ctx, st, path, err);
    free(host);
    st_close(st);
    return rc;
}

void ckpt_state_path(const char *weights_path, char *out, size_t size) {
    size_t n = strlen(weights_path);
    const char *ext = ".safetensors";
    size_t e = strlen(ext);
    if (n > e && strcmp(weights_path + n - e, ext) == 0) snprintf(out, size, "%.*s.state", (int)(n - e), weights_path);
    else snprintf(out, size, "%s.state", weights_path);
}
