/* resnet.c — the ResNet architectures (torchvision v1.5 and CIFAR-style) as layer lists, and their recipe
 * options. The builder follows torchvision/models/resnet.py line by line so names and order match, and applies
 * Composer 0.9's model surgery (BlurPool, StochasticDepth, SqueezeExcite) while building, leaving the network
 * Composer's INIT event would leave (composer/algorithms/{blurpool,stochastic_depth,squeeze_excite}). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/init.h"
#include "model/resnet.h"

static const char *const STEM_NAMES[] = {"auto", "imagenet", "cifar", NULL};
static const char *const LOSS_NAMES[] = {"soft_cross_entropy", "binary_cross_entropy_with_logits", NULL};

static int resnet_check(const void *options, Error *err) {
    const ResnetOptions *o = options;
    if (o->pretrained)
        return error_set(err, "pretrained: ctrain downloads no weights; set pretrained: false and give "
                              "load_path: torchvision_weights.safetensors");
    if (o->groups != 1) return error_set(err, "groups: only 1 is supported (got %d)", o->groups);
    if (o->num_classes < 1) return error_set(err, "num_classes must be >= 1 (got %d)", o->num_classes);
    if (init_check_names(o, err)) return -1;
    if (o->layers.n > 4) return error_set(err, "layers: at most 4 stages (got %d)", o->layers.n);
    for (int i = 0; i < o->layers.n; i++)
        if (o->layers.v[i] < 1 || o->layers.v[i] != (int)o->layers.v[i] || o->layers.v[i] > 1000)
            return error_set(err, "layers: block counts must be whole numbers >= 1 (got %g)", o->layers.v[i]);
    return 0;
}

static const FieldSpec RESNET_FIELDS[] = {
    {.name = "model_name", .type = F_STRING, .offset = offsetof(ResnetOptions, model_name), .def = "resnet50",
     .help = "resnet18/34/50/101/152, wide_resnet50_2/101_2, or CIFAR-style resnet{6n+2} (resnet20, resnet56)"},
    {.name = "num_classes", .type = F_INT, .offset = offsetof(ResnetOptions, num_classes), .def = "1000"},
    {.name = "initializers", .type = F_STRING_LIST, .offset = offsetof(ResnetOptions, initializers), .def = "[]",
     .help = "Composer initializers applied after torchvision's: KAIMING_NORMAL, KAIMING_UNIFORM, BN_UNIFORM, "
             "BN_ONES, XAVIER_NORMAL, XAVIER_UNIFORM, LINEAR_LOG_CONSTANT_BIAS"},
    {.name = "loss_name", .type = F_ENUM, .offset = offsetof(ResnetOptions, loss_name),
     .def = "soft_cross_entropy", .enum_values = LOSS_NAMES},
    {.name = "pretrained", .type = F_BOOL, .offset = offsetof(ResnetOptions, pretrained), .def = "false"},
    {.name = "groups", .type = F_INT, .offset = offsetof(ResnetOptions, groups), .def = "1"},
    {.name = "width_per_group", .type = F_INT, .offset = offsetof(ResnetOptions, width_per_group), .def = "64",
     .min = 1, .max = 4096},
    {.name = "width", .type = F_INT, .offset = offsetof(ResnetOptions, width), .def = "0", .min = 0, .max = 4096,
     .help = "ctrain: width of the stem and first stage (0: 64, or 16 for CIFAR-style)"},
    {.name = "stem", .type = F_ENUM, .offset = offsetof(ResnetOptions, stem), .def = "auto",
     .enum_values = STEM_NAMES, .help = "ctrain: imagenet (7x7/2 + max-pool) or cifar (3x3/1); auto by name"},
    {.name = "in_channels", .type = F_INT, .offset = offsetof(ResnetOptions, in_channels), .def = "0", .min = 0,
     .max = 64, .help = "ctrain: input channels (0: from the dataset)"},
    {.name = "zero_init_residual", .type = F_BOOL, .offset = offsetof(ResnetOptions, zero_init_residual),
     .def = "false", .help = "torchvision: zero-init the last BN of each block"},
    {.name = "layers", .type = F_DOUBLE_LIST, .offset = offsetof(ResnetOptions, layers), .def = "[]",
     .help = "ctrain: blocks per stage, e.g. [2, 2, 2, 2] (1-4 stages); empty: as model_name says"},
    {0},
};

static const RegistryEntry MODEL_ENTRIES[] = {
    {.name = "resnet", .fields = RESNET_FIELDS, .options_size = sizeof(ResnetOptions), .check = resnet_check,
     .help = "torchvision ResNet v1.5 and CIFAR-style ResNets"},
};
const Registry MODEL_REGISTRY = {"model", MODEL_ENTRIES, 1};

/* ------------------------------------------------------------------ architecture */

