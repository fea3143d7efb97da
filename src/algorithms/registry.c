/* registry.c — ALGORITHM_REGISTRY: the one line per algorithm that makes a recipe name available. */
#include "algorithms/algorithms.h"

#define ALGO(n, table, type, checker, h) \
    {.name = n, .fields = table, .options_size = sizeof(type), .check = checker, .help = h}

static const RegistryEntry ALGORITHM_ENTRIES[] = {
    ALGO("blurpool", BLURPOOL_FIELDS, BlurpoolOptions, blurpool_check, "anti-aliased downsampling"),
    {.name = "channels_last", .fields = CHANNELS_LAST_FIELDS, .help = "NHWC layout (ctrain's layout already)"},
    ALGO("ema", EMA_FIELDS, EmaOptions, ema_check, "exponential moving average of the weights"),
    ALGO("label_smoothing", LABEL_SMOOTHING_FIELDS, LabelSmoothingOptions, label_smoothing_check,
         "smoothed targets"),
    ALGO("progressive_resizing", PROGRESSIVE_RESIZING_FIELDS, ProgressiveResizingOptions,
         progressive_resizing_check, "small images early in training"),
    ALGO("mixup", MIXUP_FIELDS, MixupOptions, mixup_check, "mixed images and targets"),
    ALGO("cutmix", CUTMIX_FIELDS, CutmixOptions, cutmix_check, "pasted boxes and mixed targets"),
    ALGO("sam", SAM_FIELDS, SamOptions, sam_check, "sharpness-aware minimization"),
    ALGO("colout", COLOUT_FIELDS, ColoutOptions, colout_check, "random rows and columns dropped"),
    ALGO("randaugment", RANDAUGMENT_FIELDS, RandaugmentOptions, randaugment_check, "random image ops"),
    ALGO("stochastic_depth", STOCHASTIC_DEPTH_FIELDS, StochasticDepthOptions, stochastic_depth_check,
         "residual branches dropped at random"),
    ALGO("squeeze_excite", SQUEEZE_EXCITE_FIELDS, SqueezeExciteOptions, squeeze_excite_check,
         "squeeze-and-excitation blocks"),
};

const Registry ALGORITHM_REGISTRY = {"algorithm", ALGORITHM_ENTRIES,
                                     sizeof ALGORITHM_ENTRIES / sizeof ALGORITHM_ENTRIES[0]};
