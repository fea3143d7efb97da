/* config.c — the top-level recipe schema (Composer 0.9's TrainerHparams keys), the callback / logger / device
 * registries, yahp-style command-line overrides applied to the YAML tree, and whole-config validation. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "algorithms/algorithms.h"
#include "config/config.h"
#include "data/loader.h"
#include "model/resnet.h"
#include "train/optim.h"
#include "train/sched.h"

/* ------------------------------------------------------------------ registries of things ctrain ignores */

#define IGNORED_ENTRY(n, h) {.name = n, .ignored = true, .open = true, .help = h}

static const RegistryEntry CALLBACK_ENTRIES[] = {
    IGNORED_ENTRY("lr_monitor", "ctrain writes the learning rate to metrics.jsonl itself"),
    IGNORED_ENTRY("speed_monitor", "ctrain writes throughput and wall-clock times to metrics.jsonl itself"),
    IGNORED_ENTRY("memory_monitor", "ctrain reports its memory use itself"),
    IGNORED_ENTRY("grad_monitor", "ctrain does not log gradient norms"),
    IGNORED_ENTRY("mlperf", "ctrain writes no MLPerf result logs"),
    IGNORED_ENTRY("checkpoint_saver", "ctrain saves checkpoints as the top-level save_* keys say"),
    IGNORED_ENTRY("image_visualizer", "ctrain logs no images"),
    IGNORED_ENTRY("early_stopper", "ctrain always trains for max_duration"),
    IGNORED_ENTRY("threshold_stopper", "ctrain always trains for max_duration"),
    IGNORED_ENTRY("export_for_inference", "ctrain's checkpoints are safetensors that load into torchvision"),
};
static const Registry CALLBACK_REGISTRY = {"callback", CALLBACK_ENTRIES,
                                           sizeof CALLBACK_ENTRIES / sizeof CALLBACK_ENTRIES[0]};

static const RegistryEntry LOGGER_ENTRIES[] = {
    IGNORED_ENTRY("progress_bar", "ctrain prints its own progress"),
    IGNORED_ENTRY("file", "ctrain writes metrics.jsonl in the run folder"),
    IGNORED_ENTRY("wandb", "ctrain uploads nothing; metrics.jsonl is in the run folder"),
    IGNORED_ENTRY("tensorboard", "ctrain writes metrics.jsonl, not TensorBoard events"),
    IGNORED_ENTRY("object_store", "ctrain uploads nothing"),
    IGNORED_ENTRY("in_memory", "ctrain keeps its metrics in metrics.jsonl"),
};
static const Registry LOGGER_REGISTRY = {"logger", LOGGER_ENTRIES, sizeof LOGGER_ENTRIES / sizeof LOGGER_ENTRIES[0]};

static const RegistryEntry DEVICE_ENTRIES[] = {
    {.name = "cpu", .help = "train on the CPU (oneDNN + OpenMP)"},
    {.name = "gpu", .help = "train on NVIDIA GPUs (CUDA)"},
};
static const Registry DEVICE_REGISTRY = {"device", DEVICE_ENTRIES, 2};

/* ------------------------------------------------------------------ the top-level table */

static const char *const PRECISIONS[] = {"fp32", "amp", "bf16", "fp16", "auto", NULL};

#define DATALOADER_KEY(n) \
    {.name = n, .type = F_IGNORED, .help = "ctrain's loader threads persist and batches are not pinned (CPU)"}
static const FieldSpec DATALOADER_FIELDS[] = {
    {.name = "num_workers", .type = F_INT, .offset = offsetof(DataloaderOptions, num_workers), .def = "0", .min = 0,
     .max = 1024, .help = "loader threads per process; 0 = one per core"},
    {.name = "prefetch_factor", .type = F_INT, .offset = offsetof(DataloaderOptions, prefetch_factor), .def = "2",
     .min = 1, .max = 64, .help = "batches prepared ahead (FFCV's batches_ahead)"},
    DATALOADER_KEY("persistent_workers"), DATALOADER_KEY("pin_memory"), DATALOADER_KEY("timeout"), {0},
};

#define FIELD(n, t, member, d, h) {.name = n, .type = t, .offset = offsetof(Config, member), .def = d, .help = h}
#define NOTE(n, h) {.name = n, .type = F_IGNORED, .help = h}

