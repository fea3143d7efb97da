/* cmd_bench.c — `ctrain bench`: the real training step (forward, loss, backward, SGD) on synthetic data,
 * timed; FLOPs counted from the layer shapes (conv and fc multiply-adds x 2, forward x 3 for training). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "data/loader.h"
#include "core/rng.h"
#include "model/init.h"
#include "model/resnet.h"
#include "train/optim.h"
#include "train/report.h"

static const char *const BENCH_FLAGS[] = {"model", "batch", "res", "steps", "warmup", "classes", "channels", "width",
                                          "device", "threads", "json", "loader", "num_workers", "epochs",
                                          "precision", "profile", "layers", "layout", "conv", NULL};

static void bench_help(void) {
    printf("usage: ctrain bench [--model resnet50] [--batch 32] [--res 224] [--steps 5] [--warmup 1]\n"
           "                    [--classes 1000] [--channels 3] [--width W] [--device cpu|cuda] [--precision fp32|bf16]\n"
           "                    [--layout blocked|nhwc|both] [--conv winograd|direct|both]\n"
           "                    [--threads N] [--profile] [--layers] [--json]\n"
           "       ctrain bench --loader FILE.beton|FOLDER/train [--res 176] [--batch 64] [--num_workers N] [--epochs 2]\n"
           "                    [--json]\n\n"
           "Times the training step (forward, soft cross-entropy, backward, SGD with momentum) on random data and\n"
           "prints images/s and GFLOP/s (training FLOPs = 3 x the forward FLOPs of the conv and fc layers); on a GPU\n"
           "also the device and the peak device memory. --precision bf16: convolutions (and on a GPU the FC) in bf16.\n"
           "--layout nhwc: the cpu backend keeps every activation NHWC instead of its blocked layout; --layout both\n"
           "times the two in turn, step by step, in one process and prints the median ratio of the pairs.\n"
           "--conv direct: the cpu backend runs every convolution on oneDNN, none by Winograd (by default 3x3\n"
           "stride-1 ones with 32 to 512 channels in fp32 (to 128 on an Intel CPU with AVX-512), in bf16 from 64,\n"
           "backward weights from 32); --conv both times the two like --layout both.\n"
           "--profile adds the time per layer kind, forward and backward, and of the loss and the optimizer\n"
           "(each layer waits for the device, so the step is a little slower than without it); --layers (which\n"
           "implies --profile) also the time of every layer, with its input shape and, on the cpu backend, the\n"
           "kernel each pass of a convolution runs.\n"
           "With --loader, times the training input pipeline instead: read, decode, RandomResizedCrop to --res,\n"
           "flip, normalize and batch, over an FFCV file or an ImageFolder split (a folder named train or val).\n");
}

/* `ctrain bench --loader`: images/s of the training input pipeline over a .beton or an ImageFolder split. */
static int bench_loader(const CliArgs *a, Error *err) {
    const RegistryEntry *e = registry_find(&DATASET_REGISTRY, "imagenet");
    ImagenetOptions o;
    memset(&o, 0, sizeof o);
    Notes notes = {0};
    if (schema_fill(e->fields, NULL, "bench", &o, &notes, err)) return -1;
    notes_free(&notes);
    char dir[4096], base[4096];
    snprintf(dir, sizeof dir, "%s", a->loader);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
    char *slash = strrchr(dir, '/');
    snprintf(base, sizeof base, "%s", slash ? slash + 1 : dir);
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    struct stat st;
    if (stat(a->loader, &st) != 0) {
        schema_free(e->fields, &o);
        return error_set(err, "--loader %s: no such file or folder", a->loader);
    }
    bool folder = S_ISDIR(st.st_mode);
    if (folder && strcmp(base, "train") != 0 && strcmp(base, "val") != 0) {
        schema_free(e->fields, &o);
        return error_set(err, "--loader %s: an ImageFolder split must be a folder named train or val", a->loader);
    }
    /* options point into dir/base: owned strings, freed by schema_free */
    free(o.ffcv_dir);
    free(o.datadir);
    o.use_ffcv = !folder;
    o.ffcv_dir = strdup(dir);
    o.ffcv_dest = strdup(base);
    o.datadir = strdup(dir);
    o.is_train = !folder || strcmp(base, "train") == 0;
    o.crop_size = a->res ? a->res : 176;
    Choice c = {.entry = e, .options = &o};
    int batch = a->batch ? a->batch : 64, epochs = a->epochs ? a->epochs : 2;
    LoaderArgs la = {.batch_size = batch, .seed = 0, .train = true, .workers = a->num_workers, .batches_ahead = 0};
    Loader *l = NULL;
    int rc = loader_create(&c, "bench", &la, &l, err);
    double t0 = 0;
    int64_t images = 0, nb = rc ? 0 : loader_batches(l);
    Batch b;
    for (int ep = 0; rc == 0 && ep < epochs; ep++)
        for (int64_t k = 0; rc == 0 && k < nb; k++) {
            rc = loader_get(l, ep, k, &b, err);
            if (ep == 0 && k == 0) t0 = report_now(); /* the first batch pays for starting up */
            else images += b.n;
        }
    double dt = report_now() - t0;
    if (rc == 0) {
        char msg[256];
        int64_t corrupt = loader_take_corrupt(l, msg, sizeof msg);
        int workers = a->num_workers ? a->num_workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (a->json)
            printf("{\"loader\": \"%s\", \"images_per_s\": %.1f, \"num_workers\": %d, \"res\": %d, \"batch\": %d, "
                   "\"epochs\": %d, \"images\": %lld, \"corrupt\": %lld}\n", a->loader, images / dt, workers,
                   o.crop_size, batch, epochs, (long long)images, (long long)corrupt);
        else
            printf("%s: %.1f images/s (%d workers, RandomResizedCrop to %d, batch %d, %lld images over %d epochs, "
                   "%lld corrupt)\n", a->loader, images / dt, workers, o.crop_size, batch, (long long)images, epochs,
                   (long long)corrupt);
    }
    loader_destroy(l);
    schema_free(e->fields, &o);
    return rc;
}

