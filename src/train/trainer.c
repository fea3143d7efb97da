/* trainer.c — setting up a run and the training / evaluation loops (see trainer.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "algorithms/algorithms.h"
#include "core/fsutil.h"
#include "model/init.h"
#include "train/trainer.h"

#define PLAN_CACHE 4

/* ------------------------------------------------------------------ small helpers */

/* Replaces every "{run_name}" in in with name. */
static void expand_run_name(const char *in, const char *name, char *out, size_t size) {
    size_t at = 0;
    const char *key = "{run_name}";
    size_t kl = strlen(key);
    while (*in && at + 1 < size) {
        if (strncmp(in, key, kl) == 0) {
            at += (size_t)snprintf(out + at, size - at, "%s", name);
            if (at >= size) at = size - 1;
            in += kl;
        } else {
            out[at++] = *in++;
        }
    }
    out[at] = 0;
}

/* Drops every cached plan (they are remade on use); their memory goes back to the backend. */
static void drop_plans(Trainer *t) {
    for (int i = 0; i < PLAN_CACHE; i++) {
        plan_destroy(&t->model, t->plans[i]);
        t->plans[i] = NULL;
    }
}

/* The plan for (n, h, w, train), made on first use; the least recently used one is dropped when full, and all
 * of them when a new one does not fit beside them (only one plan is in use at a time). Returns
 * PLAN_OUT_OF_MEMORY when it does not fit alone either. */
static int get_plan(Trainer *t, int n, int h, int w, bool train, Plan **out, Error *err) {
    for (int i = 0; i < PLAN_CACHE; i++) {
        Plan *p = t->plans[i];
        if (p && p->n == n && p->h == h && p->w == w && p->train == train) {
            /* move to front */
            for (int j = i; j > 0; j--) t->plans[j] = t->plans[j - 1];
            t->plans[0] = p;
            *out = p;
            return 0;
        }
    }
    if (t->plans[PLAN_CACHE - 1]) plan_destroy(&t->model, t->plans[PLAN_CACHE - 1]);
    for (int j = PLAN_CACHE - 1; j > 0; j--) t->plans[j] = t->plans[j - 1];
    t->plans[0] = NULL;
    int rc = plan_create(&t->model, n, h, w, train, &t->plans[0], err);
    if (rc == PLAN_OUT_OF_MEMORY && t->plans[1]) {
        drop_plans(t);
        rc = plan_create(&t->model, n, h, w, train, &t->plans[0], err);
    }
    if (rc) return rc;
    *out = t->plans[0];
    return 0;
}

/* grad_accum: auto (Composer's automatic micro-batching): the fewest micro-batches — 1, 2, 4, … up to one
 * sample each — whose training plan fits in the backend's memory at the run's full resolution (progressive
 * resizing only trains smaller), with an eighth of the plan's size to spare for the scratch memory backends
 * grow at the first step (cuDNN's workspace, bf16 staging). Decided once, before the first batch; the plan
 * that fits stays cached. */
static int fit_micro_batch(Trainer *t, Error *err) {
    if (!t->train || !t->opts.need_train_data || config_grad_accum(t->cfg) != 0) return 0;
    Timeline *tl = &t->tl;
    int h, w, c;
    loader_shape(t->train, &h, &w, &c);
    for (;;) {
        Plan *p;
        int rc = get_plan(t, tl->micro_batch, h, w, true, &p, err);
        if (rc == 0) {
            void *spare = t->be->ops->alloc(t->be, p->bytes / 8 + 1);
            if (spare) {
                t->be->ops->free(t->be, spare);
                return 0;
            }
            drop_plans(t);
            rc = PLAN_OUT_OF_MEMORY;
        }
        if (rc != PLAN_OUT_OF_MEMORY) return rc;
        if (tl->micro_batch == 1) return error_prefix(err, "grad_accum auto: even one sample does not fit");
        int before = tl->micro_batch;
        tl->grad_accum = tl->grad_accum * 2 < tl->batch_size ? tl->grad_accum * 2 : tl->batch_size;
        tl->micro_batch = (tl->batch_size + tl->grad_accum - 1) / tl->grad_accum;
        report_line(&t->rep, "grad_accum auto: a micro-batch of %d at %dx%d does not fit in %s memory; trying %d "
                    "micro-batches of %d", before, h, w, t->be->ops->name, tl->grad_accum, tl->micro_batch);
    }
}

/* One-hot targets [n, classes] from labels. */
static void one_hot(float *targets, const int32_t *labels, int n, int classes) {
    memset(targets, 0, (size_t)n * classes * sizeof *targets);
    for (int i = 0; i < n; i++) targets[(size_t)i * classes + labels[i]] = 1.0f;
}

void metrics_accumulate(const float *logits, const int32_t *labels, int n, int c, int64_t *top1, int64_t *top5,
                        double *ce_sum) {
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c;
        float zl = z[labels[i]];
        int higher = 0;
        double mx = z[0];
        for (int j = 0; j < c; j++) {
            /* ties count against the label: the label is ranked after equal logits of lower index */
            if (z[j] > zl || (z[j] == zl && j < labels[i])) higher++;
            if (z[j] > mx) mx = z[j];
        }
        if (higher == 0) (*top1)++;
        if (higher < 5) (*top5)++;
        double se = 0;
        for (int j = 0; j < c; j++) se += exp(z[j] - mx);
        *ce_sum += mx + log(se) - zl;
    }
}

