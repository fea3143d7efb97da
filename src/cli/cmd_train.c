/* cmd_train.c — `ctrain train -f RECIPE [flags] [--recipe.key value ...]`: one training run. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "data/loader.h"
#include "train/trainer.h"

static const char *const TRAIN_FLAGS[] = {"file", "device", "threads", "run_dir", "quiet", "dump", NULL};

static void train_help(void) {
    printf("usage: ctrain train -f RECIPE.yaml [--device cpu|ref] [--threads N] [--run_dir DIR] [--quiet] [--dump]\n"
           "                    [--any.recipe.key VALUE ...]\n\n"
           "Trains the model a Composer-style recipe describes. Recipe keys can be overridden on the command line by\n"
           "their dotted path (--optimizers.decoupled_sgdw.lr 1.0) or any unique suffix of it (--scale_schedule_ratio\n"
           "0.36); a bare --flag means true. Outputs go to the run folder (--run_dir, default runs/<run_name>):\n"
           "config.yaml (the resolved recipe), metrics.jsonl (one JSON object per batch, epoch, eval, checkpoint)\n"
           "and summary.json; checkpoints go to save_folder when the recipe sets it.\n\n"
           "  --dump       print the resolved recipe and the schedule, then exit without training\n"
           "  --device     cpu (oneDNN; default) or ref (plain C reference, slow)\n"
           "  --threads    CPU threads (default: all cores)\n"
           "  --quiet      no progress output\n");
}

int cmd_train(int argc, char **argv) {
    CliArgs a;
    Error err = {{0}};
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    Trainer *t = NULL;
    int rc = 1;
    if (cli_parse(argc, argv, TRAIN_FLAGS, &a, &err)) goto fail;
    if (a.help) {
        train_help();
        rc = 0;
        goto done;
    }
    if (cli_load_config(&a, &cfg, &err)) goto fail;
    printf("# resolved configuration\n");
    config_emit(&cfg, stdout);
    fflush(stdout);
    /* the schedule can be shown before any data is read when the dataset's size is known (ImageNet) */
    int64_t nominal = loader_nominal_samples(&cfg.train_dataset);
    if (nominal > 0) {
        Timeline tl;
        if (timeline_compute(&cfg, nominal, &tl, &err)) goto fail;
        cli_print_timeline(&cfg, &tl);
    }
    if (a.dump && nominal > 0) {
        rc = 0;
        goto done;
    }
    TrainerOptions opts = {.device = a.device, .threads = a.threads, .run_dir = a.run_dir, .quiet = a.quiet,
                           .need_train_data = true};
    double t0 = 0;
    if (trainer_create(&t, &cfg, &opts, &err)) goto fail;
    if (nominal <= 0) cli_print_timeline(&cfg, &t->tl);
    if (a.dump) {
        rc = 0;
        goto done;
    }
    t0 = report_now();
    if (trainer_fit(t, &err)) goto fail;
    double wall = report_now() - t0;
    if (trainer_write_summary(t, wall, &err)) goto fail;
    printf("done: %lld epochs in %.1fs, %.0f images/s (training)", (long long)t->progress.epoch, wall,
           t->train_seconds > 0 ? t->progress.samples / t->train_seconds : 0.0);
    if (t->have_eval)
        printf(", top1 %.4f, top5 %.4f, cross_entropy %.4f", t->last_eval.top1, t->last_eval.top5,
               t->last_eval.cross_entropy);
    printf("\nrun folder: %s\n", t->run_dir);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ctrain train: %s\n", err.msg);
    rc = 1;
done:
    trainer_destroy(t);
    config_free(&cfg);
    cli_args_free(&a);
    return rc;
}