const FieldSpec CONFIG_FIELDS[] = {
    {.name = "model", .type = F_CHOICE, .offset = offsetof(Config, model), .registry = &MODEL_REGISTRY,
     .help = "the network: {resnet: {model_name: resnet50, ...}}"},
    {.name = "train_dataset", .type = F_CHOICE, .offset = offsetof(Config, train_dataset),
     .registry = &DATASET_REGISTRY, .help = "training data"},
    {.name = "val_dataset", .type = F_CHOICE, .offset = offsetof(Config, val_dataset),
     .registry = &DATASET_REGISTRY, .help = "evaluation data (optional)"},
    {.name = "optimizers", .type = F_CHOICE, .offset = offsetof(Config, optimizers),
     .registry = &OPTIMIZER_REGISTRY, .old_name = "optimizer", .help = "the optimizer (Composer 0.7: optimizer)"},
    {.name = "schedulers", .type = F_CHOICE_LIST, .offset = offsetof(Config, schedulers),
     .registry = &SCHEDULER_REGISTRY, .help = "learning-rate schedule (one), as a list or a map"},
    {.name = "algorithms", .type = F_CHOICE_LIST, .offset = offsetof(Config, algorithms),
     .registry = &ALGORITHM_REGISTRY, .help = "speed-up methods, run in this order"},
    {.name = "callbacks", .type = F_CHOICE_LIST, .offset = offsetof(Config, callbacks),
     .registry = &CALLBACK_REGISTRY, .help = "accepted; ctrain logs by itself"},
    {.name = "loggers", .type = F_CHOICE_LIST, .offset = offsetof(Config, loggers), .registry = &LOGGER_REGISTRY,
     .help = "accepted; ctrain logs by itself"},
    {.name = "device", .type = F_CHOICE, .offset = offsetof(Config, device), .registry = &DEVICE_REGISTRY,
     .help = "cpu or gpu (default: gpu when there is one)"},
    {.name = "precision", .type = F_ENUM, .offset = offsetof(Config, precision), .def = "auto",
     .enum_values = PRECISIONS, .help = "fp32, amp, bf16 or fp16; auto = amp on a GPU, fp32 on the CPU"},
    FIELD("max_duration", F_TIME, max_duration, NULL, "training length (90ep, 1000ba, 2048sp), before SSR"),
    FIELD("scale_schedule_ratio", F_DOUBLE, scale_schedule_ratio, "1.0",
      "multiplies max_duration and the schedule's ep/ba times (not warmup)"),
    {.name = "train_batch_size", .type = F_INT, .offset = offsetof(Config, train_batch_size), .min = 1,
     .max = INT_MAX, .help = "global batch size (all ranks, all grad_accum microbatches)"},
    {.name = "eval_batch_size", .type = F_INT, .offset = offsetof(Config, eval_batch_size), .min = 1,
     .max = INT_MAX, .help = "global evaluation batch size"},
    FIELD("eval_interval", F_TIME, eval_interval, "1", "evaluate every N epochs (an integer) or time; 0 disables"),
    FIELD("grad_accum", F_STRING, grad_accum, "1", "microbatches per batch, or auto"),
    FIELD("seed", F_INT64, seed, "42", "random seed (Composer's default is random; ctrain's is 42)"),
    FIELD("run_name", F_STRING, run_name, NULL, "name of the run (and of its folder)"),
    FIELD("save_folder", F_STRING, save_folder, NULL, "checkpoint folder; may contain {run_name}"),
    FIELD("save_interval", F_TIME, save_interval, "1ep", "checkpoint every this long (ep or ba)"),
    {.name = "save_num_checkpoints_to_keep", .type = F_INT, .offset = offsetof(Config, save_num_checkpoints_to_keep),
     .def = "-1", .min = -1, .max = INT_MAX, .help = "-1 keeps all"},
    FIELD("save_overwrite", F_BOOL, save_overwrite, "false", "overwrite existing checkpoints"),
    FIELD("save_weights_only", F_BOOL, save_weights_only, "false", "checkpoints hold the weights only"),
    FIELD("load_path", F_STRING, load_path, NULL, "checkpoint (or torchvision safetensors) to start from"),
    FIELD("load_weights_only", F_BOOL, load_weights_only, "false", "load weights, not the training state"),
    FIELD("load_strict_model_weights", F_BOOL, load_strict_model_weights, "false",
      "every model weight must be in the checkpoint"),
    FIELD("load_ignore_keys", F_STRING_LIST, load_ignore_keys, "[]", "ctrain: state-dict keys not loaded"),
    FIELD("autoresume", F_BOOL, autoresume, "false", "resume from save_folder's latest checkpoint"),
    {.name = "train_subset_num_batches", .type = F_INT, .offset = offsetof(Config, train_subset_num_batches),
     .def = "-1", .min = -1, .max = INT_MAX, .help = "end each epoch after this many batches (-1: all)"},
    {.name = "eval_subset_num_batches", .type = F_INT, .offset = offsetof(Config, eval_subset_num_batches),
     .def = "-1", .min = -1, .max = INT_MAX, .help = "end each evaluation after this many batches (-1: all)"},
    FIELD("step_schedulers_every_batch", F_BOOL, step_schedulers_every_batch, "true",
      "step the schedule every batch (false: every epoch)"),
    {.name = "dataloader", .type = F_STRUCT, .offset = offsetof(Config, dataloader), .sub = DATALOADER_FIELDS,
     .help = "loader threads and prefetching"},
    /* Composer keys ctrain does not support with a non-default value (see UNSUPPORTED below). */
    NOTE("grad_clip_norm", "ctrain does not clip gradients; only -1 is accepted"),
    {.name = "deepspeed_config", .type = F_IGNORED, .old_name = "deepspeed", .help = "no DeepSpeed in ctrain"},
    NOTE("fsdp_config", "no FSDP in ctrain"),
    NOTE("profiler", "no profiler in ctrain"),
    NOTE("evaluators", "ctrain evaluates val_dataset"),
    NOTE("load_object_store", "ctrain loads local files only"),
    NOTE("load_logger_destination", "ctrain loads local files only"),
    /* Composer keys that only tune its console output, logging or distributed setup. */
    NOTE("log_to_console", "ctrain prints its own progress"),
    NOTE("console_log_level", "ctrain prints its own progress"),
    NOTE("console_stream", "ctrain prints its own progress"),
    NOTE("progress_bar", "ctrain prints its own progress"),
    NOTE("python_log_level", "there is no Python in ctrain"),
    NOTE("dist_timeout", "ctrain's launcher sets its own timeouts"),
    NOTE("ddp_sync_strategy", "ctrain all-reduces gradients during backward"),
    NOTE("compute_training_metrics", "ctrain logs the training loss only"),
    NOTE("deterministic_mode", "ctrain's CPU runs are always deterministic"),
    NOTE("train_dataloader_label", "ctrain names its splits train and eval"),
    NOTE("load_chunk_size", "ctrain loads local files only"),
    NOTE("load_progress_bar", "ctrain loads local files only"),
    NOTE("save_filename", "ctrain names its checkpoint files itself"),
    NOTE("save_artifact_name", "ctrain uploads nothing"),
    NOTE("save_latest_filename", "ctrain names its checkpoint files itself"),
    NOTE("save_latest_artifact_name", "ctrain uploads nothing"),
    {0},
};