/* ------------------------------------------------------------------ events and algorithms */

static const char *const EVENT_NAMES[EVENT_COUNT] = {
    "init", "fit_start", "epoch_start", "before_dataloader", "after_dataloader", "batch_start",
    "before_train_batch", "before_forward", "after_forward", "before_loss", "after_loss", "before_backward",
    "after_backward", "after_train_batch", "batch_end", "batch_checkpoint", "epoch_end", "epoch_checkpoint",
    "fit_end", "eval_start", "eval_batch_start", "eval_before_forward", "eval_after_forward", "eval_batch_end",
    "eval_end",
};

const char *event_name(Event e) { return e >= 0 && e < EVENT_COUNT ? EVENT_NAMES[e] : "?"; }

bool event_is_after(Event e) { return strncmp(event_name(e), "after_", 6) == 0 || strstr(event_name(e), "_after_"); }

/* Runs every algorithm on event e: in recipe order, reversed on AFTER_* events (Composer's engine). */
static int run_event(Trainer *t, Event e, Error *err) {
    bool rev = event_is_after(e);
    for (int k = 0; k < t->n_algos; k++) {
        AlgoRun *a = &t->algos[rev ? t->n_algos - 1 - k : k];
        if (a->impl->run && a->impl->run(a->self, a->choice->options, e, &t->st, err))
            return error_prefix(err, "algorithms.%s at %s", a->choice->entry->name, event_name(e));
    }
    return 0;
}

static int algos_create(Trainer *t, Error *err) {
    const ChoiceList *cl = &t->cfg->algorithms;
    t->algos = calloc((size_t)(cl->n ? cl->n : 1), sizeof *t->algos);
    if (!t->algos) return error_set(err, "out of memory");
    for (int k = 0; k < cl->n; k++) {
        AlgoRun *a = &t->algos[k];
        a->choice = &cl->items[k];
        a->impl = a->choice->entry->impl;
        a->self = calloc(1, a->impl->state_size ? a->impl->state_size : 1);
        if (!a->self) return error_set(err, "out of memory");
        t->n_algos = k + 1;
        if (a->impl->create && a->impl->create(a->self, a->choice->options, &t->st, err))
            return error_prefix(err, "algorithms.%s", a->choice->entry->name);
    }
    return 0;
}

/* Checkpoint hooks: every algorithm's extra state in the state file. */
static int algos_save(void *ctx, StWriter *w, Error *err) {
    Trainer *t = ctx;
    for (int k = 0; k < t->n_algos; k++) {
        AlgoRun *a = &t->algos[k];
        if (a->impl->save && a->impl->save(a->self, a->choice->options, w, &t->st, err)) return -1;
    }
    return 0;
}

