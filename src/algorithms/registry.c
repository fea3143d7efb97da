/* registry.c — ALGORITHM_REGISTRY: the one line per algorithm that makes a recipe name available. */
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"

#define ALGO(n, table, type, checker, run, h) \
    {.name = n, .fields = table, .options_size = sizeof(type), .check = checker, .impl = &run, .help = h}

static const RegistryEntry ALGORITHM_ENTRIES[] = {
    ALGO("blurpool", BLURPOOL_FIELDS, BlurpoolOptions, blurpool_check, BLURPOOL_IMPL, "anti-aliased downsampling"),
    {.name = "channels_last", .fields = CHANNELS_LAST_FIELDS, .impl = &CHANNELS_LAST_IMPL,
     .help = "NHWC layout (ctrain's layout already)"},
    ALGO("ema", EMA_FIELDS, EmaOptions, ema_check, EMA_IMPL, "exponential moving average of the weights"),
    ALGO("label_smoothing", LABEL_SMOOTHING_FIELDS, LabelSmoothingOptions, label_smoothing_check,
         LABEL_SMOOTHING_IMPL, "smoothed targets"),
    ALGO("progressive_resizing", PROGRESSIVE_RESIZING_FIELDS, ProgressiveResizingOptions,
         progressive_resizing_check, PROGRESSIVE_RESIZING_IMPL, "small images early in training"),
    ALGO("mixup", MIXUP_FIELDS, MixupOptions, mixup_check, MIXUP_IMPL, "mixed images and targets"),
    ALGO("cutmix", CUTMIX_FIELDS, CutmixOptions, cutmix_check, CUTMIX_IMPL, "pasted boxes and mixed targets"),
    ALGO("sam", SAM_FIELDS, SamOptions, sam_check, SAM_IMPL, "sharpness-aware minimization"),
    ALGO("colout", COLOUT_FIELDS, ColoutOptions, colout_check, COLOUT_IMPL, "random rows and columns dropped"),
    ALGO("randaugment", RANDAUGMENT_FIELDS, RandaugmentOptions, randaugment_check, RANDAUGMENT_IMPL,
         "random image ops"),
    ALGO("stochastic_depth", STOCHASTIC_DEPTH_FIELDS, StochasticDepthOptions, stochastic_depth_check,
         STOCHASTIC_DEPTH_IMPL, "residual branches dropped at random"),
    ALGO("squeeze_excite", SQUEEZE_EXCITE_FIELDS, SqueezeExciteOptions, squeeze_excite_check,
         SQUEEZE_EXCITE_IMPL, "squeeze-and-excitation blocks"),
};

const Registry ALGORITHM_REGISTRY = {"algorithm", ALGORITHM_ENTRIES,
                                     sizeof ALGORITHM_ENTRIES / sizeof ALGORITHM_ENTRIES[0]};

void algo_rng(Rng *r, const TrainState *s, int slot) {
    rng_init(r, s->seed, RNG_ALGO, (uint64_t)(slot * 4 + s->pass), (uint64_t)s->progress->batch * 4096 + (uint64_t)s->micro);
}

void algo_rng_batch(Rng *r, const TrainState *s, int slot) {
    rng_init(r, s->seed, RNG_ALGO, (uint64_t)(slot * 4 + 3), (uint64_t)s->progress->batch);
}

int algo_grow(void **buf, size_t *cap, size_t bytes, Error *err) {
    if (bytes <= *cap) return 0;
    void *p = realloc(*buf, bytes);
    if (!p) return error_set(err, "out of memory (%zu bytes for an algorithm's buffer)", bytes);
    *buf = p;
    *cap = bytes;
    return 0;
}

void algo_mix_targets(TrainState *s, float keep, const int64_t *perm) {
    float other = 1.0f - keep;
    for (int i = 0; i < s->micro_n; i++) {
        float *t = s->targets + (size_t)i * s->classes;
        for (int c = 0; c < s->classes; c++) t[c] = keep * t[c];
        t[s->labels[s->micro_start + perm[i]]] += other;
    }
}

int algorithms_surgery(const ChoiceList *list, ResnetSurgery *out, Error *err) {
    TrainState s;
    memset(&s, 0, sizeof s);
    for (int k = 0; k < list->n; k++) {
        const AlgorithmImpl *impl = list->items[k].entry->impl;
        /* only the INIT hooks of the surgery algorithms, which need no private state */
        if (impl->run && !impl->state_size && impl->run(NULL, list->items[k].options, EVENT_INIT, &s, err))
            return error_prefix(err, "algorithms.%s", list->items[k].entry->name);
    }
    *out = s.surgery;
    return 0;
}