/* Keys that must keep Composer's default (absent, null, empty, false or <= 0) because ctrain lacks the feature. */
static const struct {
    const char *key, *old_key, *feature;
} UNSUPPORTED[] = {
    {"grad_clip_norm", NULL, "gradient clipping (grad_clip_norm must be -1)"},
    {"deepspeed_config", "deepspeed", "DeepSpeed"},
    {"fsdp_config", NULL, "FSDP"},
    {"profiler", NULL, "Composer's profiler"},
    {"evaluators", NULL, "evaluators (give val_dataset)"},
    {"load_object_store", NULL, "object stores (give a local load_path)"},
    {"load_logger_destination", NULL, "logger destinations (give a local load_path)"},
};

/* ------------------------------------------------------------------ known option paths */

typedef struct PathRef {
    char *path;
    const FieldSpec *field;
} PathRef;

typedef struct Paths {
    PathRef *v;
    int n, cap;
} Paths;

static int paths_add(Paths *p, const char *path, const FieldSpec *f) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        PathRef *v = realloc(p->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        p->v = v;
        p->cap = cap;
    }
    if (!(p->v[p->n].path = strdup(path))) return -1;
    p->v[p->n++].field = f;
    return 0;
}

static void paths_free(Paths *p) {
    for (int i = 0; i < p->n; i++) free(p->v[i].path);
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* "a, b, c": the names of a registry's entries. */
static const char *registry_list(const Registry *r, char *buf, size_t size) {
    buf[0] = 0;
    for (int i = 0; i < r->n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s", i ? ", " : "", r->entries[i].name);
    }
    return buf;
}

static void join(char *buf, size_t size, const char *prefix, const char *name) {
    if (*prefix) snprintf(buf, size, "%s.%s", prefix, name);
    else snprintf(buf, size, "%s", name);
}

/* The value of field f in map (under its name or its old name), or NULL. */
static YNode *field_value(const YNode *map, const FieldSpec *f, const char **key) {
    const char *k = f->old_name && ytree_index(map, f->name) < 0 && ytree_index(map, f->old_name) >= 0
                        ? f->old_name : f->name;
    if (key) *key = k;
    return ytree_get(map, k);
}

static int collect(const FieldSpec *fields, const YNode *node, const char *prefix, Paths *out);

/* Adds the paths of registry entry `name` (when ctrain has it) chosen with options `value`. */
static int collect_entry(const FieldSpec *f, const char *name, const YNode *value, const char *path, Paths *out) {
    const RegistryEntry *e = registry_find(f->registry, name);
    if (!e || !e->fields) return 0;
    char sub[512];
    join(sub, sizeof sub, path, name);
    return collect(e->fields, value && value->kind == Y_MAP ? value : NULL, sub, out);
}

/* Every option path of a table, going into the registry entries that node chooses. */
static int collect(const FieldSpec *fields, const YNode *node, const char *prefix, Paths *out) {
    char path[512];
    for (const FieldSpec *f = fields; f && f->name; f++) {
        join(path, sizeof path, prefix, f->name);
        const YNode *v = node ? field_value(node, f, NULL) : NULL;
        if (f->type != F_STRUCT && paths_add(out, path, f) < 0) return -1;
        int rc = 0;
        if (f->type == F_STRUCT) {
            rc = collect(f->sub, v && v->kind == Y_MAP ? v : NULL, path, out);
        } else if ((f->type == F_CHOICE || f->type == F_CHOICE_LIST) && v && v->kind == Y_MAP) {
            for (int i = 0; i < v->n && rc == 0; i++) rc = collect_entry(f, v->keys[i], v->items[i], path, out);
        } else if (f->type == F_CHOICE_LIST && v && v->kind == Y_SEQ) {
            for (int i = 0; i < v->n && rc == 0; i++) {
                const YNode *it = v->items[i];
                if (it->kind == Y_MAP && it->n == 1) rc = collect_entry(f, it->keys[0], it->items[0], path, out);
                else if (it->kind == Y_SCALAR) rc = collect_entry(f, it->scalar, NULL, path, out);
            }
        }
        if (rc < 0) return -1;
    }
    return 0;
}

/* True when path is key or ends with "." key. */
static bool suffix_match(const char *path, const char *key) {
    size_t lp = strlen(path), lk = strlen(key);
    if (lk > lp) return false;
    return !strcmp(path + lp - lk, key) && (lk == lp || path[lp - lk - 1] == '.');
}

static int count_suffix(const Paths *known, const char *key, int *last) {
    int n = 0;
    for (int i = 0; i < known->n; i++)
        if (suffix_match(known->v[i].path, key)) {
            n++;
            if (last) *last = i;
        }
    return n;
}

/* A field table entry by name or old name. */
static const FieldSpec *table_field(const FieldSpec *fields, const char *name) {
    for (const FieldSpec *f = fields; f && f->name; f++)
        if (!strcmp(f->name, name) || (f->old_name && !strcmp(f->old_name, name))) return f;
    return NULL;
}

/* Walks a dotted path through the tables and registries (entries need not be chosen yet). Returns the last
 * field (a F_CHOICE/F_CHOICE_LIST when the path ends at an entry) and the canonical path, or NULL; sets err
 * only for a registry entry ctrain lacks. */
static const FieldSpec *walk(const FieldSpec *fields, const char *key, char *canon, size_t size, Error *err) {
    char buf[512], *save = NULL;
    snprintf(buf, sizeof buf, "%s", key);
    canon[0] = 0;
    const FieldSpec *f = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (f && (f->type == F_CHOICE || f->type == F_CHOICE_LIST)) {
            const RegistryEntry *e = registry_find(f->registry, seg);
            if (!e) {
                char names[1024];
                error_set(err, "--%s: unknown %s '%s' (ctrain has: %s)", key, f->registry->what, seg,
                          registry_list(f->registry, names, sizeof names));
                return NULL;
            }
            fields = e->fields;
            size_t len = strlen(canon);
            snprintf(canon + len, size - len, ".%s", seg);
            char *next = strtok_r(NULL, ".", &save);
            if (!next) return f;
            seg = next;
        } else if (f && f->type == F_STRUCT) {
            fields = f->sub;
        } else if (f) {
            return NULL;
        }
        if (!(f = table_field(fields, seg))) return NULL;
        size_t len = strlen(canon);
        snprintf(canon + len, size - len, "%s%s", len ? "." : "", f->name);
    }
    return f;
}