typedef struct Arch {
    bool bottleneck;
    bool cifar_stem;
    int stages;
    int blocks[4];
    int width;          /* planes of the first stage */
    int width_per_group;
} Arch;

static int arch_by_name(const ResnetOptions *o, Arch *a, Error *err);

/* The architecture: by name, then the block counts of `layers` when given. */
static int arch_from_name(const ResnetOptions *o, Arch *a, Error *err) {
    if (arch_by_name(o, a, err)) return -1;
    if (o->layers.n > 0) {
        a->stages = o->layers.n;
        for (int s = 0; s < a->stages; s++) a->blocks[s] = (int)o->layers.v[s];
    }
    return 0;
}

static int arch_by_name(const ResnetOptions *o, Arch *a, Error *err) {
    memset(a, 0, sizeof *a);
    const char *name = o->model_name ? o->model_name : "resnet50";
    static const struct { const char *name; bool bottleneck; int blocks[4]; int wpg; } TV[] = {
        {"resnet18", false, {2, 2, 2, 2}, 64},   {"resnet34", false, {3, 4, 6, 3}, 64},
        {"resnet50", true, {3, 4, 6, 3}, 64},    {"resnet101", true, {3, 4, 23, 3}, 64},
        {"resnet152", true, {3, 8, 36, 3}, 64},  {"wide_resnet50_2", true, {3, 4, 6, 3}, 128},
        {"wide_resnet101_2", true, {3, 4, 23, 3}, 128},
    };
    for (size_t i = 0; i < sizeof TV / sizeof TV[0]; i++) {
        if (strcmp(name, TV[i].name) != 0) continue;
        a->bottleneck = TV[i].bottleneck;
        a->stages = 4;
        memcpy(a->blocks, TV[i].blocks, sizeof a->blocks);
        a->width = o->width ? o->width : 64;
        a->width_per_group = TV[i].wpg != 64 ? TV[i].wpg : o->width_per_group;
        a->cifar_stem = o->stem == STEM_CIFAR;
        if (!a->bottleneck && a->width_per_group != 64)
            return error_set(err, "model.resnet.width_per_group: BasicBlock networks (%s) need 64", name);
        return 0;
    }
    int depth = 0;
    char tail = 0;
    if (sscanf(name, "resnet%d%c", &depth, &tail) == 1 && depth >= 8 && (depth - 2) % 6 == 0) {
        a->stages = 3;
        for (int s = 0; s < 3; s++) a->blocks[s] = (depth - 2) / 6;
        a->width = o->width ? o->width : 16;
        a->width_per_group = 64;
        a->cifar_stem = o->stem != STEM_IMAGENET;
        return 0;
    }
    return error_set(err, "model.resnet.model_name: unknown model '%s' (choose resnet18, resnet34, resnet50, "
                          "resnet101, resnet152, wide_resnet50_2, wide_resnet101_2, or resnet{6n+2} such as "
                          "resnet20, resnet56)", name);
}

/* ------------------------------------------------------------------ model surgery */

/* The network being built and the surgery applied while building it. */
typedef struct Builder {
    Model *m;
    const Arch *a;
    const ResnetSurgery *s;      /* never NULL: all zero = no surgery */
    int sd_blocks;               /* stochastic depth: blocks it targets (Composer's module_count); 0 = none */
    int sd_index;                /* 1-based index of the last targeted block built (module_index + 1) */
} Builder;

