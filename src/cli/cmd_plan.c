/* cmd_plan.c — `ctrain plan -f RECIPE [overrides] [--train_size N] [--json]`: what a recipe will do, without
 * training: epochs, steps, warmup, the learning rate and training resolution of every epoch, EMA, SAM steps, the
 * algorithms in run order and the estimated training FLOPs. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"
#include "cli/cli.h"
#include "data/loader.h"
#include "model/resnet.h"
#include "train/timeline.h"

static const char *const PLAN_FLAGS[] = {"file", "json", "train_size", NULL};

static void plan_help(void) {
    printf("usage: ctrain plan -f RECIPE.yaml [--train_size N] [--json] [--recipe.key VALUE ...]\n\n"
           "Prints what the recipe will do, without training: epochs, steps per epoch, total and warmup batches, the\n"
           "learning rate at the start and end of every epoch, the training resolution of every epoch (progressive\n"
           "resizing), EMA's smoothing and interval, the steps SAM takes, the algorithms in run order and the\n"
           "estimated training FLOPs (3 x forward conv/fc FLOPs per image, times images, plus SAM's extra passes).\n"
           "The training set's size comes from the data (or ImageNet's 1,281,167), or --train_size.\n");
}

/* "st", "nd", "rd" or "th" for n (1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ...). */
static const char *ordinal_suffix(int n) {
    if (n % 100 >= 11 && n % 100 <= 13) return "th";
    switch (n % 10) {
    case 1: return "st";
    case 2: return "nd";
    case 3: return "rd";
    default: return "th";
    }
}

/* The training images' full resolution and channels from the recipe's dataset (opening in-memory data). */
static int data_shape(const Config *cfg, int64_t *samples, int *res, int *channels, bool *assumed, Error *err) {
    const Choice *d = &cfg->train_dataset;
    if (!d->entry) return error_set(err, "train_dataset: the recipe names no dataset");
    if (strcmp(d->entry->name, "imagenet") == 0) {
        *res = ((const ImagenetOptions *)d->options)->crop_size;
        *channels = 3;
        if (*samples <= 0) {
            LoaderArgs a = {.batch_size = 1, .seed = 0, .train = true, .workers = 1};
            Loader *l;
            Error ignored;
            if (loader_create(d, "train_dataset", &a, &l, &ignored) == 0) {
                *samples = loader_samples(l);
                loader_destroy(l);
            } else {
                *samples = loader_nominal_samples(d); /* ImageNet-1k when the data is not at hand */
                *assumed = true;
            }
        }
        return 0;
    }
    LoaderArgs a = {.batch_size = 1, .seed = 0, .train = true, .workers = 1};
    Loader *l;
    if (loader_create(d, "train_dataset", &a, &l, err)) return -1;
    int h, w;
    loader_shape(l, &h, &w, channels);
    *res = w;
    if (*samples <= 0) *samples = loader_samples(l);
    loader_destroy(l);
    return 0;
}