/* Resolves an override key (full path or unique dotted suffix) to a canonical path and its field. */
static const FieldSpec *resolve(const YNode *tree, const char *key, char *path, size_t size, Error *err) {
    Paths known = {0};
    const FieldSpec *found = NULL;
    err->msg[0] = 0;
    if (collect(CONFIG_FIELDS, tree, "", &known) < 0) {
        paths_free(&known);
        error_set(err, "out of memory");
        return NULL;
    }
    for (int i = 0; i < known.n && !found; i++)
        if (!strcmp(known.v[i].path, key)) found = known.v[i].field;
    if (found) {
        snprintf(path, size, "%s", key);
        paths_free(&known);
        return found;
    }
    int last = -1, n = count_suffix(&known, key, &last);
    if (n == 1) {
        snprintf(path, size, "%s", known.v[last].path);
        found = known.v[last].field;
    } else if (n > 1) {
        error_set(err, "--%s: ambiguous option; it could be", key);
        for (int i = 0, k = 0; i < known.n; i++) {
            if (!suffix_match(known.v[i].path, key)) continue;
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof err->msg - len, "%s --%s", k++ ? (k == n ? " or" : ",") : "",
                     known.v[i].path);
        }
    } else if (!(found = walk(CONFIG_FIELDS, key, path, size, err)) && !err->msg[0]) {
        /* suggest among full paths and their unique suffixes */
        int cap = known.n * 8, nc = 0;
        const char **cands = calloc((size_t)cap + 1, sizeof *cands);
        for (int i = 0; cands && i < known.n; i++) {
            for (const char *s = known.v[i].path; s && nc < cap; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL)
                if (s == known.v[i].path || count_suffix(&known, s, NULL) == 1) cands[nc++] = s;
        }
        const char *close = cands ? suggest_closest(key, cands, nc) : NULL;
        if (close) error_set(err, "--%s: unknown option; did you mean --%s?", key, close);
        else error_set(err, "--%s: unknown option", key);
        free(cands);
    }
    paths_free(&known);
    return found;
}