enum { SD_BLOCK = 0, SD_SAMPLE = 1 };       /* = SdMethod in algorithms/algorithms.h */
enum { SD_UNIFORM = 0, SD_LINEAR = 1 };     /* = SdDistribution */

/* dst = a b c; false when it does not fit (names are far shorter than the buffers). */
static bool join3(char *dst, size_t size, const char *a, const char *b, const char *c) {
    int n = snprintf(dst, size, "%s%s%s", a, b, c);
    return n >= 0 && (size_t)n < size;
}

/* Marks the last layer as added by surgery and gives its weight Composer's state_dict key. */
static void mark_surgery(Model *m, const char *alias_layer) {
    Layer *l = &m->layers[m->n_layers - 1];
    l->surgery = true;
    if (alias_layer && l->weight >= 0) {
        Param *p = &m->params[l->weight];
        if (!join3(p->alias, sizeof p->alias, alias_layer, ".weight", "") || strcmp(p->alias, p->name) == 0)
            p->alias[0] = 0;
    }
}

/* Composer's SqueezeExcite2d on tensor x, the output of the conv called conv_name (module `<conv>.se`):
 * pool_and_mlp = Sequential(AdaptiveAvgPool2d(1), Flatten(), Linear(C, latent, bias=False), ReLU(),
 * Linear(latent, C, bias=False), Sigmoid()), then x * coefficients. Parameter names follow the Sequential:
 * "<conv>.se.pool_and_mlp.2.weight" [latent, C] and "<conv>.se.pool_and_mlp.4.weight" [C, latent].
 * alias_conv: Composer's module name of the conv wrapped (with BlurPool: "<conv>.conv"). */
static int add_se(Builder *b, const char *conv_name, const char *alias_conv, int x, Error *err) {
    Model *m = b->m;
    int C = m->channels[x];
    double lc = b->s->se_latent_channels;
    int latent = (int)(lc >= 1 ? lc : lc * C); /* Python int(): truncation */
    if (latent < 1)
        return error_set(err, "algorithms.squeeze_excite.latent_channels: %g of %d channels gives no latent "
                              "channels for %s (use a larger value)", lc, C, conv_name);
    char nm[64], alias[96];
    if (!join3(nm, sizeof nm, conv_name, ".se.pool_and_mlp.2", "") ||
        !join3(alias, sizeof alias, alias_conv, ".se.pool_and_mlp.2", ""))
        return error_set(err, "model: layer name %s is too long", conv_name);
    int p = model_avgpool(m, x, err);
    int h = p < 0 ? -1 : model_linear(m, nm, p, latent, false, err);
    if (h < 0) return -1;
    mark_surgery(m, alias);
    h = model_relu(m, h, err);
    nm[strlen(nm) - 1] = '4';
    alias[strlen(alias) - 1] = '4';
    int sc = h < 0 ? -1 : model_linear(m, nm, h, C, false, err);
    if (sc < 0) return -1;
    mark_surgery(m, alias);
    sc = model_sigmoid(m, sc, err);
    return sc < 0 ? -1 : model_channel_scale(m, x, sc, err);
}

/* A Conv2d as Composer's surgery leaves it. BlurPool (stride > 1 and in_channels >= min_channels):
 * blur_first: blur(stride 1) -> conv(stride); else conv(stride 1) -> blur(stride). SqueezeExcite
 * (min(in, out) >= min_channels): SE on the conv's output. With both, ctrain follows the recipe order
 * BlurPool then SqueezeExcite: SE wraps BlurConv2d's inner conv, so blur -> conv -> SE, or conv -> SE -> blur
 * when not blur_first. Parameter names stay torchvision's ("layer2.0.conv2.weight"); Composer's keys
 * ("layer2.0.conv2.conv.weight") are kept as aliases. */