/* Whether a layer before runs layer i of plan p: RUN_WHOLE (a fused ReLU, Plan.fuse FUSE_DONE), RUN_FORWARD (an
 * ADD whose forward the BN before it runs, FUSE_ADD_RELU), or RUN_ITSELF. */
typedef enum { RUN_ITSELF, RUN_WHOLE, RUN_FORWARD } RunBy;
static RunBy run_by(const Plan *p, int i) {
    if (p->fuse[i] == FUSE_DONE) return RUN_WHOLE;
    return i > 0 && p->fuse[i - 1] == FUSE_ADD_RELU ? RUN_FORWARD : RUN_ITSELF;
}

/* The --profile table: ms per step for each layer kind (forward, backward) that the model has, summed from
 * prof [n_layers][2] (Plan.profile), then the loss and the optimizer (extra [2]), with each row's share of the
 * step; ReLUs fused into a layer before them, and ADDs whose forward the BN before them runs (Plan.fuse), are
 * counted in that layer's time. Returns the seconds measured in all. */
static double print_profile(const Model *m, const Plan *p, const double *prof, const double *extra, int steps,
                          double step_s) {
    printf("%-14s %7s %11s %12s %8s\n", "layer kind", "layers", "forward ms", "backward ms", "share");
    double total = extra[0] + extra[1];
    for (int i = 0; i < 2 * m->n_layers; i++) total += prof[i];
    for (int k = 0; k < LAYER_KIND_COUNT; k++) {
        int count = model_count_layers(m, (LayerKind)k);
        if (!count) continue;
        double f = 0, b = 0;
        int fused = 0, forward = 0;
        for (int i = 0; i < m->n_layers; i++) {
            if (m->layers[i].kind != (LayerKind)k) continue;
            f += prof[2 * i], b += prof[2 * i + 1];
            fused += run_by(p, i) == RUN_WHOLE;
            forward += run_by(p, i) == RUN_FORWARD;
        }
        printf("%-14s %7d %11.1f %12.1f %7.1f%%", layer_kind_name((LayerKind)k), count, f / steps * 1e3,
               b / steps * 1e3, 100.0 * (f + b) / total);
        if (fused) printf("  (%d run inside a layer before)", fused);
        if (forward) printf("  (%d forward inside the BN before)", forward);
        printf("\n");
    }
    printf("%-14s %7s %11.1f %12s %7.1f%%\n", "loss", "", extra[0] / steps * 1e3, "", 100.0 * extra[0] / total);
    printf("%-14s %7s %11s %12.1f %7.1f%%\n", "optimizer", "", "", extra[1] / steps * 1e3, 100.0 * extra[1] / total);
    printf("%-14s %7s %11.1f ms measured of %.1f ms per step\n", "total", "", total / steps * 1e3, step_s * 1e3);
    return total;
}

