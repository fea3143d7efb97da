/* cli.h — ctrain's commands and the command-line parsing they share.
 *
 * Words are split into ctrain's own flags (-f RECIPE, --device, --threads, --run_dir, --load, ...), which a
 * command declares, positional words (predict's image paths), and everything else, which goes to the recipe
 * as Composer-style overrides (--optimizers.decoupled_sgdw.lr 1.0, --scale_schedule_ratio 0.36). */
#ifndef CTRAIN_CLI_CLI_H
#define CTRAIN_CLI_CLI_H

#include <stdbool.h>

#include "config/config.h"
#include "train/timeline.h"

#define CTRAIN_VERSION "0.1.0"

typedef struct CliArgs {
    const char *recipe;        /* -f / --file */
    const char *device;        /* --device */
    int threads;               /* --threads (0 = all cores) */
    const char *run_dir;       /* --run_dir */
    const char *load;          /* --load WEIGHTS.safetensors */
    const char *input;         /* --input X.npy */
    const char *output;        /* --output L.npy */
    const char *model;         /* --model (bench) */
    const char *loader;        /* --loader FILE.beton (bench) */
    const char *write_mode;    /* --write_mode (convert) */
    const char *labels;        /* --labels Y.npy (convert) */
    const char *precision;     /* --precision fp32|bf16 (bench) */
    const char *layout;        /* --layout blocked|nhwc (bench) */
    const char *conv;          /* --conv winograd|direct|both (bench) */
    int batch, res, steps, warmup, classes, channels, width, top, size, epochs;
    int max_resolution, jpeg_quality, num_workers;
    double compress_probability;
    int64_t smart_threshold, page_size, seed, train_size;
    bool quiet, dump, json, help, profile, layers;
    char **positional;         /* predict inputs */
    int n_positional;
    char **overrides;          /* recipe overrides, as given */
    int n_overrides;
} CliArgs;

/* Which of ctrain's own flags a command takes (a NULL-terminated list of names without dashes). */
int cli_parse(int argc, char **argv, const char *const *flags, CliArgs *a, Error *err);
void cli_args_free(CliArgs *a);
/* Loads the recipe with the overrides and prints its notes (each once) to stderr. */
int cli_load_config(const CliArgs *a, Config *cfg, Error *err);
/* Prints what the timeline of a run means in batches. */
void cli_print_timeline(const Config *cfg, const Timeline *t);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_plan(int argc, char **argv);

#endif