static int conv_s(Builder *b, const char *name, int x, int cout, int k, int stride, int pad, Error *err) {
    Model *m = b->m;
    const ResnetSurgery *s = b->s;
    int cin = m->channels[x];
    bool blur = s->blurpool && s->blur_convs && stride > 1 && cin >= s->blur_min_channels;
    bool se = s->squeeze_excite && (cin < cout ? cin : cout) >= s->se_min_channels;
    if (blur && s->blur_first) {
        x = model_blur(m, x, 1, err);
        if (x < 0) return -1;
        mark_surgery(m, NULL);
    }
    int y = model_conv(m, name, x, cout, k, blur && !s->blur_first ? 1 : stride, pad, err);
    if (y < 0) return -1;
    char wrapped[96]; /* Composer's module names: the Conv2d itself, and the module SE wraps */
    Param *w = &m->params[m->layers[m->n_layers - 1].weight];
    if ((blur || se) && (!join3(wrapped, sizeof wrapped, name, blur ? ".conv" : "", se ? ".conv" : "") ||
                         !join3(w->alias, sizeof w->alias, wrapped, ".weight", "")))
        return error_set(err, "model: layer name %s is too long", name);
    if (se) {
        join3(wrapped, sizeof wrapped, name, blur ? ".conv" : "", "");
        y = add_se(b, name, wrapped, y, err);
        if (y < 0) return -1;
    }
    if (blur && !s->blur_first) {
        y = model_blur(m, y, stride, err);
        if (y < 0) return -1;
        mark_surgery(m, NULL);
    }
    return y;
}

/* A max-pool; with BlurPool, Composer's BlurMaxPool2d: max-pool(k, stride 1, same padding) -> blur(stride). */
static int maxpool_s(Builder *b, int x, int k, int stride, int pad, Error *err) {
    const ResnetSurgery *s = b->s;
    if (!(s->blurpool && s->blur_maxpools)) return model_maxpool(b->m, x, k, stride, pad, err);
    x = model_maxpool(b->m, x, k, 1, pad, err);
    if (x < 0) return -1;
    mark_surgery(b->m, NULL);
    x = model_blur(b->m, x, stride, err);
    if (x >= 0) mark_surgery(b->m, NULL);
    return x;
}

/* One residual block; returns its output tensor. With stochastic depth, the branch's last BN output is
 * scaled by a DROP layer before the residual add (Composer: out = bn3(...); out = drop(out); relu(out +
 * identity)). */
