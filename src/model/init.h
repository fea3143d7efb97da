/* init.h — parameter initialization: torchvision's ResNet defaults, then Composer's named initializers.
 *
 * torchvision: conv weights kaiming_normal(fan_out, relu); BN weight 1, bias 0; fc weight and bias
 *   U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (nn.Linear's reset); zero_init_residual zeroes each block's last BN.
 * Composer (applied in the recipe's order on top): KAIMING_NORMAL / KAIMING_UNIFORM (fan_in, gain sqrt 2)
 *   and XAVIER_NORMAL / XAVIER_UNIFORM on conv and fc weights; BN_UNIFORM (BN weight ~ U[0,1), bias 0);
 *   BN_ONES; LINEAR_LOG_CONSTANT_BIAS (fc bias = -log(num_classes)).
 * Draws come from the counter-based stream (seed, INIT, parameter index), so they do not depend on order.
 * BN running statistics are reset to mean 0, var 1 and the counters to 0.
 * Layers added by model surgery (Layer.surgery: SqueezeExcite's bias-less FCs) get PyTorch's default only:
 * Composer creates them at INIT, after the recipe's initializers ran. */
#ifndef CTRAIN_MODEL_INIT_H
#define CTRAIN_MODEL_INIT_H

#include <stdint.h>

#include "model/model.h"
#include "model/resnet.h"

/* Checks that every name in o->initializers is one ctrain knows (case-insensitive). */
int init_check_names(const ResnetOptions *o, Error *err);
/* Initializes every parameter and buffer of m (already allocated). */
int init_weights(Model *m, const ResnetOptions *o, uint64_t seed, Error *err);

#endif
