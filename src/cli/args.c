/* args.c — splitting a command line into ctrain flags, positional words and recipe overrides. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef enum FlagType { FLAG_BOOL, FLAG_STRING, FLAG_INT, FLAG_INT64, FLAG_DOUBLE } FlagType;

/* Every flag any command takes: its name, type and place in CliArgs (commands say which they accept). */
static const struct {
    const char *name;
    FlagType type;
    size_t offset;
} FLAGS[] = {
    {"file", FLAG_STRING, offsetof(CliArgs, recipe)},       {"device", FLAG_STRING, offsetof(CliArgs, device)},
    {"run_dir", FLAG_STRING, offsetof(CliArgs, run_dir)},    {"load", FLAG_STRING, offsetof(CliArgs, load)},
    {"input", FLAG_STRING, offsetof(CliArgs, input)},        {"output", FLAG_STRING, offsetof(CliArgs, output)},
    {"model", FLAG_STRING, offsetof(CliArgs, model)},        {"loader", FLAG_STRING, offsetof(CliArgs, loader)},
    {"write_mode", FLAG_STRING, offsetof(CliArgs, write_mode)}, {"labels", FLAG_STRING, offsetof(CliArgs, labels)},
    {"precision", FLAG_STRING, offsetof(CliArgs, precision)},
    {"layout", FLAG_STRING, offsetof(CliArgs, layout)},
    {"conv", FLAG_STRING, offsetof(CliArgs, conv)},
    {"threads", FLAG_INT, offsetof(CliArgs, threads)},       {"batch", FLAG_INT, offsetof(CliArgs, batch)},
    {"res", FLAG_INT, offsetof(CliArgs, res)},               {"steps", FLAG_INT, offsetof(CliArgs, steps)},
    {"warmup", FLAG_INT, offsetof(CliArgs, warmup)},         {"classes", FLAG_INT, offsetof(CliArgs, classes)},
    {"channels", FLAG_INT, offsetof(CliArgs, channels)},     {"width", FLAG_INT, offsetof(CliArgs, width)},
    {"top", FLAG_INT, offsetof(CliArgs, top)},               {"size", FLAG_INT, offsetof(CliArgs, size)},
    {"epochs", FLAG_INT, offsetof(CliArgs, epochs)},         {"max_resolution", FLAG_INT, offsetof(CliArgs, max_resolution)},
    {"jpeg_quality", FLAG_INT, offsetof(CliArgs, jpeg_quality)}, {"num_workers", FLAG_INT, offsetof(CliArgs, num_workers)},
    {"compress_probability", FLAG_DOUBLE, offsetof(CliArgs, compress_probability)},
    {"smart_threshold", FLAG_INT64, offsetof(CliArgs, smart_threshold)},
    {"page_size", FLAG_INT64, offsetof(CliArgs, page_size)}, {"seed", FLAG_INT64, offsetof(CliArgs, seed)},
    {"train_size", FLAG_INT64, offsetof(CliArgs, train_size)},
    {"quiet", FLAG_BOOL, offsetof(CliArgs, quiet)},          {"dump", FLAG_BOOL, offsetof(CliArgs, dump)},
    {"json", FLAG_BOOL, offsetof(CliArgs, json)},          {"profile", FLAG_BOOL, offsetof(CliArgs, profile)},
    {"layers", FLAG_BOOL, offsetof(CliArgs, layers)},
};

/* Stores the value word v of flag f into a. */
static int set_flag(int f, const char *v, CliArgs *a, Error *err) {
    char *dst = (char *)a + FLAGS[f].offset, *end;
    errno = 0;
    switch (FLAGS[f].type) {
    case FLAG_STRING:
        *(const char **)dst = v;
        return 0;
    case FLAG_INT: {
        long x = strtol(v, &end, 10);
        if (*end || !*v || x < 0 || x > (1L << 30)) break;
        *(int *)dst = (int)x;
        return 0;
    }
    case FLAG_INT64: {
        long long x = strtoll(v, &end, 10);
        if (*end || !*v || errno) break;
        *(int64_t *)dst = x;
        return 0;
    }
    case FLAG_DOUBLE: {
        double x = strtod(v, &end);
        if (*end || !*v || errno) break;
        *(double *)dst = x;
        return 0;
    }
    case FLAG_BOOL:
        return 0;
    }
    return error_set(err, "--%s: expected a %s, got '%s'", FLAGS[f].name,
                     FLAGS[f].type == FLAG_DOUBLE ? "number" : "non-negative integer", v);
}

