/* optim.c — optimizer options (recipe keys) and the step driver; the arithmetic is backend->sgd_step. */
#include <stddef.h>
#include <string.h>

#include "train/optim.h"

static int sgd_check(const void *options, Error *err) {
    const SgdOptions *o = options;
    if (o->lr < 0) return error_set(err, "lr must be >= 0 (got %g)", o->lr);
    if (o->momentum < 0) return error_set(err, "momentum must be >= 0 (got %g)", o->momentum);
    if (o->weight_decay < 0) return error_set(err, "weight_decay must be >= 0 (got %g)", o->weight_decay);
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return error_set(err, "nesterov needs momentum > 0 and dampening 0 (as in PyTorch)");
    return 0;
}

static const FieldSpec SGD_FIELDS[] = {
    {.name = "lr", .type = F_DOUBLE, .offset = offsetof(SgdOptions, lr), .required = true,
     .help = "learning rate (the peak; schedulers multiply it)"},
    {.name = "momentum", .type = F_DOUBLE, .offset = offsetof(SgdOptions, momentum), .def = "0.0"},
    {.name = "dampening", .type = F_DOUBLE, .offset = offsetof(SgdOptions, dampening), .def = "0.0"},
    {.name = "weight_decay", .type = F_DOUBLE, .offset = offsetof(SgdOptions, weight_decay), .def = "0.0"},
    {.name = "nesterov", .type = F_BOOL, .offset = offsetof(SgdOptions, nesterov), .def = "false"},
    {0},
};

static const RegistryEntry OPTIMIZER_ENTRIES[] = {
    {.name = "decoupled_sgdw", .fields = SGD_FIELDS, .options_size = sizeof(SgdOptions), .check = sgd_check,
     .help = "Composer DecoupledSGDW: SGD with weight decay scaled by lr/initial_lr, not by lr"},
    {.name = "sgd", .fields = SGD_FIELDS, .options_size = sizeof(SgdOptions), .check = sgd_check,
     .help = "torch.optim.SGD: L2 weight decay added to the gradient"},
};

const Registry OPTIMIZER_REGISTRY = {"optimizer", OPTIMIZER_ENTRIES, 2};

int optim_create(Optimizer *o, const Choice *choice, int64_t n, Backend *be, Error *err) {
    memset(o, 0, sizeof *o);
    if (!choice->entry) return error_set(err, "optimizers: the recipe names no optimizer (e.g. decoupled_sgdw)");
    o->decoupled = strcmp(choice->entry->name, "decoupled_sgdw") == 0;
    o->opt = *(const SgdOptions *)choice->options;
    o->initial_lr = o->opt.lr;
    o->n = n;
    if (o->opt.momentum != 0) {
        o->momentum = be->ops->alloc(be, (size_t)n * sizeof(float));
        if (!o->momentum) return error_set(err, "out of memory for the momentum buffer (%lld floats)", (long long)n);
    }
    return 0;
}

void optim_destroy(Optimizer *o, Backend *be) {
    if (o->momentum) be->ops->free(be, o->momentum);
    o->momentum = NULL;
}

void optim_step(Optimizer *o, Backend *be, float *params, const float *grads, double lr) {
    SgdStep s = {
        .lr = lr,
        .momentum = o->opt.momentum,
        .dampening = o->opt.dampening,
        .weight_decay = o->opt.weight_decay,
        .decay_factor = o->initial_lr != 0 ? lr / o->initial_lr : 1.0,
        .nesterov = o->opt.nesterov,
        .decoupled = o->decoupled,
        .first_step = o->steps == 0,
    };
    be->ops->sgd_step(be, &s, o->n, params, grads, o->momentum);
    o->steps++;
}