static int algos_load(void *ctx, const SafeTensors *st, const char *path, Error *err) {
    Trainer *t = ctx;
    for (int k = 0; k < t->n_algos; k++) {
        AlgoRun *a = &t->algos[k];
        if (a->impl->load && a->impl->load(a->self, a->choice->options, st, path, &t->st, err)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ setup */

static int open_backend(Trainer *t, Error *err) {
    const char *dev = t->opts.device;
    if (!dev) dev = t->cfg->device.entry ? t->cfg->device.entry->name : "cpu";
    return backend_create(dev, t->opts.threads, &t->be, err);
}

/* amp, bf16 (and auto on a backend that has it) compute convolutions and the FC in bf16 with fp32 accumulation
 * and fp32 master weights; fp16 maps to bf16 too (no loss scaling needed). Says so when a choice is not honoured. */
static void set_precision(Backend *be, int precision, bool quiet) {
    bool low = precision == PRECISION_AMP || precision == PRECISION_BF16 || precision == PRECISION_FP16;
    const char *name = precision == PRECISION_AMP ? "amp" : precision == PRECISION_BF16 ? "bf16" : "fp16";
    be->bf16 = be->ops->bf16 && (low || (precision == PRECISION_AUTO && be->ops->gpu));
    if (quiet) return;
    if (low && !be->ops->bf16)
        fprintf(stderr, "note: precision %s: the %s backend has no bf16 on this machine (on a CPU it needs AVX512_BF16); "
                "computing in fp32\n", name,
                be->ops->name);
    else if (precision == PRECISION_FP16 && be->bf16)
        fprintf(stderr, "note: precision fp16: ctrain computes in bf16 (fp32 accumulation, no loss scaling)\n");
}

/* The eval batch size (Composer: eval_batch_size, defaulting to the train batch). */
static int eval_batch(const Trainer *t) {
    return t->cfg->eval_batch_size > 0 ? t->cfg->eval_batch_size : t->cfg->train_batch_size;
}

static int open_data(Trainer *t, Error *err) {
    const Config *cfg = t->cfg;
    if (t->opts.need_train_data) {
        LoaderArgs a = {.batch_size = cfg->train_batch_size, .seed = (uint64_t)cfg->seed, .train = true,
                        .workers = cfg->dataloader.num_workers, .batches_ahead = cfg->dataloader.prefetch_factor};
        if (loader_create(&cfg->train_dataset, "train_dataset", &a, &t->train, err)) return -1;
    }
    if (cfg->val_dataset.entry) {
        LoaderArgs a = {.batch_size = eval_batch(t), .seed = (uint64_t)cfg->seed, .train = false,
                        .workers = cfg->dataloader.num_workers, .batches_ahead = cfg->dataloader.prefetch_factor};
        if (loader_create(&cfg->val_dataset, "val_dataset", &a, &t->val, err)) return -1;
    }
    return 0;
}

static int build_model(Trainer *t, Error *err) {
    const ResnetOptions *o = t->mopt;
    int h, w, c = 0;
    if (t->train) loader_shape(t->train, &h, &w, &c);
    else if (t->val) loader_shape(t->val, &h, &w, &c);
    if (c == 0 && o->in_channels == 0)
        return error_set(err, "model.resnet.in_channels: no dataset to take it from; set it (e.g. 3)");
    if (o->in_channels && c && o->in_channels != c)
        return error_set(err, "model.resnet.in_channels is %d but the dataset has %d channels", o->in_channels, c);
    Loader *ls[2] = {t->train, t->val};
    for (int i = 0; i < 2; i++)
        if (ls[i] && loader_num_classes(ls[i]) > o->num_classes)
            return error_set(err, "model.resnet.num_classes is %d but %s has labels up to %d; set num_classes",
                             o->num_classes, i ? "val_dataset" : "train_dataset", loader_num_classes(ls[i]) - 1);
    if (resnet_build_surgery(o, c, &t->st.surgery, &t->model, err)) return -1;
    t->model.rng_seed = (uint64_t)t->cfg->seed;
    if (model_alloc(&t->model, t->be, err)) return -1;
    return init_weights(&t->model, o, (uint64_t)t->cfg->seed, err);
}

static int make_run_dir(Trainer *t, Error *err) {
    const Config *cfg = t->cfg;
    if (cfg->run_name) snprintf(t->run_name, sizeof t->run_name, "%s", cfg->run_name);
    else {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(t->run_name, sizeof t->run_name, "%s-%s", t->mopt->model_name, stamp);
    }
    if (t->opts.run_dir) snprintf(t->run_dir, sizeof t->run_dir, "%s", t->opts.run_dir);
    else snprintf(t->run_dir, sizeof t->run_dir, "runs/%s", t->run_name);
    if (fs_mkdirs(t->run_dir, err)) return -1;
    t->save_dir[0] = 0;
    if (cfg->save_folder) {
        expand_run_name(cfg->save_folder, t->run_name, t->save_dir, sizeof t->save_dir);
        if (fs_mkdirs(t->save_dir, err)) return -1;
    } else if (cfg->autoresume) {
        return error_set(err, "autoresume needs save_folder (where to look for the latest checkpoint)");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.yaml", t->run_dir);
    AtomicFile af;
    if (atomic_open(&af, path, err)) return -1;
    config_emit(cfg, af.f);
    return atomic_commit(&af, err);
}

/* autoresume from save_folder/latest, else load_path (weights, plus state when a .state file is beside it). */
static int resume(Trainer *t, bool *resumed, Error *err) {
    const Config *cfg = t->cfg;
    char weights[4096], state[4096];
    *resumed = false;
    weights[0] = 0;
    bool full = false;
    if (cfg->autoresume) {
        snprintf(weights, sizeof weights, "%s/latest.safetensors", t->save_dir);
        if (fs_exists(weights)) full = true;
        else weights[0] = 0;
    }
    if (!weights[0] && cfg->load_path) {
        snprintf(weights, sizeof weights, "%s", cfg->load_path);
        if (!fs_exists(weights)) return error_set(err, "load_path %s: no such file", weights);
        full = !cfg->load_weights_only;
    }
    if (!weights[0]) return 0;
    LoadRules rules = {.strict = cfg->load_strict_model_weights || full, .ignore = &cfg->load_ignore_keys};
    if (ckpt_load_weights(&t->model, weights, &rules, err)) return -1;
    ckpt_state_path(weights, state, sizeof state);
    if (full && fs_exists(state)) {
        CkptHooks hooks = {.save = algos_save, .load = algos_load, .ctx = t};
        if (ckpt_load_state(&t->model, &t->opt, &t->progress, &hooks, state, err)) return -1;
        *resumed = true;
    }
    report_line(&t->rep, "loaded %s%s", weights, *resumed ? " (resuming training state)" : " (weights only)");
    return 0;
}

static int alloc_buffers(Trainer *t, Error *err) {
    int classes = t->model.num_classes, micro = t->tl.micro_batch;
    Backend *be = t->be;
    /* evaluation runs in chunks of the training micro-batch (or up to 256 without training) */
    t->eval_chunk = micro > 0 ? micro : (eval_batch(t) < 256 ? eval_batch(t) : 256);
    if (t->val && eval_batch(t) < t->eval_chunk) t->eval_chunk = eval_batch(t);
    int rows = micro > t->eval_chunk ? micro : t->eval_chunk;
    t->targets_host = malloc((size_t)rows * classes * sizeof(float));
    t->losses_host = malloc((size_t)rows * sizeof(float));
    t->logits_host = malloc((size_t)rows * classes * sizeof(float));
    t->targets = be->ops->alloc(be, (size_t)rows * classes * sizeof(float));
    t->losses = be->ops->alloc(be, (size_t)rows * sizeof(float));
    if (!t->targets_host || !t->losses_host || !t->logits_host || !t->targets || !t->losses)
        return error_set(err, "out of memory for the step buffers");
    /* the writable host copy of a training batch that algorithms work on */
    if (t->train) {
        int h, w, c;
        loader_shape(t->train, &h, &w, &c);
        t->st.capacity = (size_t)t->cfg->train_batch_size * h * w * c;
        t->st.images = malloc(t->st.capacity * sizeof(float));
        t->st.labels = malloc((size_t)t->cfg->train_batch_size * sizeof(int32_t));
        t->st.train_res = w;
        if (!t->st.images || !t->st.labels) return error_set(err, "out of memory for the host batch");
    }
    t->st.targets = t->targets_host;
    return 0;
}

int trainer_create(Trainer **out, const Config *cfg, const TrainerOptions *opts, Error *err) {
    *out = NULL;
    Trainer *t = calloc(1, sizeof *t);
    if (!t) return error_set(err, "out of memory");
    t->cfg = cfg;
    t->opts = *opts;
    t->last_eval_batch = -1;
    int rc = 0;
    if (!cfg->model.entry) rc = error_set(err, "model: the recipe names no model (e.g. model: {resnet: {...}})");
    if (rc == 0) {
        t->mopt = cfg->model.options;
        t->loss = t->mopt->loss_name == RESNET_LOSS_BCE ? LOSS_BCE_WITH_LOGITS : LOSS_SOFT_CROSS_ENTROPY;
    }
    if (rc == 0) rc = open_backend(t, err);
    if (rc == 0) set_precision(t->be, cfg->precision, opts->quiet);
    if (rc == 0) rc = open_data(t, err);
    if (rc == 0) {
        t->st.cfg = cfg;
        t->st.be = t->be;
        t->st.model = &t->model;
        t->st.tl = &t->tl;
        t->st.opt = &t->opt;
        t->st.train_loader = t->train;
        t->st.progress = &t->progress;
        t->st.seed = (uint64_t)cfg->seed;
        t->st.trainer = t;
    }
    /* the recipe's algorithms: created, then INIT (model surgery) before the model is built */
    if (rc == 0 && opts->need_train_data) rc = algos_create(t, err);
    if (rc == 0) rc = run_event(t, EVENT_INIT, err);
    if (rc == 0) rc = build_model(t, err);
    if (rc == 0) t->st.classes = t->model.num_classes;
    if (rc == 0 && t->train) rc = timeline_compute(cfg, loader_samples(t->train), &t->tl, err);
    if (rc == 0 && !t->train) t->tl.micro_batch = 0;
    if (rc == 0 && t->opts.need_train_data) rc = optim_create(&t->opt, &cfg->optimizers, t->model.n_weights, t->be, err);
    if (rc == 0 && t->opts.need_train_data) rc = make_run_dir(t, err);
    bool resumed = false;
    if (rc == 0) rc = report_open(&t->rep, t->opts.need_train_data ? t->run_dir : NULL, false, opts->quiet, err);
    if (rc == 0 && t->opts.need_train_data) rc = resume(t, &resumed, err);
    if (rc == 0 && resumed) {
        /* keep the metrics of the run we continue */
        report_close(&t->rep);
        rc = report_open(&t->rep, t->run_dir, true, opts->quiet, err);
    }
    if (rc == 0) rc = fit_micro_batch(t, err);
    if (rc == 0) rc = alloc_buffers(t, err);
    if (rc) {
        trainer_destroy(t);
        return -1;
    }
    *out = t;
    return 0;
}

void trainer_destroy(Trainer *t) {
    if (!t) return;
    for (int k = 0; k < t->n_algos; k++) {
        AlgoRun *a = &t->algos[k];
        if (a->impl->destroy) a->impl->destroy(a->self, &t->st);
        free(a->self);
    }
    free(t->algos);
    free(t->st.images);
    free(t->st.labels);
    for (int i = 0; i < PLAN_CACHE; i++) plan_destroy(&t->model, t->plans[i]);
    if (t->be) {
        if (t->targets) t->be->ops->free(t->be, t->targets);
        if (t->losses) t->be->ops->free(t->be, t->losses);
        optim_destroy(&t->opt, t->be);
        model_free(&t->model);
    }
    free(t->targets_host);
    free(t->losses_host);
    free(t->logits_host);
    loader_destroy(t->train);
    loader_destroy(t->val);
    for (int i = 0; i < t->n_kept; i++) free(t->kept[i]);
    free(t->kept);
    report_close(&t->rep);
    backend_destroy(t->be);
    free(t);
}

/* ------------------------------------------------------------------ evaluation */

int trainer_evaluate(Trainer *t, EvalResult *res, Error *err) {
    memset(res, 0, sizeof *res);
    if (!t->val) return error_set(err, "val_dataset: the recipe has no validation set to evaluate on");
    double t0 = report_now();
    Backend *be = t->be;
    int classes = t->model.num_classes;
    int64_t nb = loader_batches(t->val), top1 = 0, top5 = 0, count = 0;
    if (t->cfg->eval_subset_num_batches > 0 && t->cfg->eval_subset_num_batches < nb) nb = t->cfg->eval_subset_num_batches;
    double ce = 0;
    for (int64_t b = 0; b < nb; b++) {
        if (loader_get(t->val, 0, b, &t->batch, err)) return -1;
        size_t img = (size_t)t->batch.h * t->batch.w * t->batch.c;
        for (int s = 0; s < t->batch.n; s += t->eval_chunk) {
            int n = t->batch.n - s < t->eval_chunk ? t->batch.n - s : t->eval_chunk;
            Plan *p;
            /* every chunk runs at the full chunk size (eval-mode BN treats samples independently) */
            if (get_plan(t, t->eval_chunk, t->batch.h, t->batch.w, false, &p, err)) return -1;
            if (act_upload(be, p->act[0], t->batch.images + s * img, n, (int64_t)t->batch.h * t->batch.w,
                           t->batch.c, err))
                return -1;
            if (model_forward(&t->model, p, false, err)) return -1;
            be->ops->download(be, t->logits_host, p->act[model_output(&t->model)], (size_t)n * classes * sizeof(float));
            metrics_accumulate(t->logits_host, t->batch.labels + s, n, classes, &top1, &top5, &ce);
            count += n;
        }
    }
    res->samples = count;
    res->top1 = count ? (double)top1 / count : 0;
    res->top5 = count ? (double)top5 / count : 0;
    res->cross_entropy = count ? ce / count : 0;
    res->seconds = report_now() - t0;
    return 0;
}

/* Reports the corrupt samples a loader replaced since the last report (one line and one metrics event). */
static void report_corrupt(Trainer *t, Loader *l, const char *what) {
    char msg[256];
    int64_t n = loader_take_corrupt(l, msg, sizeof msg);
    if (n == 0) return;
    report_line(&t->rep, "%s: %lld corrupt sample%s replaced by other samples (first: %s)", what, (long long)n,
                n == 1 ? "" : "s", msg);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "corrupt_samples");
    cJSON_AddStringToObject(o, "dataset", what);
    cJSON_AddNumberToObject(o, "epoch", (double)t->progress.epoch);
    cJSON_AddNumberToObject(o, "count", (double)n);
    cJSON_AddStringToObject(o, "first", msg);
    report_event(&t->rep, o);
}

static int run_eval(Trainer *t, Error *err) {
    if (!t->val) return 0;
    EvalResult r;
    /* EVAL_START / EVAL_END around the evaluation: EMA swaps its weights in and out */
    if (run_event(t, EVENT_EVAL_START, err)) return -1;
    int rc = trainer_evaluate(t, &r, err);
    if (run_event(t, EVENT_EVAL_END, rc ? NULL : err) && rc == 0) return -1;
    if (rc) return -1;
    t->eval_seconds += r.seconds;
    t->last_eval = r;
    t->have_eval = true;
    t->last_eval_batch = t->progress.batch;
    report_corrupt(t, t->val, "val_dataset");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "eval");
    cJSON_AddNumberToObject(o, "epoch", (double)t->progress.epoch);
    cJSON_AddNumberToObject(o, "batch", (double)t->progress.batch);
    cJSON_AddNumberToObject(o, "top1", r.top1);
    cJSON_AddNumberToObject(o, "top5", r.top5);
    cJSON_AddNumberToObject(o, "cross_entropy", r.cross_entropy);
    cJSON_AddNumberToObject(o, "samples", (double)r.samples);
    cJSON_AddNumberToObject(o, "seconds", r.seconds);
    report_event(&t->rep, o);
    report_line(&t->rep, "eval  epoch %lld  batch %lld  top1 %.4f  top5 %.4f  cross_entropy %.4f  (%lld images, %.1fs)",
                (long long)t->progress.epoch, (long long)t->progress.batch, r.top1, r.top5, r.cross_entropy,
                (long long)r.samples, r.seconds);
    return 0;
}

/* ------------------------------------------------------------------ checkpoints */

static int save_checkpoint(Trainer *t, Error *err) {
    if (!t->save_dir[0]) return 0;
    char name[128], weights[4096], state[4096], link[4096];
    snprintf(name, sizeof name, "ep%lld-ba%lld", (long long)t->progress.epoch, (long long)t->progress.batch);
    snprintf(weights, sizeof weights, "%s/%s.safetensors", t->save_dir, name);
    ckpt_state_path(weights, state, sizeof state);
    char ep[32], ba[32];
    snprintf(ep, sizeof ep, "%lld", (long long)t->progress.epoch);
    snprintf(ba, sizeof ba, "%lld", (long long)t->progress.batch);
    const char *keys[3] = {"model_name", "epoch", "batch"}, *vals[3] = {t->mopt->model_name, ep, ba};
    if (ckpt_save_weights(&t->model, weights, 3, keys, vals, err)) return -1;
    CkptHooks hooks = {.save = algos_save, .load = algos_load, .ctx = t};
    if (!t->cfg->save_weights_only && ckpt_save_state(&t->model, &t->opt, &t->progress, &hooks, state, err)) return -1;
    /* latest links: the state link first, so a reader that follows latest.safetensors finds its state */
    char target[256];
    if (!t->cfg->save_weights_only) {
        snprintf(target, sizeof target, "%s.state", name);
        snprintf(link, sizeof link, "%s/latest.state", t->save_dir);
        if (fs_symlink_atomic(target, link, err)) return -1;
    }
    snprintf(target, sizeof target, "%s.safetensors", name);
    snprintf(link, sizeof link, "%s/latest.safetensors", t->save_dir);
    if (fs_symlink_atomic(target, link, err)) return -1;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "checkpoint");
    cJSON_AddStringToObject(o, "path", weights);
    cJSON_AddNumberToObject(o, "epoch", (double)t->progress.epoch);
    cJSON_AddNumberToObject(o, "batch", (double)t->progress.batch);
    report_event(&t->rep, o);
    /* keep only the newest save_num_checkpoints_to_keep (of those this run wrote) */
    char **k = realloc(t->kept, (size_t)(t->n_kept + 1) * sizeof *k);
    if (!k) return error_set(err, "out of memory");
    t->kept = k;
    t->kept[t->n_kept++] = strdup(weights);
    int keep = t->cfg->save_num_checkpoints_to_keep;
    while (keep > 0 && t->n_kept > keep) {
        char old_state[4096];
        ckpt_state_path(t->kept[0], old_state, sizeof old_state);
        unlink(t->kept[0]);
        unlink(old_state);
        free(t->kept[0]);
        memmove(t->kept, t->kept + 1, (size_t)(t->n_kept - 1) * sizeof *t->kept);
        t->n_kept--;
    }
    return 0;
}

/* Whether an interval (ep: at epoch ends, ba: at batch ends) fires now. */
static bool interval_due(const TimeSpec *iv, const Timeline *tl, const Progress *p, bool epoch_end) {
    if (!iv->set || iv->value <= 0) return false;
    switch (iv->unit) {
    case TIME_EPOCH:
        return epoch_end && p->epoch % (int64_t)iv->value == 0;
    case TIME_BATCH:
        return !epoch_end && p->batch % (int64_t)iv->value == 0;
    case TIME_DURATION: {
        int64_t every = (int64_t)(iv->value * (double)tl->total_batches);
        return !epoch_end && every > 0 && p->batch % every == 0;
    }
    case TIME_SAMPLE: {
        int64_t every = (int64_t)ceil(iv->value / tl->batch_size);
        return !epoch_end && every > 0 && p->batch % every == 0;
    }
    }
    return false;
}

/* ------------------------------------------------------------------ training */

/* Forward, loss and backward of micro-batch k (samples [start, start + n) of the host batch in t->st), with
 * the micro-batch events; adds the summed per-sample loss to *loss_sum. grad_scale is 1 / (samples in the batch). */
static int train_micro(Trainer *t, int k, int start, int n, float grad_scale, double *loss_sum, Error *err) {
    Backend *be = t->be;
    TrainState *st = &t->st;
    int classes = t->model.num_classes;
    st->micro = k;
    st->micro_start = start;
    st->micro_n = n;
    if (run_event(t, EVENT_BEFORE_FORWARD, err)) return -1;
    size_t img = (size_t)st->h * st->w * st->c;
    Plan *p;
    if (get_plan(t, n, st->h, st->w, true, &p, err)) return -1;
    if (act_upload(be, p->act[0], st->images + (size_t)start * img, n, (int64_t)st->h * st->w, st->c, err)) return -1;
    /* a stream for the drop layers unique to this forward: (batch, micro-batch, pass) */
    t->model.rng_step = (uint64_t)t->progress.batch * 1024 + (uint64_t)k * 2 + (uint64_t)st->pass;
    if (model_forward(&t->model, p, true, err)) return -1;
    if (run_event(t, EVENT_AFTER_FORWARD, err)) return -1;
    one_hot(st->targets, st->labels + start, n, classes);
    if (run_event(t, EVENT_BEFORE_LOSS, err)) return -1;
    be->ops->upload(be, t->targets, st->targets, (size_t)n * classes * sizeof(float));
    int out = model_output(&t->model);
    be->ops->loss_forward_backward(be, t->loss, n, classes, p->act[out], t->targets, grad_scale, t->losses, p->grad[out]);
    be->ops->download(be, t->losses_host, t->losses, (size_t)n * sizeof(float));
    double sum = 0;
    for (int i = 0; i < n; i++) sum += t->losses_host[i];
    *loss_sum += sum;
    st->micro_loss = sum / n;
    if (run_event(t, EVENT_AFTER_LOSS, err) || run_event(t, EVENT_BEFORE_BACKWARD, err)) return -1;
    if (model_backward(&t->model, p, k > 0, err)) return -1;
    return run_event(t, EVENT_AFTER_BACKWARD, err);
}

/* One pass over the micro-batches of the current batch: the gradients of the mean loss. */
static int train_pass(Trainer *t, double *loss_out, Error *err) {
    int n = t->st.n, micro = t->tl.micro_batch;
    double loss_sum = 0;
    for (int s = 0, k = 0; s < n; s += micro, k++) {
        int m = n - s < micro ? n - s : micro;
        if (train_micro(t, k, s, m, 1.0f / (float)n, &loss_sum, err)) return -1;
    }
    *loss_out = loss_sum / n;
    return 0;
}

/* SAM's closure: the batch's gradients again (pass 1), at the weights as they are now. */
static int rerun_batch(TrainState *st, Error *err) {
    Trainer *t = st->trainer;
    double loss;
    st->pass = 1;
    int rc = train_pass(t, &loss, err);
    st->pass = 0;
    return rc;
}

static int train_batch(Trainer *t, double lr, double *loss_out, Error *err) {
    t->st.pass = 0;
    t->st.rerun = rerun_batch;
    if (run_event(t, EVENT_BEFORE_TRAIN_BATCH, err)) return -1;
    if (train_pass(t, loss_out, err)) return -1;
    if (!isfinite(*loss_out))
        return error_set(err, "the training loss became %s at epoch %lld batch %lld (lr %.4g); lower the learning "
                              "rate or check the data", isnan(*loss_out) ? "NaN" : "infinite",
                         (long long)t->progress.epoch, (long long)t->progress.batch_in_epoch, lr);
    for (int k = 0; k < t->n_algos; k++) {
        AlgoRun *a = &t->algos[k];
        if (a->impl->before_step && a->impl->before_step(a->self, a->choice->options, &t->st, err))
            return error_prefix(err, "algorithms.%s", a->choice->entry->name);
    }
    if (run_event(t, EVENT_AFTER_TRAIN_BATCH, err)) return -1;
    optim_step(&t->opt, t->be, t->model.weights, t->model.grads, lr);
    return 0;
}

/* The loader's batch (read-only) copied into the writable host batch that algorithms work on. */
static void take_batch(Trainer *t) {
    TrainState *st = &t->st;
    const Batch *b = &t->batch;
    st->n = b->n;
    st->h = b->h;
    st->w = b->w;
    st->c = b->c;
    memcpy(st->images, b->images, (size_t)b->n * b->h * b->w * b->c * sizeof(float));
    memcpy(st->labels, b->labels, (size_t)b->n * sizeof(int32_t));
}

int trainer_fit(Trainer *t, Error *err) {
    if (!t->train) return error_set(err, "train_dataset: the recipe has no training set");
    Progress *pg = &t->progress;
    const Timeline *tl = &t->tl;
    report_line(&t->rep, "training %s on %s: %lld epochs x %lld batches of %d (%lld micro-batches), %lld parameters, "
                "run folder %s", t->mopt->model_name, t->be->ops->name, (long long)tl->max_epochs,
                (long long)tl->steps_per_epoch, tl->batch_size, (long long)tl->grad_accum,
                (long long)model_num_parameters(&t->model), t->run_dir);
    double fit_start = report_now();
    if (run_event(t, EVENT_FIT_START, err)) return -1;
    while (pg->batch < tl->total_batches) {
        int64_t epoch = pg->epoch;
        double ep_start = report_now(), ep_loss = 0;
        int64_t ep_batches = 0, ep_samples = 0;
        if (pg->batch_in_epoch == 0 && run_event(t, EVENT_EPOCH_START, err)) return -1;
        while (pg->batch_in_epoch < tl->steps_per_epoch && pg->batch < tl->total_batches) {
            double t0 = report_now();
            if (run_event(t, EVENT_BEFORE_DATALOADER, err)) return -1;
            if (loader_get(t->train, epoch, pg->batch_in_epoch, &t->batch, err)) return -1;
            take_batch(t);
            if (run_event(t, EVENT_AFTER_DATALOADER, err) || run_event(t, EVENT_BATCH_START, err)) return -1;
            double lr = timeline_lr(tl, pg->batch), loss;
            if (train_batch(t, lr, &loss, err)) return -1;
            pg->batch++;
            pg->batch_in_epoch++;
            pg->samples += t->st.n;
            ep_loss += loss;
            ep_batches++;
            ep_samples += t->st.n;
            if (run_event(t, EVENT_BATCH_END, err)) return -1;
            double now = report_now();
            t->train_seconds += now - t0;
            double ips = ep_samples / (now - ep_start);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "event", "batch");
            cJSON_AddNumberToObject(o, "epoch", (double)epoch);
            cJSON_AddNumberToObject(o, "batch_in_epoch", (double)pg->batch_in_epoch);
            cJSON_AddNumberToObject(o, "batch", (double)pg->batch);
            cJSON_AddNumberToObject(o, "samples", (double)pg->samples);
            cJSON_AddNumberToObject(o, "loss", loss);
            cJSON_AddNumberToObject(o, "lr", lr);
            cJSON_AddNumberToObject(o, "res", t->st.w);
            cJSON_AddNumberToObject(o, "images_per_s", ips);
            report_event(&t->rep, o);
            double eta = (double)(tl->total_batches - pg->batch) * (now - fit_start) /
                         (double)(pg->batch > 0 ? pg->batch : 1);
            report_progress(&t->rep, epoch, tl->max_epochs, pg->batch_in_epoch, tl->steps_per_epoch, loss, lr, ips,
                            eta);
            if (interval_due(&t->cfg->eval_interval, tl, pg, false) && run_eval(t, err)) return -1;
            if (interval_due(&t->cfg->save_interval, tl, pg, false) && save_checkpoint(t, err)) return -1;
            if (run_event(t, EVENT_BATCH_CHECKPOINT, err)) return -1;
        }
        if (pg->batch_in_epoch >= tl->steps_per_epoch) {
            pg->epoch++;
            pg->batch_in_epoch = 0;
            if (run_event(t, EVENT_EPOCH_END, err)) return -1;
            double secs = report_now() - ep_start;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "event", "epoch");
            cJSON_AddNumberToObject(o, "epoch", (double)pg->epoch);
            cJSON_AddNumberToObject(o, "batch", (double)pg->batch);
            cJSON_AddNumberToObject(o, "train_loss", ep_batches ? ep_loss / ep_batches : 0);
            cJSON_AddNumberToObject(o, "images_per_s", secs > 0 ? ep_samples / secs : 0);
            cJSON_AddNumberToObject(o, "seconds", secs);
            report_event(&t->rep, o);
            report_line(&t->rep, "epoch %lld/%lld  train_loss %.4f  %.0f img/s  %.1fs", (long long)pg->epoch,
                        (long long)tl->max_epochs, ep_batches ? ep_loss / ep_batches : 0,
                        secs > 0 ? ep_samples / secs : 0, secs);
            report_corrupt(t, t->train, "train_dataset");
            if (interval_due(&t->cfg->eval_interval, tl, pg, true) && t->last_eval_batch != pg->batch &&
                run_eval(t, err))
                return -1;
            if (interval_due(&t->cfg->save_interval, tl, pg, true) && save_checkpoint(t, err)) return -1;
            if (run_event(t, EVENT_EPOCH_CHECKPOINT, err)) return -1;
        }
    }
    /* FIT_END: a final evaluation unless the last batch was just evaluated, and a final checkpoint */
    if (run_event(t, EVENT_FIT_END, err)) return -1;
    if (t->last_eval_batch != pg->batch && (t->cfg->eval_interval.set && t->cfg->eval_interval.value > 0) &&
        run_eval(t, err))
        return -1;
    if (t->save_dir[0] && t->n_kept > 0) {
        char last[4096];
        snprintf(last, sizeof last, "%s/ep%lld-ba%lld.safetensors", t->save_dir, (long long)pg->epoch,
                 (long long)pg->batch);
        if (strcmp(t->kept[t->n_kept - 1], last) != 0 && save_checkpoint(t, err)) return -1;
    } else if (t->save_dir[0] && save_checkpoint(t, err)) {
        return -1;
    }
    return 0;
}

