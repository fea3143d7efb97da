/* args.c — splitting a command line into ctrain flags, positional words and recipe overrides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static bool takes(const char *const *flags, const char *name) {
    for (int i = 0; flags[i]; i++)
        if (strcmp(flags[i], name) == 0) return true;
    return false;
}

static int int_value(const char *flag, const char *v, int *out, Error *err) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > 1 << 30) return error_set(err, "--%s: expected a non-negative integer, got '%s'", flag, v);
    *out = (int)x;
    return 0;
}

int cli_parse(int argc, char **argv, const char *const *flags, CliArgs *a, Error *err) {
    memset(a, 0, sizeof *a);
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
        const char *name = strncmp(w, "--", 2) == 0 ? w + 2 : (strcmp(w, "-f") == 0 ? "file" : NULL);
        if (name && strcmp(name, "f") == 0) name = "file";
        if (name && takes(flags, name)) {
            in_overrides = false;
            /* boolean flags */
            if (strcmp(name, "quiet") == 0) { a->quiet = true; continue; }
            if (strcmp(name, "dump") == 0) { a->dump = true; continue; }
            if (strcmp(name, "json") == 0) { a->json = true; continue; }
            if (i + 1 >= argc) return error_set(err, "--%s needs a value", name);
            const char *v = argv[++i];
            int rc = 0;
            if (strcmp(name, "file") == 0) a->recipe = v;
            else if (strcmp(name, "device") == 0) a->device = v;
            else if (strcmp(name, "run_dir") == 0) a->run_dir = v;
            else if (strcmp(name, "load") == 0) a->load = v;
            else if (strcmp(name, "input") == 0) a->input = v;
            else if (strcmp(name, "output") == 0) a->output = v;
            else if (strcmp(name, "model") == 0) a->model = v;
            else if (strcmp(name, "threads") == 0) rc = int_value(name, v, &a->threads, err);
            else if (strcmp(name, "batch") == 0) rc = int_value(name, v, &a->batch, err);
            else if (strcmp(name, "res") == 0) rc = int_value(name, v, &a->res, err);
            else if (strcmp(name, "steps") == 0) rc = int_value(name, v, &a->steps, err);
            else if (strcmp(name, "warmup") == 0) rc = int_value(name, v, &a->warmup, err);
            else if (strcmp(name, "classes") == 0) rc = int_value(name, v, &a->classes, err);
            else if (strcmp(name, "channels") == 0) rc = int_value(name, v, &a->channels, err);
            else if (strcmp(name, "width") == 0) rc = int_value(name, v, &a->width, err);
            else if (strcmp(name, "top") == 0) rc = int_value(name, v, &a->top, err);
            else if (strcmp(name, "size") == 0) rc = int_value(name, v, &a->size, err);
            if (rc) return -1;
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
