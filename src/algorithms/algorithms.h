/* algorithms.h — the training-speed algorithms of Composer 0.9 that ctrain implements: their recipe options
 * (names and defaults as Composer 0.9 has them; reference/composer.md §3) and ALGORITHM_REGISTRY, which the
 * recipe's `algorithms:` list draws from.
 *
 * Each algorithm lives in its own file, src/algorithms/<name>.c: its option table (<NAME>_FIELDS), its range
 * and unit checks (<name>_check) and its event handlers. Adding an algorithm is adding that file and one line
 * in registry.c. Options that Composer has but ctrain does not implement are rejected by the checks. */
#ifndef CTRAIN_ALGORITHMS_ALGORITHMS_H
#define CTRAIN_ALGORITHMS_ALGORITHMS_H

#include <stdbool.h>

#include "core/rng.h"

#include "config/schema.h"
#include "io/safetensors.h"
#include "train/state.h"

extern const Registry ALGORITHM_REGISTRY;

/* What an algorithm does at run time: its hooks, each optional. `self` is state_size bytes, zeroed, owned by
 * the trainer; `options` is the algorithm's parsed options struct. */
typedef struct AlgorithmImpl {
    size_t state_size;
    /* Before INIT: set up private state. */
    int (*create)(void *self, const void *options, TrainState *s, Error *err);
    /* On every event (algorithms filter the ones they need). */
    int (*run)(void *self, const void *options, Event e, TrainState *s, Error *err);
    /* Just before the optimizer step, after AFTER_TRAIN_BATCH's gradients: may redo the batch through s->rerun. */
    int (*before_step)(void *self, const void *options, TrainState *s, Error *err);
    /* Checkpoints: extra tensors in the state file, and reading them back. */
    int (*save)(void *self, const void *options, StWriter *w, TrainState *s, Error *err);
    int (*load)(void *self, const void *options, const SafeTensors *st, const char *path, TrainState *s, Error *err);
    void (*destroy)(void *self, TrainState *s);
} AlgorithmImpl;

extern const AlgorithmImpl BLURPOOL_IMPL, CHANNELS_LAST_IMPL, EMA_IMPL, LABEL_SMOOTHING_IMPL,
    PROGRESSIVE_RESIZING_IMPL, MIXUP_IMPL, CUTMIX_IMPL, SAM_IMPL, COLOUT_IMPL, RANDAUGMENT_IMPL,
    STOCHASTIC_DEPTH_IMPL, SQUEEZE_EXCITE_IMPL;

/* Shared by the algorithms: the random stream of algorithm `slot` for the current (batch, micro-batch, pass). */
void algo_rng(Rng *r, const TrainState *s, int slot);
/* The stream name for the batch (not the micro-batch) — for batch-level choices such as ColOut's. */
void algo_rng_batch(Rng *r, const TrainState *s, int slot);
/* The model surgery the algorithms of list ask for at INIT (BlurPool, StochasticDepth, SqueezeExcite). */
int algorithms_surgery(const ChoiceList *list, ResnetSurgery *out, Error *err);
/* Grows a malloc'ed scratch buffer to at least bytes (algorithms allocate on first use only). */
int algo_grow(void **buf, size_t *cap, size_t bytes, Error *err);
/* MixUp/CutMix target mixing of the micro-batch: targets = keep * targets + (1 - keep) * onehot(labels[perm]). */
void algo_mix_targets(TrainState *s, float keep, const int64_t *perm);
/* Fixed stream slots, one per algorithm that draws random numbers. */
enum {
    ALGO_SLOT_MIXUP = 1,
    ALGO_SLOT_CUTMIX,
    ALGO_SLOT_COLOUT,
    ALGO_SLOT_STOCHASTIC_DEPTH,
    ALGO_SLOT_RANDAUGMENT,
    ALGO_SLOT_PROGRESSIVE_RESIZING,
};


/* blurpool: blur before strided convs (in_channels >= min_channels) and after max-pools. */
typedef struct BlurpoolOptions {
    bool replace_convs, replace_maxpools, blur_first;
    int min_channels;
} BlurpoolOptions;
extern const FieldSpec BLURPOOL_FIELDS[];
int blurpool_check(const void *options, Error *err);

/* channels_last: no options (ctrain's activations are NHWC already). */
extern const FieldSpec CHANNELS_LAST_FIELDS[];

/* ema: exponential moving average of weights and buffers, evaluated in place of the model. */
typedef struct EmaOptions {
    TimeSpec half_life;          /* ba or ep; default 100ba (Composer 0.7's hparams default) */
    TimeSpec update_interval;    /* same unit as half_life; unset (.set false) = 1 of half_life's unit */
    bool train_with_ema_weights;
} EmaOptions;
extern const FieldSpec EMA_FIELDS[];
int ema_check(const void *options, Error *err);