static int flag_index(const char *const *accepted, const char *name) {
    for (int i = 0; accepted[i]; i++)
        if (strcmp(accepted[i], name) == 0)
            for (int f = 0; f < (int)(sizeof FLAGS / sizeof FLAGS[0]); f++)
                if (strcmp(FLAGS[f].name, name) == 0) return f;
    return -1;
}

int cli_parse(int argc, char **argv, const char *const *flags, CliArgs *a, Error *err) {
    memset(a, 0, sizeof *a);
    a->smart_threshold = -1;
    a->train_size = -1;
    a->compress_probability = -1;
    a->positional = calloc((size_t)argc + 1, sizeof *a->positional);
    a->overrides = calloc((size_t)argc + 1, sizeof *a->overrides);
    if (!a->positional || !a->overrides) return error_set(err, "out of memory");
    bool in_overrides = false, rest_positional = false;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (rest_positional) {
            a->positional[a->n_positional++] = argv[i];
            continue;
        }
        if (strcmp(w, "--") == 0) {
            rest_positional = true;
            continue;
        }
        if (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0) {
            a->help = true;
            continue;
        }
        const char *name = strcmp(w, "-f") == 0 ? "file" : strncmp(w, "--", 2) == 0 ? w + 2 : NULL;
        int f = name ? flag_index(flags, name) : -1;
        if (f >= 0) {
            in_overrides = false;
            if (FLAGS[f].type == FLAG_BOOL) {
                *(bool *)((char *)a + FLAGS[f].offset) = true;
                continue;
            }
            if (i + 1 >= argc) return error_set(err, "--%s needs a value", name);
            if (set_flag(f, argv[++i], a, err)) return -1;
            continue;
        }
        if (strncmp(w, "--", 2) == 0) {
            in_overrides = true;
            a->overrides[a->n_overrides++] = argv[i];
            continue;
        }
        if (w[0] == '-' && w[1] && !in_overrides)
            return error_set(err, "%s: unknown flag (recipe keys are written --dotted.key value)", w);
        if (in_overrides) a->overrides[a->n_overrides++] = argv[i];
        else a->positional[a->n_positional++] = argv[i];
    }
    return 0;
}

void cli_args_free(CliArgs *a) {
    free(a->positional);
    free(a->overrides);
    memset(a, 0, sizeof *a);
}

int cli_load_config(const CliArgs *a, Config *cfg, Error *err) {
    if (!a->recipe) return error_set(err, "no recipe: give one with -f RECIPE.yaml (see recipes/)");
    if (config_load(a->recipe, a->n_overrides, a->overrides, cfg, err)) return -1;
    for (int i = 0; i < cfg->notes.n; i++) fprintf(stderr, "note: %s\n", cfg->notes.v[i]);
    return 0;
}

void cli_print_timeline(const Config *cfg, const Timeline *t) {
    char md[64], orig[64];
    time_format(&t->max_duration, md, sizeof md);
    time_format(&cfg->max_duration, orig, sizeof orig);
    printf("schedule: max_duration %s", md);
    if (cfg->scale_schedule_ratio != 1.0) printf(" (%s x scale_schedule_ratio %g)", orig, cfg->scale_schedule_ratio);
    printf(", %lld batches/epoch of %d (%lld training samples), %lld batches in all, warmup %lld batches\n",
           (long long)t->steps_per_epoch, t->batch_size, (long long)t->train_samples, (long long)t->total_batches,
           (long long)t->warmup_batches);
    printf("learning rate: %.6g at batch 0, %.6g at batch %lld, %.6g at the last batch\n", timeline_lr(t, 0),
           timeline_lr(t, t->warmup_batches), (long long)t->warmup_batches, timeline_lr(t, t->total_batches - 1));
    fflush(stdout);
}
