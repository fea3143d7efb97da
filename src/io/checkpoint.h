/* checkpoint.h — weights and training state on disk.
 *
 * Weights: a safetensors file holding the whole torchvision state_dict (parameters, BN running statistics,
 * num_batches_tracked as I64), so `model.load_state_dict(safetensors.torch.load_file(path))` works on the
 * matching torchvision model. State: a second safetensors file beside it (`<name>.state`) with the optimizer's
 * momentum buffers ("momentum_buffer.<param>") and, in its metadata, the progress counters. Both are written
 * atomically (temp file + rename). */
#ifndef CTRAIN_IO_CHECKPOINT_H
#define CTRAIN_IO_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "config/schema.h"
#include "model/model.h"
#include "io/safetensors.h"
#include "train/optim.h"

/* Where training stands; saved in the state file. */
typedef struct Progress {
    int64_t epoch;            /* completed epochs */
    int64_t batch_in_epoch;   /* completed batches of the current epoch */
    int64_t batch;            /* completed batches in total */
    int64_t samples;          /* samples trained on in total */
} Progress;

/* How load_path is applied. */
typedef struct LoadRules {
    bool strict;              /* missing or unexpected keys are errors */
    const StringList *ignore; /* state_dict keys never loaded (e.g. fc.weight, fc.bias) */
} LoadRules;

/* Writes the model's state_dict to path; meta_* are extra metadata pairs (may be 0). */
int ckpt_save_weights(const Model *m, const char *path, int n_meta, const char *const *meta_keys,
                      const char *const *meta_values, Error *err);
/* Loads a state_dict (ctrain's or one exported from torchvision) into m. A tensor whose shape differs from
 * the model's is an error naming both shapes. */
int ckpt_load_weights(Model *m, const char *path, const LoadRules *rules, Error *err);
/* Extra state that algorithms keep (EMA weights): tensors added to / read from the state file. */
typedef struct CkptHooks {
    int (*save)(void *ctx, StWriter *w, Error *err);
    int (*load)(void *ctx, const SafeTensors *st, const char *path, Error *err);
    void *ctx;
} CkptHooks;

/* Writes the optimizer state, progress and the hooks' tensors (hooks may be NULL) to path. */
int ckpt_save_state(const Model *m, const Optimizer *o, const Progress *p, const CkptHooks *hooks, const char *path,
                    Error *err);
/* Reads what ckpt_save_state wrote into o, p and the hooks. */
int ckpt_load_state(const Model *m, Optimizer *o, Progress *p, const CkptHooks *hooks, const char *path, Error *err);
/* The state file that belongs to a weights file ("x/ep1-ba468.safetensors" -> "x/ep1-ba468.state"). */
void ckpt_state_path(const char *weights_path, char *out, size_t size);

#endif
