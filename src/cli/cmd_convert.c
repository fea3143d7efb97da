/* cmd_convert.c — `ctrain convert SRC OUT.beton [options]`: write an FFCV .beton (fields image, label). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "data/convert.h"
#include "train/report.h"

static const char *const CONVERT_FLAGS[] = {"write_mode", "max_resolution", "jpeg_quality", "compress_probability",
                                            "smart_threshold", "page_size", "num_workers", "seed", "labels", "quiet",
                                            NULL};

static void convert_help(void) {
    printf("usage: ctrain convert SRC OUT.beton [--write_mode raw|jpg|smart|proportion] [--max_resolution N]\n"
           "                      [--jpeg_quality Q] [--compress_probability P] [--smart_threshold BYTES]\n"
           "                      [--page_size BYTES] [--num_workers N] [--seed S] [--labels Y.npy] [--quiet]\n\n"
           "Writes an FFCV .beton with the fields `image` (RGBImage) and `label` (Int), as FFCV's ImageNet files.\n"
           "SRC: an ImageFolder tree (class folders sorted as torchvision sorts them; label = folder index), an IDX\n"
           "images file (*-images-idx3-ubyte[.gz], its labels file beside it) or a uint8 images .npy with --labels.\n"
           "Options as FFCV's RGBImageField: write_mode raw (default), jpg, smart (JPEG when h*w*3 > smart_threshold)\n"
           "or proportion (JPEG with probability compress_probability, default 0.5, drawn from --seed);\n"
           "max_resolution downscales the longest side (area resampling, never upscales); jpeg_quality 90;\n"
           "page_size 8 MiB (a power of two >= 2 MiB). Unreadable images are reported and skipped; the output is\n"
           "written to a temporary file and renamed, so it is complete or absent.\n");
}

typedef struct Progress {
    double t0, last;
    bool tty, quiet;
    int64_t skipped;
} Progress;

static void progress(void *ctx, int64_t done, int64_t total) {
    Progress *p = ctx;
    double now = report_now();
    /* a terminal redraws twice a second; a log gets a line every 10 seconds and at the end */
    if (p->quiet || (now - p->last < (p->tty ? 0.5 : 10.0) && done != total)) return;
    p->last = now;
    double ips = done / (now - p->t0 > 1e-9 ? now - p->t0 : 1e-9);
    if (p->tty) {
        int width = 30, fill = total ? (int)(width * done / total) : width;
        char bar[40];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kconvert [%s] %lld/%lld  %.0f images/s", bar, (long long)done, (long long)total, ips);
        if (done == total) fputc('\n', stderr);
    } else {
        fprintf(stderr, "convert %lld/%lld  %.0f images/s\n", (long long)done, (long long)total, ips);
    }
}

static void skipped(void *ctx, const char *what, const char *why) {
    Progress *p = ctx;
    p->skipped++;
    fprintf(stderr, "%sskipped %s: %s\n", p->tty && !p->quiet ? "\r\033[K" : "", what, why);
}

int cmd_convert(int argc, char **argv) {
    CliArgs a;
    Error err = {{0}};
    int rc = 1;
    if (cli_parse(argc, argv, CONVERT_FLAGS, &a, &err)) goto fail;
    if (a.help) {
        convert_help();
        rc = 0;
        goto done;
    }
    if (a.n_positional != 2 || a.n_overrides) {
        error_set(&err, "give SRC and OUT.beton (see ctrain convert --help)");
        goto fail;
    }
    ConvertOptions o;
    convert_options_default(&o);
    if (a.write_mode && convert_parse_mode(a.write_mode, &o.write_mode, &err)) goto fail;
    o.max_resolution = a.max_resolution;
    if (a.jpeg_quality) o.jpeg_quality = a.jpeg_quality;
    if (o.jpeg_quality < 1 || o.jpeg_quality > 100) {
        error_set(&err, "--jpeg_quality must be 1..100");
        goto fail;
    }
    if (a.compress_probability >= 0) o.compress_probability = a.compress_probability;
    if (o.compress_probability > 1) {
        error_set(&err, "--compress_probability must be 0..1");
        goto fail;
    }
    o.smart_threshold = a.smart_threshold;
    if (a.page_size < 0 || a.page_size > 0xFFFFFFFFll) {
        error_set(&err, "--page_size must be a power of two from 2 MiB below 4 GiB");
        goto fail;
    }
    o.page_size = (uint32_t)a.page_size;
    o.num_workers = a.num_workers;
    o.seed = (uint64_t)a.seed;
    o.labels = a.labels;
    Progress p = {.t0 = report_now(), .last = report_now(), .tty = isatty(fileno(stderr)), .quiet = a.quiet};
    o.progress = progress;
    o.on_skip = skipped;
    o.ctx = &p;
    ConvertReport r;
    if (convert_run(a.positional[0], a.positional[1], &o, &r, &err)) goto fail;
    double secs = report_now() - p.t0;
    printf("wrote %s: %lld samples (%lld JPEG, %lld raw), %lld skipped, %.1f MB, %.1fs, %.0f images/s\n",
           a.positional[1], (long long)r.written, (long long)r.jpeg, (long long)r.raw, (long long)r.skipped,
           (double)r.bytes / 1e6, secs, secs > 0 ? r.samples / secs : 0.0);
    if (r.classes) printf("%d classes (labels 0..%d, folder names in sorted order)\n", r.classes, r.classes - 1);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "ctrain convert: %s\n", err.msg);
done:
    cli_args_free(&a);
    return rc;
}
