/* cmd_predict.c — `ctrain predict -f RECIPE --load WEIGHTS IMAGE... | --input X.npy [--output L.npy]`:
 * class scores for photos or an array batch, with eval-mode BN. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "data/npy.h"
#include "io/image.h"
#include "train/trainer.h"

static const char *const PREDICT_FLAGS[] = {"file", "device", "threads", "load", "input", "output", "top", "size",
                                            NULL};

static void predict_help(void) {
    printf("usage: ctrain predict -f RECIPE.yaml --load WEIGHTS.safetensors [--top K] [--size N] IMAGE...\n"
           "       ctrain predict -f RECIPE.yaml --load WEIGHTS.safetensors --input X.npy [--output LOGITS.npy]\n\n"
           "Runs the model (eval-mode BN) and prints the top K classes (default 5) with softmax probabilities and\n"
           "class names when the dataset has them. Images (JPEG/PNG) are converted to the model's channels, resized\n"
           "so the shorter side is --size (default: the validation images' size) and center-cropped, then normalized\n"
           "with the dataset's mean/std. --input takes an NHWC array: float32 used as is, uint8 normalized.\n"
           "--output writes the raw logits [n, classes] as float32 .npy.\n");
}

/* Loads the inputs into x [n, size, size, c] (malloc'ed). */
static int gather_inputs(const CliArgs *a, const Trainer *t, int c, int size, float **x, int *n, int *h, int *w,
                         Error *err) {
    float mean[16] = {0}, std[16];
    for (int i = 0; i < 16; i++) std[i] = 1;
    const Loader *l = t->val ? t->val : t->train;
    if (l) loader_normalization(l, mean, std, c);
    if (a->input) {
        NpyArray arr;
        if (npy_load(a->input, &arr, err)) return -1;
        int ok = (arr.ndim == 4 && arr.shape[3] == c) || (arr.ndim == 3 && c == 1);
        if (!ok || (arr.dtype != NPY_F32 && arr.dtype != NPY_U8)) {
            npy_free(&arr);
            return error_set(err, "%s: expected float32 or uint8 images [n, h, w, %d] (NHWC)", a->input, c);
        }
        *n = (int)arr.shape[0];
        *h = (int)arr.shape[1];
        *w = (int)arr.shape[2];
        *x = malloc((size_t)arr.numel * sizeof **x);
        if (!*x) {
            npy_free(&arr);
            return error_set(err, "out of memory");
        }
        for (int64_t i = 0; i < arr.numel; i++)
            (*x)[i] = arr.dtype == NPY_F32 ? ((float *)arr.data)[i]
                                           : (((uint8_t *)arr.data)[i] - mean[i % c]) / std[i % c];
        npy_free(&arr);
        return 0;
    }
    *n = a->n_positional;
    *h = *w = size;
    *x = malloc((size_t)*n * size * size * c * sizeof **x);
    if (!*x) return error_set(err, "out of memory");
    for (int i = 0; i < *n; i++) {
        Image im;
        if (image_load(a->positional[i], c, &im, err)) return -1;
        int rc = image_preprocess(&im, size, size, mean, std, *x + (size_t)i * size * size * c, err);
        image_free(&im);
        if (rc) return -1;
    }
    return 0;
}

static void print_top(const char *label, const float *z, int classes, int k, const char *const *names) {
    double mx = z[0], se = 0;
    for (int j = 1; j < classes; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < classes; j++) se += exp(z[j] - mx);
    printf("%s:", label);
    bool *used = calloc((size_t)classes, 1);
    for (int r = 0; r < k && r < classes && used; r++) {
        int best = -1;
        for (int j = 0; j < classes; j++)
            if (!used[j] && (best < 0 || z[j] > z[best])) best = j;
        used[best] = true;
        double p = exp(z[best] - mx) / se;
        if (names) printf("  %s %.4f", names[best], p);
        else printf("  class %d %.4f", best, p);
    }
    free(used);
    printf("\n");
}

int cmd_predict(int argc, char **argv) {
    CliArgs a;
    Error err = {{0}};
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    Trainer *t = NULL;
    float *x = NULL, *logits = NULL;
    Plan *p = NULL;
    int rc = 1;
    if (cli_parse(argc, argv, PREDICT_FLAGS, &a, &err)) goto fail;
    if (a.help) {
        predict_help();
        rc = 0;
        goto done;
    }
    if (!a.load) {
        error_set(&err, "--load WEIGHTS.safetensors is required");
        goto fail;
    }
    if (!a.input && a.n_positional == 0) {
        error_set(&err, "give image files or --input X.npy");
        goto fail;
    }
    if (cli_load_config(&a, &cfg, &err)) goto fail;
    TrainerOptions opts = {.device = a.device, .threads = a.threads, .quiet = true, .need_train_data = false};
    if (trainer_create(&t, &cfg, &opts, &err)) goto fail;
    LoadRules rules = {.strict = true, .ignore = NULL};
    if (ckpt_load_weights(&t->model, a.load, &rules, &err)) goto fail;
    int c = t->model.in_channels, classes = t->model.num_classes, size = a.size, n = 0, h = 0, w = 0;
    if (!size) {
        int vh = 224, vw = 224, vc;
        if (t->val) loader_shape(t->val, &vh, &vw, &vc);
        size = vh;
    }
    if (gather_inputs(&a, t, c, size, &x, &n, &h, &w, &err)) goto fail;
    if (plan_create(&t->model, n, h, w, false, &p, &err)) goto fail;
    if (act_upload(t->be, p->act[0], x, n, (int64_t)h * w, c, &err)) goto fail;
    if (model_forward(&t->model, p, false, &err)) goto fail;
    logits = malloc((size_t)n * classes * sizeof *logits);
    if (!logits) {
        error_set(&err, "out of memory");
        goto fail;
    }
    t->be->ops->download(t->be, logits, p->act[model_output(&t->model)], (size_t)n * classes * sizeof *logits);
    if (a.output) {
        int64_t shape[2] = {n, classes};
        if (npy_save(a.output, NPY_F32, 2, shape, logits, &err)) goto fail;
    }
    const char *const *names = NULL;
    if (t->val) names = loader_class_names(t->val);
    for (int i = 0; i < n; i++) {
        char label[64];
        if (!a.input) print_top(a.positional[i], logits + (size_t)i * classes, classes, a.top ? a.top : 5, names);
        else {
            snprintf(label, sizeof label, "%s[%d]", a.input, i);
            print_top(label, logits + (size_t)i * classes, classes, a.top ? a.top : 5, names);
        }
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ctrain predict: %s\n", err.msg);
done:
    if (t) plan_destroy(&t->model, p);
    free(x);
    free(logits);
    trainer_destroy(t);
    config_free(&cfg);
    cli_args_free(&a);
    return rc;
}