/* ------------------------------------------------------------------ applying overrides to the tree */

static bool is_none(const char *w) { return !w[0] || !strcasecmp(w, "none"); }

static YNode *new_map(void) { return ytree_new(Y_MAP, NULL, 0); }

/* map[key] as a map (replacing anything else there). */
static YNode *ensure_map(YNode *map, const char *key) {
    YNode *v = ytree_get(map, key);
    if (v && v->kind == Y_MAP) return v;
    if (!(v = new_map()) || ytree_set(map, key, v, 0) < 0) {
        ytree_free(v);
        return NULL;
    }
    return v;
}

/* In a choice list (a sequence of {name: opts} or a 0.7 dict), the map that holds `name`; added if absent. */
static YNode *list_holder(YNode *list, const char *name) {
    if (list->kind == Y_MAP) return list;
    for (int i = 0; i < list->n; i++) {
        YNode *it = list->items[i];
        if (it->kind == Y_MAP && it->n == 1 && !strcmp(it->keys[0], name)) return it;
        if (it->kind == Y_SCALAR && !strcmp(it->scalar, name)) {
            YNode *m = new_map();
            if (!m || ytree_set(m, name, new_map(), 0) < 0) {
                ytree_free(m);
                return NULL;
            }
            ytree_free(it);
            list->items[i] = m;
            return m;
        }
    }
    YNode *m = new_map();
    if (!m || ytree_set(m, name, new_map(), 0) < 0 || ytree_append(list, m) < 0) {
        ytree_free(m);
        return NULL;
    }
    return m;
}