static int add_block(Builder *bd, const char *prefix, int x, int planes, int stride, Error *err) {
    Model *m = bd->m;
    const Arch *a = bd->a;
    char nm[64];
#define NAME(s) (snprintf(nm, sizeof nm, "%s.%s", prefix, s), nm)
    int in_c = m->channels[x], out_c, y;
    int branch_first = m->n_layers;
    if (a->bottleneck) {
        int width = (int)((double)planes * (a->width_per_group / 64.0));
        out_c = planes * 4;
        y = conv_s(bd, NAME("conv1"), x, width, 1, 1, 0, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn1"), y, err);
        y = y < 0 ? -1 : model_relu(m, y, err);
        y = y < 0 ? -1 : conv_s(bd, NAME("conv2"), y, width, 3, stride, 1, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn2"), y, err);
        y = y < 0 ? -1 : model_relu(m, y, err);
        y = y < 0 ? -1 : conv_s(bd, NAME("conv3"), y, out_c, 1, 1, 0, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn3"), y, err);
    } else {
        out_c = planes;
        y = conv_s(bd, NAME("conv1"), x, planes, 3, stride, 1, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn1"), y, err);
        y = y < 0 ? -1 : model_relu(m, y, err);
        y = y < 0 ? -1 : conv_s(bd, NAME("conv2"), y, planes, 3, 1, 1, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn2"), y, err);
    }
    if (y < 0) return -1;
    if (bd->sd_blocks > 0) {
        const ResnetSurgery *s = bd->s;
        bd->sd_index++;
        double frac = s->sd_distribution == SD_LINEAR ? (double)bd->sd_index / (double)bd->sd_blocks : 1.0;
        y = model_drop(m, y, branch_first, s->sd_method == SD_BLOCK, frac, s->sd_drop_rate, err);
        if (y < 0) return -1;
        mark_surgery(m, NULL);
    }
    int shortcut = x;
    if (stride != 1 || in_c != out_c) {
        shortcut = conv_s(bd, NAME("downsample.0"), x, out_c, 1, stride, 0, err);
        shortcut = shortcut < 0 ? -1 : model_bn(m, NAME("downsample.1"), shortcut, err);
        if (shortcut < 0) return -1;
    }
#undef NAME
    y = model_add(m, y, shortcut, err);
    return y < 0 ? -1 : model_relu(m, y, err);
}

/* Checks the surgery's numbers (the recipe checks them too; this guards other callers). */
static int surgery_check(const ResnetSurgery *s, Error *err) {
    if (s->blurpool && s->blur_min_channels < 0)
        return error_set(err, "blurpool: min_channels must be >= 0 (got %d)", s->blur_min_channels);
    if (s->stochastic_depth && !(s->sd_drop_rate >= 0 && s->sd_drop_rate <= 1))
        return error_set(err, "stochastic_depth: drop_rate must be in [0, 1] (got %g)", s->sd_drop_rate);
    if (s->stochastic_depth && (s->sd_method != SD_BLOCK && s->sd_method != SD_SAMPLE))
        return error_set(err, "stochastic_depth: unknown stochastic_method %d", s->sd_method);
    if (s->stochastic_depth && (s->sd_distribution != SD_UNIFORM && s->sd_distribution != SD_LINEAR))
        return error_set(err, "stochastic_depth: unknown drop_distribution %d", s->sd_distribution);
    if (s->squeeze_excite && !(s->se_latent_channels > 0))
        return error_set(err, "squeeze_excite: latent_channels must be > 0 (got %g)", s->se_latent_channels);
    return 0;
}

int resnet_build(const ResnetOptions *o, int in_channels, Model *m, Error *err) {
    return resnet_build_surgery(o, in_channels, NULL, m, err);
}

int resnet_build_surgery(const ResnetOptions *o, int in_channels, const ResnetSurgery *s, Model *m, Error *err) {
    static const ResnetSurgery NONE = {0};
    Arch a;
    if (!s) s = &NONE;
    if (surgery_check(s, err) || arch_from_name(o, &a, err)) return -1;
    int cin = o->in_channels ? o->in_channels : in_channels;
    if (model_init(m, cin, err)) return -1;
    Builder b = {.m = m, .a = &a, .s = s};
    if (s->stochastic_depth && (a.bottleneck || s->sd_basic_blocks))
        for (int st = 0; st < a.stages; st++) b.sd_blocks += a.blocks[st];
    int x;
    if (a.cifar_stem) {
        x = conv_s(&b, "conv1", 0, a.width, 3, 1, 1, err);
        x = x < 0 ? -1 : model_bn(m, "bn1", x, err);
        x = x < 0 ? -1 : model_relu(m, x, err);
    } else {
        x = conv_s(&b, "conv1", 0, a.width, 7, 2, 3, err);
        x = x < 0 ? -1 : model_bn(m, "bn1", x, err);
        x = x < 0 ? -1 : model_relu(m, x, err);
        x = x < 0 ? -1 : maxpool_s(&b, x, 3, 2, 1, err);
    }
    for (int st = 0; st < a.stages && x >= 0; st++) {
        int planes = a.width << st;
        for (int k = 0; k < a.blocks[st] && x >= 0; k++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", st + 1, k);
            x = add_block(&b, prefix, x, planes, (k == 0 && st > 0) ? 2 : 1, err);
        }
    }
    x = x < 0 ? -1 : model_avgpool(m, x, err);
    x = x < 0 ? -1 : model_fc(m, "fc", x, o->num_classes, err);
    if (x < 0) {
        model_free(m);
        return -1;
    }
    return 0;
}
