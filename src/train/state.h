/* state.h — what the trainer shares with algorithms: Composer's events and the training state they act on.
 *
 * Algorithms (src/algorithms/) run on events, in recipe order, and in reverse order on AFTER_* events (Composer's
 * FILO rule). They read and change the state in place: INIT fills the model surgery before the model is built;
 * AFTER_DATALOADER may resize or crop the host batch; BEFORE_FORWARD may mix the micro-batch's images;
 * BEFORE_LOSS may change its soft targets; BATCH_END may update averaged weights; EVAL_START/EVAL_END may swap
 * the weights evaluated. */
#ifndef CTRAIN_TRAIN_STATE_H
#define CTRAIN_TRAIN_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "model/model.h"
#include "model/resnet.h"
#include "train/optim.h"
#include "train/timeline.h"

/* Composer 0.9's events (composer/core/event.py), in the order a run raises them. */
typedef enum Event {
    EVENT_INIT,
    EVENT_FIT_START,
    EVENT_EPOCH_START,
    EVENT_BEFORE_DATALOADER,
    EVENT_AFTER_DATALOADER,
    EVENT_BATCH_START,
    EVENT_BEFORE_TRAIN_BATCH,
    EVENT_BEFORE_FORWARD,
    EVENT_AFTER_FORWARD,
    EVENT_BEFORE_LOSS,
    EVENT_AFTER_LOSS,
    EVENT_BEFORE_BACKWARD,
    EVENT_AFTER_BACKWARD,
    EVENT_AFTER_TRAIN_BATCH,
    EVENT_BATCH_END,
    EVENT_BATCH_CHECKPOINT,
    EVENT_EPOCH_END,
    EVENT_EPOCH_CHECKPOINT,
    EVENT_FIT_END,
    EVENT_EVAL_START,
    EVENT_EVAL_BATCH_START,
    EVENT_EVAL_BEFORE_FORWARD,
    EVENT_EVAL_AFTER_FORWARD,
    EVENT_EVAL_BATCH_END,
    EVENT_EVAL_END,
    EVENT_COUNT
} Event;

/* The event's Composer name ("after_dataloader"). */
const char *event_name(Event e);
/* True for the AFTER_* events, on which algorithms run in reverse order. */
bool event_is_after(Event e);

typedef struct TrainState TrainState;

struct TrainState {
    /* ---- the run ---- */
    const Config *cfg;
    Backend *be;
    Model *model;                 /* built after INIT */
    ResnetSurgery surgery;        /* INIT: what the model should be built with */
    const Timeline *tl;
    Optimizer *opt;
    Loader *train_loader;
    const Progress *progress;     /* completed epochs / batches so far */
    uint64_t seed;
    int classes;
    int train_res;                /* the training images' full size (before progressive resizing) */

    /* ---- the current batch on the host, writable; AFTER_DATALOADER may shrink h, w ---- */
    float *images;                /* [n, h, w, c] */
    int32_t *labels;              /* [n] */
    int n, h, w, c;
    size_t capacity;              /* floats images can hold */

    /* ---- the current micro-batch (BEFORE_FORWARD .. AFTER_BACKWARD) ---- */
    int micro;                    /* index within the batch */
    int micro_start, micro_n;     /* its samples: images + micro_start * h*w*c */
    float *targets;               /* [micro_n, classes] soft targets, one-hot at BEFORE_LOSS */
    double micro_loss;            /* mean loss over the micro-batch (AFTER_LOSS) */
    int pass;                     /* 0; 1 for SAM's second pass over the same batch */

    /* ---- SAM: recompute the gradients of the current batch (at the current weights) ---- */
    int (*rerun)(TrainState *s, Error *err);
    void *trainer;
};

#endif