/* The node an override's words make for field f: true for a bare flag, a sequence for lists, null for none. */
static YNode *value_node(const FieldSpec *f, int nw, char **w, const char *key, Error *err) {
    bool list = f->type == F_DOUBLE_LIST || f->type == F_STRING_LIST || f->type == F_TIME_LIST ||
                (f->type == F_IGNORED && nw > 1);
    if (nw == 1 && is_none(w[0])) return ytree_new(Y_NULL, NULL, 0);
    if (list) {
        YNode *seq = ytree_new(Y_SEQ, NULL, 0);
        for (int i = 0; seq && i < nw; i++) {
            YNode *s = ytree_new(Y_SCALAR, w[i], 0);
            if (!s || ytree_append(seq, s) < 0) {
                ytree_free(s);
                ytree_free(seq);
                seq = NULL;
            }
        }
        if (!seq) error_set(err, "out of memory");
        return seq;
    }
    if (nw == 0 && f->type != F_BOOL && f->type != F_IGNORED) {
        error_set(err, "--%s: needs a value", key);
        return NULL;
    }
    if (nw > 1) {
        error_set(err, "--%s: takes one value, got %d ('%s', '%s'%s)", key, nw, w[0], w[1], nw > 2 ? ", ..." : "");
        return NULL;
    }
    YNode *s = ytree_new(Y_SCALAR, nw ? w[0] : "true", 0);
    if (!s) error_set(err, "out of memory");
    return s;
}

/* Sets a registry field from entry names: `--device cpu` (one) or `--algorithms blurpool ema` (a list). */
static int set_choice(YNode *map, const char *mkey, const FieldSpec *f, int nw, char **w, const char *key,
                      Error *err) {
    char names[1024];
    registry_list(f->registry, names, sizeof names);
    if (nw == 0) return error_set(err, "--%s: needs a value (ctrain has: %s; or none)", key, names);
    if (f->type == F_CHOICE && nw > 1) return error_set(err, "--%s: takes one of: %s", key, names);
    if (nw == 1 && is_none(w[0])) return ytree_set(map, mkey, ytree_new(Y_NULL, NULL, 0), 0);
    YNode *old = ytree_get(map, mkey);
    YNode *v = f->type == F_CHOICE ? new_map() : ytree_new(Y_SEQ, NULL, 0);
    for (int i = 0; v && i < nw; i++) {
        if (!registry_find(f->registry, w[i])) {
            ytree_free(v);
            return error_set(err, "--%s: unknown %s '%s' (ctrain has: %s)", key, f->registry->what, w[i], names);
        }
        /* keep the options the recipe gave an entry that stays chosen */
        const YNode *keep = NULL;
        if (old && old->kind == Y_MAP) keep = ytree_get(old, w[i]);
        for (int j = 0; old && old->kind == Y_SEQ && j < old->n && !keep; j++)
            if (old->items[j]->kind == Y_MAP) keep = ytree_get(old->items[j], w[i]);
        YNode *opts = keep ? ytree_copy(keep) : new_map();
        YNode *holder = f->type == F_CHOICE ? v : new_map();
        bool ok = opts && holder && ytree_set(holder, w[i], opts, 0) == 0;
        if (!ok) ytree_free(opts);
        if (ok && holder != v && ytree_append(v, holder) < 0) ok = false;
        if (!ok) {
            if (holder != v) ytree_free(holder);
            ytree_free(v);
            v = NULL;
        }
    }
    if (!v || ytree_set(map, mkey, v, 0) < 0) {
        ytree_free(v);
        return error_set(err, "out of memory");
    }
    return 0;
}

