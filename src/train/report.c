/* report.c — metrics.jsonl, the progress bar and summary.json (see report.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fsutil.h"
#include "train/report.h"

double report_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double report_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int report_open(Reporter *r, const char *run_dir, bool append, bool quiet, Error *err) {
    memset(r, 0, sizeof *r);
    r->console = stderr;
    r->tty = isatty(fileno(stderr));
    r->quiet = quiet;
    r->plain_every = 100;
    if (run_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
        r->metrics = fopen(path, append ? "a" : "w");
        if (!r->metrics) return error_set(err, "%s: cannot open for writing", path);
    }
    return 0;
}

void report_close(Reporter *r) {
    if (r->bar_open) fputc('\n', r->console);
    r->bar_open = false;
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
}

void report_event(Reporter *r, cJSON *obj) {
    if (r->metrics && obj) {
        char *s = cJSON_PrintUnformatted(obj);
        if (s) {
            fputs(s, r->metrics);
            fputc('\n', r->metrics);
            fflush(r->metrics);
            free(s);
        }
    }
    cJSON_Delete(obj);
}

static void format_eta(double s, char *buf, size_t size) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, size, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

void report_progress(Reporter *r, int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, double loss,
                     double lr, double images_per_s, double eta_s) {
    if (r->quiet) return;
    char eta[32];
    format_eta(eta_s, eta, sizeof eta);
    if (r->tty) {
        double now = report_now();
        if (now - r->last_draw < 0.25 && batch != batches) return;
        r->last_draw = now;
        int width = 24, fill = batches ? (int)(width * batch / batches) : 0;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(r->console, "\r\033[Kepoch %lld/%lld [%s] %lld/%lld loss %.4f lr %.4g %.0f img/s ETA %s",
                (long long)epoch + 1, (long long)epochs, bar, (long long)batch, (long long)batches, loss, lr,
                images_per_s, eta);
        fflush(r->console);
        r->bar_open = true;
    } else if (batch % r->plain_every == 0 || batch == batches) {
        fprintf(r->console, "epoch %lld/%lld batch %lld/%lld loss %.4f lr %.4g %.0f img/s ETA %s\n",
                (long long)epoch + 1, (long long)epochs, (long long)batch, (long long)batches, loss, lr,
                images_per_s, eta);
    }
}

void report_line(Reporter *r, const char *fmt, ...) {
    if (r->bar_open) {
        fputc('\n', r->console);
        r->bar_open = false;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->console, fmt, ap);
    va_end(ap);
    fputc('\n', r->console);
    fflush(r->console);
}

int report_write_json(const char *path, cJSON *obj, Error *err) {
    char *s = obj ? cJSON_Print(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) return error_set(err, "%s: out of memory formatting JSON", path);
    AtomicFile af;
    int rc = atomic_open(&af, path, err);
    if (rc == 0) {
        fputs(s, af.f);
        fputc('\n', af.f);
        rc = atomic_commit(&af, err);
    }
    free(s);
    return rc;
}
