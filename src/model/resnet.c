/* resnet.c — the ResNet architectures (torchvision v1.5 and CIFAR-style) as layer lists, and their recipe
 * options. The builder follows torchvision/models/resnet.py line by line so names and order match. */
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

/* One residual block; returns its output tensor. */
static int add_block(Model *m, const Arch *a, const char *prefix, int x, int planes, int stride, Error *err) {
    char nm[64];
#define NAME(s) (snprintf(nm, sizeof nm, "%s.%s", prefix, s), nm)
    int in_c = m->channels[x], out_c, y;
    if (a->bottleneck) {
        int width = (int)((double)planes * (a->width_per_group / 64.0));
        out_c = planes * 4;
        y = model_conv(m, NAME("conv1"), x, width, 1, 1, 0, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn1"), y, err);
        y = y < 0 ? -1 : model_relu(m, y, err);
        y = y < 0 ? -1 : model_conv(m, NAME("conv2"), y, width, 3, stride, 1, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn2"), y, err);
        y = y < 0 ? -1 : model_relu(m, y, err);
        y = y < 0 ? -1 : model_conv(m, NAME("conv3"), y, out_c, 1, 1, 0, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn3"), y, err);
    } else {
        out_c = planes;
        y = model_conv(m, NAME("conv1"), x, planes, 3, stride, 1, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn1"), y, err);
        y = y < 0 ? -1 : model_relu(m, y, err);
        y = y < 0 ? -1 : model_conv(m, NAME("conv2"), y, planes, 3, 1, 1, err);
        y = y < 0 ? -1 : model_bn(m, NAME("bn2"), y, err);
    }
    if (y < 0) return -1;
    int shortcut = x;
    if (stride != 1 || in_c != out_c) {
        shortcut = model_conv(m, NAME("downsample.0"), x, out_c, 1, stride, 0, err);
        shortcut = shortcut < 0 ? -1 : model_bn(m, NAME("downsample.1"), shortcut, err);
        if (shortcut < 0) return -1;
    }
#undef NAME
    y = model_add(m, y, shortcut, err);
    return y < 0 ? -1 : model_relu(m, y, err);
}

int resnet_build(const ResnetOptions *o, int in_channels, Model *m, Error *err) {
    Arch a;
    if (arch_from_name(o, &a, err)) return -1;
    int cin = o->in_channels ? o->in_channels : in_channels;
    if (model_init(m, cin, err)) return -1;
    int x;
    if (a.cifar_stem) {
        x = model_conv(m, "conv1", 0, a.width, 3, 1, 1, err);
        x = x < 0 ? -1 : model_bn(m, "bn1", x, err);
        x = x < 0 ? -1 : model_relu(m, x, err);
    } else {
        x = model_conv(m, "conv1", 0, a.width, 7, 2, 3, err);
        x = x < 0 ? -1 : model_bn(m, "bn1", x, err);
        x = x < 0 ? -1 : model_relu(m, x, err);
        x = x < 0 ? -1 : model_maxpool(m, x, 3, 2, 1, err);
    }
    for (int s = 0; s < a.stages && x >= 0; s++) {
        int planes = a.width << s;
        for (int b = 0; b < a.blocks[s] && x >= 0; b++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", s + 1, b);
            x = add_block(m, &a, prefix, x, planes, (b == 0 && s > 0) ? 2 : 1, err);
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