/* label_smoothing: targets become onehot*(1-s) + s/C. */
typedef struct LabelSmoothingOptions {
    double smoothing;
} LabelSmoothingOptions;
extern const FieldSpec LABEL_SMOOTHING_FIELDS[];
int label_smoothing_check(const void *options, Error *err);

/* progressive_resizing: train batches shrunk (nearest-neighbour downscaling or a random crop), growing to full size. */
typedef enum PrMode { PR_MODE_RESIZE = 0, PR_MODE_CROP } PrMode;
typedef struct ProgressiveResizingOptions {
    int mode;                    /* PrMode */
    double initial_scale, finetune_fraction, delay_fraction;
    int size_increment;
    bool resize_targets;         /* must be false */
} ProgressiveResizingOptions;
extern const FieldSpec PROGRESSIVE_RESIZING_FIELDS[];
int progressive_resizing_check(const void *options, Error *err);

/* mixup: convex combination of each batch with a permutation of itself. */
typedef struct MixupOptions {
    double alpha;
    bool interpolate_loss;
} MixupOptions;
extern const FieldSpec MIXUP_FIELDS[];
int mixup_check(const void *options, Error *err);

/* cutmix: a box of a permuted image pasted into each image. */
typedef struct CutmixOptions {
    double alpha;
    bool interpolate_loss, uniform_sampling;
} CutmixOptions;
extern const FieldSpec CUTMIX_FIELDS[];
int cutmix_check(const void *options, Error *err);

/* sam: sharpness-aware minimization every `interval` steps. */
typedef struct SamOptions {
    double rho, epsilon;
    int interval;
} SamOptions;
extern const FieldSpec SAM_FIELDS[];
int sam_check(const void *options, Error *err);

/* colout: drop random rows and columns, the same for the whole batch or drawn for each image. */
typedef enum ColoutResizeTarget { COLOUT_TARGET_AUTO = 0, COLOUT_TARGET_TRUE, COLOUT_TARGET_FALSE } ColoutResizeTarget;
typedef struct ColoutOptions {
    double p_row, p_col;
    bool batch;                  /* the same rows and columns for the whole batch; false: for each image */
    int resize_target;           /* ColoutResizeTarget; true is rejected (targets are class labels) */
} ColoutOptions;
extern const FieldSpec COLOUT_FIELDS[];
int colout_check(const void *options, Error *err);

/* randaugment: `depth` random image ops of strength up to `severity`, per train image. */
typedef enum RandaugmentSet { RA_SET_ALL = 0, RA_SET_SAFE, RA_SET_ORIGINAL } RandaugmentSet;
typedef struct RandaugmentOptions {
    int severity, depth;
    int augmentation_set;        /* RandaugmentSet */
} RandaugmentOptions;
extern const FieldSpec RANDAUGMENT_FIELDS[];
int randaugment_check(const void *options, Error *err);

/* stochastic_depth: residual branches dropped at random (block) or per sample (sample). */
typedef enum SdMethod { SD_METHOD_BLOCK = 0, SD_METHOD_SAMPLE } SdMethod;
typedef enum SdDistribution { SD_DIST_UNIFORM = 0, SD_DIST_LINEAR } SdDistribution;
typedef struct StochasticDepthOptions {
    char *target_layer_name;     /* only "ResNetBottleneck" is implemented */
    int stochastic_method;       /* SdMethod */
    double drop_rate;
    int drop_distribution;       /* SdDistribution */
    TimeSpec drop_warmup;        /* must be 0 with sample */
    bool use_same_gpu_seed;      /* Composer 0.7 (block mode): the same drop decisions on every rank */
} StochasticDepthOptions;
extern const FieldSpec STOCHASTIC_DEPTH_FIELDS[];
int stochastic_depth_check(const void *options, Error *err);

/* squeeze_excite: SE blocks after convs with at least min_channels output channels. */
typedef struct SqueezeExciteOptions {
    double latent_channels;      /* >= 1: channels; < 1: fraction of the conv's channels */
    int min_channels;
} SqueezeExciteOptions;
extern const FieldSpec SQUEEZE_EXCITE_FIELDS[];
int squeeze_excite_check(const void *options, Error *err);

/* Progressive resizing's image side for a run at fraction f of training (Composer 0.9's formula). */
int progressive_resizing_size(const ProgressiveResizingOptions *o, int full, double f);
/* EMA's smoothing per update, 2^-(update_interval / half_life). */
double ema_smoothing(const EmaOptions *o);

#endif
