/* channels_last.c — ChannelsLast: Composer converts the model to NHWC; ctrain's activations are NHWC
 * already, so the algorithm is accepted and has nothing to do. Recipe options: none. */
#include "algorithms/algorithms.h"

const FieldSpec CHANNELS_LAST_FIELDS[] = {{0}};

/* Nothing to do at run time. */
const AlgorithmImpl CHANNELS_LAST_IMPL = {0};