/* Applies words to the canonical path segs[0..nseg) below map (described by fields). */
static int apply(YNode *map, const FieldSpec *fields, char **segs, int nseg, int nw, char **w, const char *key,
                 Error *err) {
    const FieldSpec *f = table_field(fields, segs[0]);
    const char *mkey;
    YNode *cur = field_value(map, f, &mkey);
    if (nseg == 1) {
        if (f->type == F_CHOICE || f->type == F_CHOICE_LIST) return set_choice(map, mkey, f, nw, w, key, err);
        if (f->type == F_STRUCT) return error_set(err, "--%s: give one of its keys (e.g. --%s.%s)", key, key,
                                                  f->sub[0].name);
        YNode *v = value_node(f, nw, w, key, err);
        if (!v) return -1;
        if (ytree_set(map, mkey, v, 0) < 0) {
            ytree_free(v);
            return error_set(err, "out of memory");
        }
        return 0;
    }
    if (f->type == F_STRUCT) {
        YNode *sub = ensure_map(map, mkey);
        return sub ? apply(sub, f->sub, segs + 1, nseg - 1, nw, w, key, err) : error_set(err, "out of memory");
    }
    const RegistryEntry *e = registry_find(f->registry, segs[1]);
    YNode *holder;
    if (f->type == F_CHOICE) {
        if (!cur || cur->kind != Y_MAP || cur->n != 1 || strcmp(cur->keys[0], e->name) != 0) {
            /* choosing another entry replaces the old choice and its options */
            if (!(cur = new_map()) || ytree_set(map, mkey, cur, 0) < 0) {
                ytree_free(cur);
                return error_set(err, "out of memory");
            }
        }
        holder = cur;
    } else {
        if (!cur || (cur->kind != Y_MAP && cur->kind != Y_SEQ)) {
            if (!(cur = ytree_new(Y_SEQ, NULL, 0)) || ytree_set(map, mkey, cur, 0) < 0) {
                ytree_free(cur);
                return error_set(err, "out of memory");
            }
        }
        holder = list_holder(cur, e->name);
    }
    YNode *opts = holder ? ensure_map(holder, e->name) : NULL;
    if (!opts) return error_set(err, "out of memory");
    if (nseg == 2 && nw > 0) return error_set(err, "--%s: chooses %s '%s' and takes no value", key,
                                              f->registry->what, e->name);
    if (nseg == 2) return 0;
    return apply(opts, e->fields, segs + 2, nseg - 2, nw, w, key, err);
}

