/* main.c — the ctrain program: dispatches to a command; the only place that exits. */
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/cli.h"

static void usage(FILE *out) {
    fprintf(out,
            "ctrain %s — train image classifiers from Composer-style recipes, in C\n\n"
            "usage: ctrain <command> [options]\n\n"
            "commands:\n"
            "  train    train a model from a recipe        ctrain train -f recipes/fmnist_resnet20.yaml\n"
            "  plan     preview a recipe without training  ctrain plan -f RECIPE [--train_size N] [--json]\n"
            "  eval     evaluate saved weights            ctrain eval -f RECIPE --load W.safetensors\n"
            "  predict  classify images or an array       ctrain predict -f RECIPE --load W.safetensors x.png\n"
            "  bench    time the training step            ctrain bench --model resnet50 --batch 32 --res 224\n"
            "  convert  write an FFCV .beton              ctrain convert imagenet/train train.beton\n"
            "  inspect  show what a .beton holds          ctrain inspect train.beton [--json]\n\n"
            "ctrain <command> --help shows a command's options; ctrain --version the build.\n",
            CTRAIN_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ctrain %s (backends: %s; CUDA: %s)\n", CTRAIN_VERSION, backend_names(),
               backend_has_cuda() ? "built (cuDNN, cuBLAS); ctrain bench --device cuda names the GPU" : "not built");
        return 0;
    }
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "predict") == 0) return cmd_predict(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc - 2, argv + 2);
    if (strcmp(cmd, "convert") == 0) return cmd_convert(argc - 2, argv + 2);
    if (strcmp(cmd, "inspect") == 0) return cmd_inspect(argc - 2, argv + 2);
    if (strcmp(cmd, "plan") == 0) return cmd_plan(argc - 2, argv + 2);
    fprintf(stderr, "ctrain: unknown command '%s' (try ctrain --help)\n", cmd);
    return 2;
}
