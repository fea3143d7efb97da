/* optim.h — the optimizers a recipe can name, with Composer's / PyTorch's exact update rules.
 *
 * decoupled_sgdw (Composer DecoupledSGDW): buf = g on the first step, else momentum*buf + (1-dampening)*g;
 *   d = nesterov ? g + momentum*buf : buf; p *= 1 - (lr/initial_lr)*weight_decay; p -= lr*d.
 *   Weight decay follows the schedule but is not multiplied by lr, and applies to every parameter.
 * sgd (torch.optim.SGD): g += weight_decay*p, then the same momentum rule, p -= lr*d.
 * The arithmetic itself is the backend's sgd_step over the flat parameter block. */
#ifndef CTRAIN_TRAIN_OPTIM_H
#define CTRAIN_TRAIN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "config/schema.h"

typedef struct SgdOptions {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} SgdOptions;

/* optimizers: {decoupled_sgdw: SgdOptions} | {sgd: SgdOptions} */
extern const Registry OPTIMIZER_REGISTRY;

/* An optimizer over a flat block of n parameters, with its momentum buffer in backend memory. */
typedef struct Optimizer {
    bool decoupled;
    SgdOptions opt;
    double initial_lr;
    int64_t n;          /* parameters */
    float *momentum;    /* [n] backend memory; NULL when momentum == 0 */
    int64_t steps;      /* steps taken (0: the next step initializes the momentum buffer) */
} Optimizer;

/* Makes the optimizer chosen in a recipe for n parameters. */
int optim_create(Optimizer *o, const Choice *choice, int64_t n, Backend *be, Error *err);
/* Frees the momentum buffer. */
void optim_destroy(Optimizer *o, Backend *be);
/* One update of params [n] with grads [n] at learning rate lr. */
void optim_step(Optimizer *o, Backend *be, float *params, const float *grads, double lr);

#endif