/* The --layers table: every layer's ms per step (forward, backward) from prof [n_layers][2] and share of total
 * seconds, its input and output [c, h, w], a convolution's kernel and stride, and where the backend names them
 * the implementations of its three passes; a layer that a layer before runs says so. */
static void print_layers(const Model *m, const Plan *p, const double *prof, double total, int steps) {
    Backend *be = m->be;
    printf("\n%4s %-24s %-8s %12s %12s %6s %8s %8s %6s  %s\n", "#", "layer", "kind", "input", "output", "kernel",
           "fwd ms", "bwd ms", "share", "implementation: all passes, or forward / backward data / backward weights");
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        char in[32], out[32], kernel[16] = "-";
        snprintf(in, sizeof in, "%dx%dx%d", m->channels[l->in], p->th[l->in], p->tw[l->in]);
        snprintf(out, sizeof out, "%dx%dx%d", m->channels[l->out], p->th[l->out], p->tw[l->out]);
        if (l->kind == LAYER_CONV) snprintf(kernel, sizeof kernel, "%dx%d/%d", l->k, l->k, l->stride);
        double f = prof[2 * i], b = prof[2 * i + 1];
        printf("%4d %-24s %-8s %12s %12s %6s %8.2f %8.2f %5.1f%%", i, l->name[0] ? l->name : "-",
               layer_kind_name(l->kind), in, out, kernel, f / steps * 1e3, b / steps * 1e3, 100.0 * (f + b) / total);
        if (l->kind == LAYER_CONV && be->ops->conv_impl) {
            const char *impl[3];
            for (int pass = 0; pass < 3; pass++) {
                impl[pass] = be->ops->conv_impl(be, p->conv[i], pass);
                if (!impl[pass][0]) impl[pass] = "-";
            }
            if (strcmp(impl[0], impl[1]) == 0 && strcmp(impl[1], impl[2]) == 0) printf("  %s", impl[0]);
            else printf("  %s / %s / %s", impl[0], impl[1], impl[2]);
        }
        if (run_by(p, i) == RUN_WHOLE) printf("  (run by the layer before)");
        else if (run_by(p, i) == RUN_FORWARD) printf("  (forward run by the BN before)");
        printf("\n");
    }
}

/* One training step of m on plan p (forward, soft cross-entropy on tgt, backward, SGD); with extra, the loss and
 * optimizer times are added to its two slots. */
static int bench_step(Model *m, Plan *p, Optimizer *opt, int batch, int classes, const float *tgt, float *loss,
                      double *extra, Error *err) {
    Backend *be = m->be;
    int out = model_output(m);
    if (model_forward(m, p, true, err)) return -1;
    double tl = report_now();
    be->ops->loss_forward_backward(be, LOSS_SOFT_CROSS_ENTROPY, batch, classes, p->act[out], tgt, 1.0f / batch, loss,
                                   p->grad[out]);
    if (extra && be->ops->sync(be, err)) return -1;
    if (extra) extra[0] += report_now() - tl;
    if (model_backward(m, p, false, err)) return -1;
    double to = report_now();
    optim_step(opt, be, m->weights, m->grads, 0.01);
    if (extra && be->ops->sync(be, err)) return -1;
    if (extra) extra[1] += report_now() - to;
    return 0;
}

