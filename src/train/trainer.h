/* trainer.h — the training loop: Composer's Trainer.fit() for one process.
 *
 * Per batch: load (loader) → split into grad_accum micro-batches → forward → loss → backward (gradients
 * accumulated) → optimizer step at lr * alpha(batch) → log; evaluation and checkpoints at their intervals.
 * Composer's events are raised in Composer's order and the recipe's algorithms run on them (train/state.h).
 * The trainer owns the backend, model, loaders, optimizer and run folder for one run. */
#ifndef CTRAIN_TRAIN_TRAINER_H
#define CTRAIN_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/error.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "model/model.h"
#include "model/resnet.h"
#include "train/optim.h"
#include "train/report.h"
#include "train/state.h"
#include "train/timeline.h"

/* Settings that come from ctrain's own flags rather than the recipe. */
typedef struct TrainerOptions {
    const char *device;       /* "cpu", "ref"; NULL: from the recipe's device key */
    int threads;              /* 0: all cores */
    const char *run_dir;      /* NULL: runs/<run_name> */
    bool quiet;               /* no progress output */
    bool need_train_data;     /* train: open the training set; eval/predict: not needed */
} TrainerOptions;

typedef struct EvalResult {
    double top1, top5, cross_entropy;
    int64_t samples;
    double seconds;
} EvalResult;

typedef struct Plan Plan;

/* One algorithm of the recipe at run time. */
typedef struct AlgoRun {
    const Choice *choice;          /* name and options */
    const struct AlgorithmImpl *impl;
    void *self;                    /* its private state */
} AlgoRun;

typedef struct Trainer {
    const Config *cfg;
    const ResnetOptions *mopt;
    TrainerOptions opts;
    Backend *be;
    Model model;
    LossKind loss;
    Loader *train, *val;
    Timeline tl;
    Optimizer opt;
    Progress progress;
    Reporter rep;
    char run_dir[2048];
    char save_dir[2048];      /* "" when checkpoints are off */
    char run_name[256];
    /* plans by shape, reused across steps (at most PLAN_CACHE of them) */
    Plan *plans[4];
    /* per-step buffers */
    Batch batch;              /* the current batch (loader memory, valid until the next loader_get) */
    TrainState st;            /* what algorithms see; st.images is the writable host copy of the batch */
    AlgoRun *algos;           /* in recipe order */
    int n_algos;
    float *targets_host;      /* [micro, classes] */
    float *targets;           /* [micro, classes] backend */
    float *losses;            /* [micro] backend */
    float *losses_host;       /* [micro] */
    float *logits_host;       /* [eval chunk, classes] */
    int eval_chunk;
    char **kept;              /* checkpoints written by this run, oldest first */
    int n_kept;
    double train_seconds, eval_seconds;
    EvalResult last_eval;
    bool have_eval;
    int64_t last_eval_batch;
} Trainer;

/* Sets up everything a run needs (backend, model, data, optimizer, run folder, resume). */
int trainer_create(Trainer **out, const Config *cfg, const TrainerOptions *opts, Error *err);
/* Trains to max_duration, evaluating and checkpointing as the recipe says. */
int trainer_fit(Trainer *t, Error *err);
/* Evaluates the current weights on the validation set (eval-mode BN). */
int trainer_evaluate(Trainer *t, EvalResult *res, Error *err);
/* Writes summary.json into the run folder. */
int trainer_write_summary(Trainer *t, double wall_seconds, Error *err);
/* Frees everything. */
void trainer_destroy(Trainer *t);

/* Top-k accuracy counts and summed cross-entropy over n rows of logits [n, c] with labels [n]. */
void metrics_accumulate(const float *logits, const int32_t *labels, int n, int c, int64_t *top1, int64_t *top5,
                        double *ce_sum);

#endif