int trainer_write_summary(Trainer *t, double wall_seconds, Error *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "run_name", t->run_name);
    cJSON_AddStringToObject(o, "model", t->mopt->model_name);
    cJSON_AddStringToObject(o, "device", t->be->ops->name);
    cJSON_AddNumberToObject(o, "threads", t->be->threads);
    cJSON_AddStringToObject(o, "compute", t->be->bf16 ? "bf16" : "fp32"); /* what ran, not what was asked */
    cJSON_AddNumberToObject(o, "parameters", (double)model_num_parameters(&t->model));
    cJSON_AddNumberToObject(o, "epochs", (double)t->progress.epoch);
    cJSON_AddNumberToObject(o, "batches", (double)t->progress.batch);
    cJSON_AddNumberToObject(o, "samples", (double)t->progress.samples);
    cJSON_AddNumberToObject(o, "wall_time_s", wall_seconds);
    cJSON_AddNumberToObject(o, "train_time_s", t->train_seconds);
    cJSON_AddNumberToObject(o, "eval_time_s", t->eval_seconds);
    cJSON_AddNumberToObject(o, "train_images_per_s", t->train_seconds > 0 ? t->progress.samples / t->train_seconds : 0);
    if (t->have_eval) {
        cJSON *e = cJSON_AddObjectToObject(o, "final_eval");
        cJSON_AddNumberToObject(e, "top1", t->last_eval.top1);
        cJSON_AddNumberToObject(e, "top5", t->last_eval.top5);
        cJSON_AddNumberToObject(e, "cross_entropy", t->last_eval.cross_entropy);
        cJSON_AddNumberToObject(e, "samples", (double)t->last_eval.samples);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.json", t->run_dir);
    return report_write_json(path, o, err);
}