/* Applies the command-line words (--key value..., --flag, --key=value) to the recipe tree. */
static int apply_overrides(YNode *tree, int n, char **words, Error *err) {
    for (int i = 0; i < n;) {
        const char *word = words[i];
        if (strncmp(word, "--", 2) != 0 || !word[2])
            return error_set(err, "unexpected '%s' (overrides are written --key value)", word);
        char key[512], path[512];
        snprintf(key, sizeof key, "%s", word + 2);
        char *eq = strchr(key, '=');
        char **vals = words + i + 1, *eq_value[1];
        int nv = 0;
        if (eq) {
            *eq = 0;
            eq_value[0] = strchr(word, '=') + 1;
            vals = eq_value;
            nv = 1;
            i++;
        } else {
            while (i + 1 + nv < n && strncmp(words[i + 1 + nv], "--", 2) != 0) nv++;
            i += 1 + nv;
        }
        const FieldSpec *f = resolve(tree, key, path, sizeof path, err);
        if (!f) return -1;
        char *segs[32], *save = NULL;
        int nseg = 0;
        for (char *s = strtok_r(path, ".", &save); s && nseg < 32; s = strtok_r(NULL, ".", &save)) segs[nseg++] = s;
        if (apply(tree, CONFIG_FIELDS, segs, nseg, nv, vals, key, err) < 0) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ validation */

/* True for what Composer treats as "not set": absent, null, empty, false, none, or a number <= 0. */
static bool is_default_value(const YNode *v) {
    if (!v || v->kind == Y_NULL) return true;
    if (v->kind != Y_SCALAR) return v->n == 0;
    char *end;
    double x = strtod(v->scalar, &end);
    if (end != v->scalar && !*end) return x <= 0;
    return is_none(v->scalar) || !strcasecmp(v->scalar, "false");
}

static const char *key_where(const YNode *tree, const char *key, char *buf, size_t size) {
    int i = ytree_index(tree, key);
    if (i >= 0 && tree->key_lines[i] > 0 && tree->file) snprintf(buf, size, "%s:%d", tree->file, tree->key_lines[i]);
    else snprintf(buf, size, "%s", i >= 0 ? "command line" : "recipe");
    return buf;
}

static int check_unsupported(const YNode *tree, Error *err) {
    char w[512];
    for (size_t i = 0; i < sizeof UNSUPPORTED / sizeof UNSUPPORTED[0]; i++) {
        const char *k = UNSUPPORTED[i].key;
        if (ytree_index(tree, k) < 0 && UNSUPPORTED[i].old_key) k = UNSUPPORTED[i].old_key;
        if (!is_default_value(ytree_get(tree, k)))
            return error_set(err, "%s: %s: ctrain does not support %s; remove the key", key_where(tree, k, w, sizeof w),
                             k, UNSUPPORTED[i].feature);
    }
    return 0;
}

/* Whole-config rules (Composer's TrainerHparams.validate and Trainer checks). */
static int config_check(const Config *c, Error *err) {
    char w[512];
    const YNode *t = c->tree;
#define WHERE(k) key_where(t, k, w, sizeof w)
    if (!(c->scale_schedule_ratio > 0))
        return error_set(err, "%s: scale_schedule_ratio must be > 0 (got %g)", WHERE("scale_schedule_ratio"),
                         c->scale_schedule_ratio);
    if (c->scale_schedule_ratio != 1.0 && c->schedulers.n == 0)
        return error_set(err, "%s: scale_schedule_ratio needs a scheduler (without one it has no effect, as in "
                              "Composer)", WHERE("scale_schedule_ratio"));
    if (config_grad_accum(c) < 0)
        return error_set(err, "%s: grad_accum must be auto or an integer >= 1 (got '%s')", WHERE("grad_accum"),
                         c->grad_accum);
    if (c->max_duration.set && (c->max_duration.unit == TIME_DURATION || c->max_duration.value <= 0))
        return error_set(err, "%s: max_duration must be a positive time in ep, ba or sp (e.g. 90ep)",
                         WHERE("max_duration"));
    if (c->eval_interval.unit != TIME_EPOCH && c->eval_interval.unit != TIME_BATCH)
        return error_set(err, "%s: eval_interval must be in ep or ba (an integer means epochs)",
                         WHERE("eval_interval"));
    if (c->save_interval.unit != TIME_EPOCH && c->save_interval.unit != TIME_BATCH)
        return error_set(err, "%s: save_interval must be in ep or ba", WHERE("save_interval"));
    if (c->val_dataset.entry && c->eval_batch_size <= 0)
        return error_set(err, "%s: eval_batch_size must be given when val_dataset is", WHERE("val_dataset"));
    if (c->autoresume && (!c->save_folder || !c->run_name || c->save_overwrite))
        return error_set(err, "%s: autoresume needs save_folder and run_name, and save_overwrite false",
                         WHERE("autoresume"));
#undef WHERE
    return 0;
}

/* ------------------------------------------------------------------ public */

int config_load(const char *recipe_path, int n_overrides, char **overrides, Config *cfg, Error *err) {
    Error local;
    if (!err) err = &local;
    memset(cfg, 0, sizeof *cfg);
    if (recipe_path) {
        FILE *f = fopen(recipe_path, "rb");
        if (!f) return error_set(err, "%s: cannot open recipe: %s", recipe_path, strerror(errno));
        fclose(f);
        if (!(cfg->recipe_path = strdup(recipe_path))) return error_set(err, "out of memory");
        if (ytree_load_file(recipe_path, &cfg->tree, err) < 0) goto fail;
        if (cfg->tree->kind == Y_NULL) {
            ytree_free(cfg->tree);
            cfg->tree = NULL;
        }
    }
    if (!cfg->tree && !(cfg->tree = new_map())) {
        error_set(err, "out of memory");
        goto fail;
    }
    if (cfg->tree->kind != Y_MAP) {
        error_set(err, "%s:%d: a recipe is a map of keys (model:, optimizers:, ...), not %s", recipe_path,
                  cfg->tree->line, cfg->tree->kind == Y_SEQ ? "a list" : "a single value");
        goto fail;
    }
    if (apply_overrides(cfg->tree, n_overrides, overrides, err) < 0 || check_unsupported(cfg->tree, err) < 0 ||
        schema_fill(CONFIG_FIELDS, cfg->tree, "", cfg, &cfg->notes, err) < 0 || config_check(cfg, err) < 0)
        goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

void config_free(Config *cfg) {
    schema_free(CONFIG_FIELDS, cfg);
    ytree_free(cfg->tree);
    free(cfg->recipe_path);
    notes_free(&cfg->notes);
    memset(cfg, 0, sizeof *cfg);
}

void config_emit(const Config *cfg, FILE *out) {
    fprintf(out, "# ctrain: resolved configuration%s%s (every key, defaults included)\n",
            cfg->recipe_path ? " of " : "", cfg->recipe_path ? cfg->recipe_path : "");
    schema_emit(CONFIG_FIELDS, cfg, 0, out);
}

int config_grad_accum(const Config *cfg) {
    const char *s = cfg->grad_accum;
    if (!s) return 1;
    if (!strcasecmp(s, "auto")) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < 1 || v > INT_MAX) return -1;
    return (int)v;
}
