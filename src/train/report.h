/* report.h — what a run tells its user: metrics.jsonl (one JSON object per event, flushed as written), a
 * progress bar on a terminal (plain lines otherwise), and the final summary.json. */
#ifndef CTRAIN_TRAIN_REPORT_H
#define CTRAIN_TRAIN_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "core/error.h"

typedef struct Reporter {
    FILE *metrics;          /* metrics.jsonl, or NULL */
    FILE *console;          /* where progress and summaries go (stderr) */
    bool tty;               /* console is a terminal: redraw one progress line */
    bool quiet;             /* no progress at all */
    double last_draw;       /* seconds, for throttling the bar */
    int64_t plain_every;    /* without a terminal: print a line every this many batches */
    bool bar_open;          /* a progress line is on screen without a newline */
} Reporter;

/* Opens run_dir/metrics.jsonl (appending when resuming) and sets up the console. run_dir may be NULL. */
int report_open(Reporter *r, const char *run_dir, bool append, bool quiet, Error *err);
/* Closes the metrics file. */
void report_close(Reporter *r);
/* Writes obj as one line of metrics.jsonl (and frees it). */
void report_event(Reporter *r, cJSON *obj);
/* Shows training progress: a redrawn bar on a terminal, a plain line every plain_every batches otherwise. */
void report_progress(Reporter *r, int64_t epoch, int64_t epochs, int64_t batch, int64_t batches, double loss,
                     double lr, double images_per_s, double eta_s);
/* Prints a message line to the console (ending any open progress line first). */
void report_line(Reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Seconds on a monotonic clock. */
double report_now(void);
/* The median of v [n], n > 0 (sorts v in place). */
double report_median(double *v, int n);
/* Writes obj to path as pretty JSON, atomically (and frees obj). */
int report_write_json(const char *path, cJSON *obj, Error *err);

#endif
