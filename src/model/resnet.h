/* resnet.h — the ResNet family as torchvision builds it (v1.5), plus the small-image (CIFAR-style) variants.
 *
 * model_name picks the architecture:
 *   resnet18/34 (BasicBlock) and resnet50/101/152 (Bottleneck), wide_resnet50_2/101_2: torchvision's exact
 *     layer structure and state_dict names — 7x7/2 stem + 3x3/2 max-pool, stride on the 3x3 conv (v1.5),
 *     1x1 conv + BN projection shortcuts;
 *   resnet{6n+2} (resnet8, 14, 20, 32, 44, 56, 110): He et al.'s CIFAR ResNet — 3x3 stem, no max-pool, three
 *     stages of n BasicBlocks with widths w, 2w, 4w (w = 16 unless `width` says), 1x1 conv + BN shortcuts.
 * `stem: cifar` also gives torchvision families the 3x3/1 stem without max-pool for 28-64 px inputs, and
 * `layers: [n1, n2, ...]` sets the blocks per stage (1 to 4 stages) while the name picks the block type. */
#ifndef CTRAIN_MODEL_RESNET_H
#define CTRAIN_MODEL_RESNET_H

#include <stdbool.h>

#include "config/schema.h"
#include "model/model.h"

typedef enum ResnetStem { STEM_AUTO = 0, STEM_IMAGENET, STEM_CIFAR } ResnetStem;
typedef enum ResnetLoss { RESNET_LOSS_SOFT_CE = 0, RESNET_LOSS_BCE } ResnetLoss;

/* model: {resnet: ResnetOptions} (Composer 0.9 ResNetHparams plus ctrain's stem/width/in_channels). */
typedef struct ResnetOptions {
    char *model_name;
    int num_classes;
    StringList initializers;   /* Composer names, applied in order after torchvision's own init */
    int loss_name;             /* ResnetLoss */
    bool pretrained;           /* must be false: ctrain downloads nothing (use load_path) */
    int groups;                /* 1 */
    int width_per_group;       /* 64; 128 for wide ResNets */
    int width;                 /* stem/first-stage width; 0 = 64 (torchvision) or 16 (CIFAR) */
    int stem;                  /* ResnetStem */
    int in_channels;           /* 0 = from the dataset */
    bool zero_init_residual;   /* torchvision: zero the last BN weight of every block */
    DoubleList layers;         /* blocks per stage, overriding the name's (e.g. [2, 2, 2, 2]); empty: by name */
} ResnetOptions;

/* Model surgery: the Composer 0.9 algorithms that change the network (docs/design.md, "Model surgery"), as
 * building options. The trainer fills it from the recipe's algorithm options at INIT; zero = no surgery.
 *   BlurPool: a [1,2,1]x[1,2,1]/16 depthwise blur before every conv with stride > 1 and in_channels >=
 *     blur_min_channels (blur_first; else the conv runs at stride 1 and the blur takes its stride), and every
 *     max-pool becomes max-pool(k, stride 1) + blur(stride).
 *   StochasticDepth: each residual block's branch (its last BN's output) is multiplied by a per-sample
 *     ('sample') or per-batch ('block') 0/1 mask in training and by 1-p in eval; p of block i of L (1-based,
 *     module order) is i/L * sd_drop_rate ('linear') or sd_drop_rate ('uniform'). Composer targets Bottleneck
 *     blocks only; sd_basic_blocks also targets BasicBlock networks (ctrain's extension).
 *   SqueezeExcite: after every conv with min(in, out channels) >= se_min_channels, y = conv * sigmoid(W2
 *     relu(W1 avgpool(conv))), W1 [latent, C], W2 [C, latent], no biases; latent = se_latent_channels when
 *     >= 1, else int(se_latent_channels * C). */
typedef struct ResnetSurgery {
    bool blurpool;               /* Composer BlurPool */
    bool blur_convs, blur_maxpools, blur_first;
    int blur_min_channels;
    bool stochastic_depth;       /* Composer StochasticDepth */
    int sd_method;               /* SdMethod (algorithms.h): 0 block, 1 sample */
    double sd_drop_rate;
    int sd_distribution;         /* SdDistribution (algorithms.h): 0 uniform, 1 linear */
    bool sd_basic_blocks;        /* ctrain: also BasicBlock networks (Composer only targets Bottleneck) */
    bool squeeze_excite;         /* Composer SqueezeExcite */
    double se_latent_channels;
    int se_min_channels;
} ResnetSurgery;

extern const Registry MODEL_REGISTRY;

/* Builds the network described by o (with in_channels input channels when o->in_channels is 0) into m.
 * Parameters are not allocated yet (model_alloc). The same as resnet_build_surgery with no surgery. */
int resnet_build(const ResnetOptions *o, int in_channels, Model *m, Error *err);
/* Builds the network of o with the model surgery s (NULL: none) applied, as Composer's INIT would leave it. */
int resnet_build_surgery(const ResnetOptions *o, int in_channels, const ResnetSurgery *s, Model *m, Error *err);

#endif