/* What `--layout both` and `--conv both` compare: be as given (first) against NHWC activations or against
 * oneDNN for every convolution (second). */
typedef enum PairKind { PAIR_LAYOUT, PAIR_CONV } PairKind;

/* Sets be to the first (second false) or second variant of kind; block is be's own activation block. */
static void pair_set(Backend *be, PairKind kind, bool second, int block) {
    if (kind == PAIR_LAYOUT) be->act_block = second ? 0 : block;
    else be->winograd = !second;
}

/* `--layout both` / `--conv both`: the same model, weights and input on two plans of one backend, made with
 * the two variants of kind, timed step by step in turn (the first of each pair alternates) after warmup steps
 * of each; prints the median step of each and the median of the per-pair ratios, which a busy machine
 * disturbs far less than two separate runs. */
static int bench_pair(Model *m, Plan *p, PairKind kind, const char *name, int batch, int res, int ch, int classes,
                      int warmup, int steps, const float *x, const float *tgt, float *loss, Optimizer *opt,
                      Error *err) {
    Backend *be = m->be;
    int block = be->act_block;
    Plan *q = NULL;
    double *t = calloc((size_t)steps * 2, sizeof *t), *ratio = calloc((size_t)steps, sizeof *ratio);
    int rc = t && ratio ? 0 : error_set(err, "out of memory");
    pair_set(be, kind, true, block);
    if (rc == 0) rc = plan_create(m, batch, res, res, true, &q, err);
    if (rc == 0) rc = act_upload(be, q->act[0], x, batch, (int64_t)res * res, ch, err);
    for (int s = 0; rc == 0 && s < warmup + steps; s++)
        for (int k = 0; rc == 0 && k < 2; k++) {
            int second = (s + k) % 2; /* 0: plan p, 1: plan q */
            pair_set(be, kind, second, block);
            double t0 = report_now();
            rc = bench_step(m, second ? q : p, opt, batch, classes, tgt, loss, NULL, err);
            if (rc == 0) rc = be->ops->sync(be, err);
            if (s >= warmup) t[2 * (s - warmup) + second] = report_now() - t0;
        }
    pair_set(be, kind, false, block);
    if (rc == 0) {
        for (int s = 0; s < steps; s++) ratio[s] = t[2 * s] / t[2 * s + 1];
        double r = report_median(ratio, steps), a, b;
        for (int s = 0; s < steps; s++) ratio[s] = t[2 * s];
        a = report_median(ratio, steps);
        for (int s = 0; s < steps; s++) ratio[s] = t[2 * s + 1];
        b = report_median(ratio, steps);
        if (kind == PAIR_LAYOUT)
            printf("%s batch %d res %d threads %d: blocked (nChw%dc) %.1f ms/step, NHWC %.1f ms/step (medians of %d); "
                   "blocked / NHWC %.3f (median of the %d pairs)\n", name, batch, res, be->threads, block, a * 1e3,
                   b * 1e3, steps, r, steps);
        else
            printf("%s batch %d res %d threads %d: Winograd %.1f ms/step, direct (oneDNN) %.1f ms/step (medians of "
                   "%d); Winograd / direct %.3f (median of the %d pairs)\n", name, batch, res, be->threads, a * 1e3,
                   b * 1e3, steps, r, steps);
    }
    plan_destroy(m, q);
    free(t);
    free(ratio);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    CliArgs a;
    Error err = {{0}};
    Backend *be = NULL;
    Model m;
    memset(&m, 0, sizeof m);
    Plan *p = NULL;
    float *x = NULL, *tgt_h = NULL, *tgt = NULL, *loss = NULL;
    double *prof = NULL; /* --profile: Plan.profile, [n_layers][2] */
    Optimizer opt;
    memset(&opt, 0, sizeof opt);
    int rc = 1;
    if (cli_parse(argc, argv, BENCH_FLAGS, &a, &err)) goto fail;
    a.profile = a.profile || a.layers;
    if (a.help) {
        bench_help();
        rc = 0;
        goto done;
    }
    if (a.loader) {
        if (bench_loader(&a, &err)) goto fail;
        rc = 0;
        goto done;
    }
    if (a.n_overrides || a.n_positional) {
        error_set(&err, "%s: unknown argument (see ctrain bench --help)",
                  a.n_overrides ? a.overrides[0] : a.positional[0]);
        goto fail;
    }
    int batch = a.batch ? a.batch : 32, res = a.res ? a.res : 224, steps = a.steps ? a.steps : 5;
    int warmup = a.warmup ? a.warmup : 1, classes = a.classes ? a.classes : 1000, ch = a.channels ? a.channels : 3;
    char model_name[64];
    snprintf(model_name, sizeof model_name, "%s", a.model ? a.model : "resnet50");
    ResnetOptions o = {.model_name = model_name, .num_classes = classes, .groups = 1, .width_per_group = 64,
                       .width = a.width};
    if (a.precision && strcmp(a.precision, "fp32") != 0 && strcmp(a.precision, "bf16") != 0 &&
        strcmp(a.precision, "amp") != 0) {
        error_set(&err, "--precision %s: choose fp32, bf16 or amp", a.precision);
        goto fail;
    }
    if (backend_create(a.device ? a.device : "cpu", a.threads, &be, &err)) goto fail;
    bool low = a.precision && strcmp(a.precision, "fp32") != 0;
    if (low && !be->ops->bf16) {
        error_set(&err, "--precision %s: the %s backend has no bf16 on this machine (on a CPU it needs AVX512_BF16)", a.precision,
                  be->ops->name);
        goto fail;
    }
    be->bf16 = low;
    if (a.layout && strcmp(a.layout, "nhwc") == 0) {
        be->act_block = 0;
    } else if (a.layout && strcmp(a.layout, "blocked") != 0 && strcmp(a.layout, "both") != 0) {
        error_set(&err, "--layout %s: choose blocked, nhwc or both", a.layout);
        goto fail;
    } else if (a.layout && be->act_block == 0) {
        error_set(&err, "--layout blocked: the %s backend keeps activations NHWC", be->ops->name);
        goto fail;
    }
    if (a.conv && strcmp(a.conv, "direct") == 0) {
        be->winograd = false;
    } else if (a.conv && strcmp(a.conv, "winograd") != 0 && strcmp(a.conv, "both") != 0) {
        error_set(&err, "--conv %s: choose winograd, direct or both", a.conv);
        goto fail;
    } else if (a.conv && !be->winograd) {
        error_set(&err, "--conv %s: the %s backend has no Winograd convolutions", a.conv, be->ops->name);
        goto fail;
    } else if (a.conv && a.layout && strcmp(a.conv, "both") == 0 && strcmp(a.layout, "both") == 0) {
        error_set(&err, "--conv both and --layout both: compare one thing at a time");
        goto fail;
    }
    char about[256] = "";
    if (be->ops->describe) be->ops->describe(be, about, sizeof about);
    if (resnet_build(&o, ch, &m, &err) || model_alloc(&m, be, &err) || init_weights(&m, &o, 0, &err)) goto fail;
    if (plan_create(&m, batch, res, res, true, &p, &err)) goto fail;
    size_t px = (size_t)batch * res * res * ch;
    x = malloc(px * sizeof *x);
    tgt_h = calloc((size_t)batch * classes, sizeof *tgt_h);
    tgt = be->ops->alloc(be, (size_t)batch * classes * sizeof *tgt);
    loss = be->ops->alloc(be, (size_t)batch * sizeof *loss);
    if (!x || !tgt_h || !tgt || !loss) {
        error_set(&err, "out of memory");
        goto fail;
    }
    Rng r;
    rng_init(&r, 0, RNG_SYNTHETIC, 0, 0);
    for (size_t i = 0; i < px; i++) x[i] = (float)rng_normal(&r);
    for (int i = 0; i < batch; i++) tgt_h[(size_t)i * classes + rng_below(&r, (uint32_t)classes)] = 1.0f;
    if (act_upload(be, p->act[0], x, batch, (int64_t)res * res, ch, &err)) goto fail;
    be->ops->upload(be, tgt, tgt_h, (size_t)batch * classes * sizeof *tgt);
    SgdOptions so = {.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-5};
    RegistryEntry sgd_entry = {.name = "sgd"};
    Choice choice = {.entry = &sgd_entry, .options = &so};
    if (optim_create(&opt, &choice, m.n_weights, be, &err)) goto fail;
    bool layouts = a.layout && strcmp(a.layout, "both") == 0, convs = a.conv && strcmp(a.conv, "both") == 0;
    if (layouts || convs) {
        if (bench_pair(&m, p, layouts ? PAIR_LAYOUT : PAIR_CONV, model_name, batch, res, ch, classes, warmup, steps, x,
                       tgt, loss, &opt, &err))
            goto fail;
        rc = 0;
        goto done;
    }
    double t0 = 0, extra[2] = {0}; /* loss, optimizer */
    if (a.profile && !(prof = calloc(2 * (size_t)m.n_layers, sizeof *prof))) {
        error_set(&err, "out of memory");
        goto fail;
    }
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            if (be->ops->sync(be, &err)) goto fail;
            t0 = report_now();
            p->profile = prof;
        }
        if (bench_step(&m, p, &opt, batch, classes, tgt, loss, p->profile ? extra : NULL, &err)) goto fail;
    }
    if (be->ops->sync(be, &err)) goto fail;
    double dt = (report_now() - t0) / steps, ips = batch / dt, gflops = 3.0 * p->flops_forward / dt / 1e9;
    if (prof) {
        double total = print_profile(&m, p, prof, extra, steps, dt);
        if (a.layers) print_layers(&m, p, prof, total, steps);
    }
    double peak_gib = be->ops->peak_bytes ? (double)be->ops->peak_bytes(be) / (1 << 30) : 0;
    const char *prec = be->bf16 ? "bf16" : "fp32";
    if (a.json)
        printf("{\"model\": \"%s\", \"batch\": %d, \"res\": %d, \"threads\": %d, \"device\": \"%s\", "
               "\"precision\": \"%s\", \"step_ms\": %.2f, \"images_per_s\": %.3f, \"gflops\": %.2f, "
               "\"train_gflop_per_step\": %.3f, \"device_info\": \"%s\", \"peak_device_gib\": %.3f}\n",
               model_name, batch, res, be->threads, be->ops->name, prec, dt * 1e3, ips, gflops,
               3.0 * p->flops_forward / 1e9, about, peak_gib);
    else {
        printf("%s batch %d res %d threads %d device %s %s: %.1f ms/step, %.2f images/s, %.1f GFLOP/s "
               "(%.1f GFLOP per step)\n", model_name, batch, res, be->threads, be->ops->name, prec, dt * 1e3, ips,
               gflops, 3.0 * p->flops_forward / 1e9);
        if (about[0]) printf("device: %s; peak device memory %.2f GiB\n", about, peak_gib);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ctrain bench: %s\n", err.msg);
done:
    if (be) {
        if (tgt) be->ops->free(be, tgt);
        if (loss) be->ops->free(be, loss);
        optim_destroy(&opt, be);
        plan_destroy(&m, p);
        model_free(&m);
    }
    free(x);
    free(tgt_h);
    free(prof);
    backend_destroy(be);
    cli_args_free(&a);
    return rc;
}
