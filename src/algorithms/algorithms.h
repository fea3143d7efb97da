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

#include "config/schema.h"

extern const Registry ALGORITHM_REGISTRY;

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

/* progressive_resizing: nearest-neighbour downscaling of train batches, growing to full size. */
typedef enum PrMode { PR_MODE_RESIZE = 0, PR_MODE_CROP } PrMode;
typedef struct ProgressiveResizingOptions {
    int mode;                    /* PrMode; only resize is implemented */
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

/* colout: drop random rows and columns of whole batches. */
typedef enum ColoutResizeTarget { COLOUT_TARGET_AUTO = 0, COLOUT_TARGET_TRUE, COLOUT_TARGET_FALSE } ColoutResizeTarget;
typedef struct ColoutOptions {
    double p_row, p_col;
    bool batch;                  /* must be true (batch-wise ColOut) */
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

#endif
