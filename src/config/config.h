/* config.h — a run's configuration: Composer 0.9's recipe schema (TrainerHparams) as a C struct.
 *
 * config_load() reads a recipe (YAML), applies command-line overrides the way Composer's yahp parser does
 * (--dotted.path value, bare boolean flags, list values, shortest-unique-suffix aliases such as
 * --scale_schedule_ratio, `--device cpu` to choose a registry entry), fills defaults, validates, and
 * collects notes about keys that mean nothing to ctrain (e.g. dataloader.pin_memory). The registries of
 * models, datasets, optimizers, schedulers and algorithms live in the modules that implement them. */
#ifndef CTRAIN_CONFIG_CONFIG_H
#define CTRAIN_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config/schema.h"

/* PRECISION_AUTO (the default, as Composer 0.9's None): AMP on a GPU, fp32 on the CPU; the trainer resolves it. */
typedef enum Precision { PRECISION_FP32 = 0, PRECISION_AMP, PRECISION_BF16, PRECISION_FP16, PRECISION_AUTO } Precision;

/* The dataloader block: what ctrain's loader takes from it. */
typedef struct DataloaderOptions {
    int num_workers;               /* loader threads; 0 = one per core */
    int prefetch_factor;           /* batches ahead */
} DataloaderOptions;

typedef struct Config {
    Choice model;                  /* model: {resnet: ResnetOptions} */
    Choice train_dataset;          /* train_dataset: {idx|npy|imagenet|synthetic: ...} */
    Choice val_dataset;            /* val_dataset: same registry; may be empty */
    Choice optimizers;             /* optimizers: {decoupled_sgdw|sgd: ...} (0.7: `optimizer`) */
    ChoiceList schedulers;         /* at most one; a map or a one-item list */
    ChoiceList algorithms;         /* in recipe order */
    ChoiceList callbacks;          /* accepted, reported (ctrain logs by itself) */
    ChoiceList loggers;            /* accepted, reported */
    Choice device;                 /* device: {cpu: {}} | {gpu: {}}; no entry = GPU when there is one */
    DataloaderOptions dataloader;  /* dataloader: {num_workers, prefetch_factor} */
    int precision;                 /* Precision */
    TimeSpec max_duration;
    double scale_schedule_ratio;
    int train_batch_size;          /* global batch size */
    int eval_batch_size;
    TimeSpec eval_interval;        /* int = epochs; 0 disables */
    char *grad_accum;              /* "1", "4", or "auto" (see config_grad_accum) */
    int64_t seed;                  /* default 42 (Composer's default is a random seed) */
    char *run_name;
    char *save_folder;             /* may contain {run_name} */
    TimeSpec save_interval;
    int save_num_checkpoints_to_keep;
    bool save_overwrite;
    bool save_weights_only;
    char *load_path;
    bool load_weights_only;
    bool load_strict_model_weights;
    StringList load_ignore_keys;   /* state-dict keys not loaded from load_path (e.g. fc.weight, fc.bias) */
    bool autoresume;
    int train_subset_num_batches;  /* -1: all */
    int eval_subset_num_batches;   /* -1: all */
    bool step_schedulers_every_batch;

    /* ---- filled by config_load, not from the recipe ---- */
    YNode *tree;                   /* the merged recipe + overrides, for the run folder */
    char *recipe_path;
    Notes notes;                   /* reported once by the CLI */
} Config;

/* The top-level field table (for schema_emit, docs, and the override resolver). */
extern const FieldSpec CONFIG_FIELDS[];

/* Loads recipe_path (may be NULL: all defaults) and applies overrides[0..n_overrides), which are
 * command-line words as given ("--optimizers.sgd.lr", "0.1", "--autoresume", ...). */
int config_load(const char *recipe_path, int n_overrides, char **overrides, Config *cfg, Error *err);
/* Frees everything config_load allocated. */
void config_free(Config *cfg);
/* Writes the resolved configuration (every field, defaults included) as YAML. */
void config_emit(const Config *cfg, FILE *out);
/* grad_accum as a number: "auto" gives 0 (the caller picks), an integer gives itself. */
int config_grad_accum(const Config *cfg);

#endif