int cmd_plan(int argc, char **argv) {
    CliArgs a;
    Error err = {{0}};
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    Model m;
    memset(&m, 0, sizeof m);
    cJSON *o = NULL;
    int rc = 1;
    if (cli_parse(argc, argv, PLAN_FLAGS, &a, &err)) goto fail;
    if (a.help) {
        plan_help();
        rc = 0;
        goto done;
    }
    if (cli_load_config(&a, &cfg, &err)) goto fail;
    if (a.train_size == 0 || a.train_size < -1) {
        error_set(&err, "--train_size: must be a positive number of training samples (got %lld)",
                  (long long)a.train_size);
        goto fail;
    }
    int64_t samples = a.train_size > 0 ? a.train_size : 0;
    int res = 0, channels = 3;
    bool assumed = false;
    if (data_shape(&cfg, &samples, &res, &channels, &assumed, &err)) goto fail;
    Timeline tl;
    if (timeline_compute(&cfg, samples, &tl, &err)) goto fail;

    /* the algorithms' model surgery, as INIT would apply it, for the FLOPs */
    ResnetSurgery surgery;
    if (algorithms_surgery(&cfg.algorithms, &surgery, &err)) goto fail;
    const ResnetOptions *mo = cfg.model.options;
    if (!mo) {
        error_set(&err, "model: the recipe names no model");
        goto fail;
    }
    if (resnet_build_surgery(mo, channels, &surgery, &m, &err)) goto fail;

    const ProgressiveResizingOptions *pr = NULL;
    const EmaOptions *ema = NULL;
    const SamOptions *sam = NULL;
    const Choice *c;
    if ((c = choice_list_find(&cfg.algorithms, "progressive_resizing"))) pr = c->options;
    if ((c = choice_list_find(&cfg.algorithms, "ema"))) ema = c->options;
    if ((c = choice_list_find(&cfg.algorithms, "sam"))) sam = c->options;

    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "train_samples", (double)samples);
    cJSON_AddBoolToObject(o, "train_samples_assumed", assumed);
    cJSON_AddNumberToObject(o, "max_epochs", (double)tl.max_epochs);
    cJSON_AddNumberToObject(o, "steps_per_epoch", (double)tl.steps_per_epoch);
    cJSON_AddNumberToObject(o, "total_batches", (double)tl.total_batches);
    cJSON_AddNumberToObject(o, "warmup_batches", (double)tl.warmup_batches);
    cJSON_AddNumberToObject(o, "batch_size", tl.batch_size);
    cJSON_AddNumberToObject(o, "scale_schedule_ratio", cfg.scale_schedule_ratio);
    cJSON *algos = cJSON_AddArrayToObject(o, "algorithms");
    for (int i = 0; i < cfg.algorithms.n; i++)
        cJSON_AddItemToArray(algos, cJSON_CreateString(cfg.algorithms.items[i].entry->name));
    if (ema) {
        cJSON *e = cJSON_AddObjectToObject(o, "ema");
        double interval = ema->update_interval.set ? ema->update_interval.value : 1;
        cJSON_AddNumberToObject(e, "smoothing", ema_smoothing(ema));
        cJSON_AddNumberToObject(e, "update_interval_batches",
                                ema->half_life.unit == TIME_EPOCH ? interval * tl.steps_per_epoch : interval);
    }
    int64_t sam_steps = 0;
    if (sam) {
        sam_steps = tl.total_batches / sam->interval;
        cJSON *e = cJSON_AddObjectToObject(o, "sam");
        cJSON_AddNumberToObject(e, "interval", sam->interval);
        cJSON_AddNumberToObject(e, "first_step", sam->interval - 1);
        cJSON_AddNumberToObject(e, "steps", (double)sam_steps);
        cJSON_AddNumberToObject(e, "rho", sam->rho);
    }
    cJSON *epochs = cJSON_AddArrayToObject(o, "epochs");
    double flops = 0;
    for (int64_t e = 0; e < tl.max_epochs; e++) {
        int64_t first = e * tl.steps_per_epoch, last = first + tl.steps_per_epoch - 1;
        if (last > tl.total_batches - 1) last = tl.total_batches - 1;
        double f = tl.max_duration.unit == TIME_EPOCH ? (double)e / tl.max_duration.value
                                                      : (double)first / tl.total_batches;
        int r = pr ? progressive_resizing_size(pr, res, f) : res;
        double per_image;
        if (model_flops(&m, r, r, &per_image, &err)) goto fail;
        flops += 3.0 * per_image * (double)(last - first + 1) * tl.batch_size;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "epoch", (double)e);
        cJSON_AddNumberToObject(x, "train_res", r);
        cJSON_AddNumberToObject(x, "lr_start", timeline_lr(&tl, first));
        cJSON_AddNumberToObject(x, "lr_end", timeline_lr(&tl, last));
        cJSON_AddItemToArray(epochs, x);
    }
    if (sam) flops *= 1.0 + (double)sam_steps / (double)tl.total_batches; /* SAM steps run the batch twice */
    cJSON_AddNumberToObject(o, "train_flops", flops);

    if (a.json) {
        char *s = cJSON_Print(o);
        if (s) puts(s);
        free(s);
    } else {
        char md[64];
        time_format(&tl.max_duration, md, sizeof md);
        char micro[64];
        if (config_grad_accum(&cfg) == 0)
            snprintf(micro, sizeof micro, "micro-batches: auto, decided when training starts");
        else
            snprintf(micro, sizeof micro, "%d micro-batches", tl.grad_accum);
        printf("%s: %s, %lld training samples%s, batch %d (%s)\n", a.recipe, mo->model_name, (long long)samples,
               assumed ? " (ImageNet-1k's: the data is not at hand; --train_size N sets it)" : "", tl.batch_size, micro);
        printf("max_duration %s: %lld epochs x %lld steps = %lld batches; warmup %lld batches\n", md,
               (long long)tl.max_epochs, (long long)tl.steps_per_epoch, (long long)tl.total_batches,
               (long long)tl.warmup_batches);
        printf("algorithms, in run order:");
        for (int i = 0; i < cfg.algorithms.n; i++) printf(" %s", cfg.algorithms.items[i].entry->name);
        printf("%s\n", cfg.algorithms.n ? "" : " none");
        if (ema)
            printf("ema: smoothing %.7f every %g batches\n", ema_smoothing(ema),
                   cJSON_GetObjectItem(cJSON_GetObjectItem(o, "ema"), "update_interval_batches")->valuedouble);
        if (sam && sam->interval == 1)
            printf("sam: rho %g on every step: %lld of %lld steps\n", sam->rho, (long long)sam_steps,
                   (long long)tl.total_batches);
        else if (sam)
            printf("sam: rho %g on every %d%s step (steps %d, %d, ...): %lld of %lld steps\n", sam->rho,
                   sam->interval, ordinal_suffix(sam->interval), sam->interval - 1, 2 * sam->interval - 1,
                   (long long)sam_steps, (long long)tl.total_batches);
        double full;
        if (model_flops(&m, res, res, &full, &err)) goto fail;
        printf("estimated training compute: %.3g FLOPs (%.3g per image at %d px: 3 x forward; progressive resizing "
               "and SAM counted, ColOut and stochastic depth not)\n",
               flops, 3.0 * full, res);
        printf("%6s %6s %12s %12s\n", "epoch", "res", "lr_start", "lr_end");
        cJSON *x;
        cJSON_ArrayForEach(x, epochs) {
            printf("%6d %6d %12.6g %12.6g\n", (int)cJSON_GetObjectItem(x, "epoch")->valuedouble,
                   (int)cJSON_GetObjectItem(x, "train_res")->valuedouble,
                   cJSON_GetObjectItem(x, "lr_start")->valuedouble, cJSON_GetObjectItem(x, "lr_end")->valuedouble);
        }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ctrain plan: %s\n", err.msg);
done:
    cJSON_Delete(o);
    model_free(&m);
    config_free(&cfg);
    cli_args_free(&a);
    return rc;
}
