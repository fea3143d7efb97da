/* cmd_eval.c — `ctrain eval -f RECIPE --load WEIGHTS`: accuracy of saved weights on the validation set. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "train/trainer.h"

static const char *const EVAL_FLAGS[] = {"file", "device", "threads", "load", "json", NULL};

int cmd_eval(int argc, char **argv) {
    CliArgs a;
    Error err = {{0}};
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    Trainer *t = NULL;
    int rc = 1;
    if (cli_parse(argc, argv, EVAL_FLAGS, &a, &err)) goto fail;
    if (a.help) {
        printf("usage: ctrain eval -f RECIPE.yaml --load WEIGHTS.safetensors [--device D] [--threads N] [--json]\n"
               "                   [--recipe.key VALUE ...]\n\n"
               "Evaluates the weights on the recipe's val_dataset (eval-mode BN): top-1, top-5, cross-entropy.\n");
        rc = 0;
        goto done;
    }
    if (!a.load) {
        error_set(&err, "--load WEIGHTS.safetensors is required");
        goto fail;
    }
    if (cli_load_config(&a, &cfg, &err)) goto fail;
    TrainerOptions opts = {.device = a.device, .threads = a.threads, .quiet = true, .need_train_data = false};
    if (trainer_create(&t, &cfg, &opts, &err)) goto fail;
    LoadRules rules = {.strict = true, .ignore = NULL};
    if (ckpt_load_weights(&t->model, a.load, &rules, &err)) goto fail;
    EvalResult r;
    if (trainer_evaluate(t, &r, &err)) goto fail;
    if (a.json)
        printf("{\"top1\": %.6f, \"top5\": %.6f, \"cross_entropy\": %.6f, \"samples\": %lld, \"seconds\": %.3f}\n",
               r.top1, r.top5, r.cross_entropy, (long long)r.samples, r.seconds);
    else
        printf("top1 %.4f  top5 %.4f  cross_entropy %.4f  (%lld images, %.1fs)\n", r.top1, r.top5, r.cross_entropy,
               (long long)r.samples, r.seconds);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ctrain eval: %s\n", err.msg);
done:
    trainer_destroy(t);
    config_free(&cfg);
    cli_args_free(&a);
    return rc;
}
