/* colout.c — ColOut (Composer 0.9 algorithms/colout): recipe options, checks, and the dropping of random rows and
 * columns, the same for the whole batch (batch: true) or drawn for each image (batch: false). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"

static const char *const RESIZE_TARGET[] = {"auto", "true", "false", NULL};

const FieldSpec COLOUT_FIELDS[] = {
    {.name = "p_row", .type = F_DOUBLE, .offset = offsetof(ColoutOptions, p_row), .def = "0.15",
     .help = "fraction of rows dropped"},
    {.name = "p_col", .type = F_DOUBLE, .offset = offsetof(ColoutOptions, p_col), .def = "0.15",
     .help = "fraction of columns dropped"},
    {.name = "batch", .type = F_BOOL, .offset = offsetof(ColoutOptions, batch), .def = "true",
     .help = "the same rows/columns for the whole batch (false: drawn for each image)"},
    {.name = "resize_target", .type = F_ENUM, .offset = offsetof(ColoutOptions, resize_target), .def = "auto",
     .enum_values = RESIZE_TARGET, .help = "auto or false: targets are class labels"},
    {0},
};

/* Checks the fractions and rejects what ctrain does not implement. */
int colout_check(const void *options, Error *err) {
    const ColoutOptions *o = options;
    if (!(o->p_row >= 0 && o->p_row < 1)) return error_set(err, "p_row must be in [0, 1) (got %g)", o->p_row);
    if (!(o->p_col >= 0 && o->p_col < 1)) return error_set(err, "p_col must be in [0, 1) (got %g)", o->p_col);
    if (o->resize_target == COLOUT_TARGET_TRUE)
        return error_set(err, "resize_target: true is not implemented in ctrain (targets are class labels)");
    return 0;
}

typedef struct Colout {
    int64_t *rows, *cols;     /* scratch permutations */
    size_t rows_cap, cols_cap;
    float *copy;
    size_t copy_cap;
} Colout;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Draws the kh rows of h and kw columns of w to keep into m->rows, m->cols [kh], [kw], in increasing order, as
 * colout_batch's sorted(torch.randperm(H)[:kh]). */
static void draw_kept(Rng *r, Colout *m, int h, int w, int kh, int kw) {
    rng_permutation(r, m->rows, h);
    rng_permutation(r, m->cols, w);
    qsort(m->rows, (size_t)kh, sizeof *m->rows, cmp_i64);
    qsort(m->cols, (size_t)kw, sizeof *m->cols, cmp_i64);
}

/* AFTER_DATALOADER: keep int((1 - p_row) H) rows and int((1 - p_col) W) columns of every image, chosen at random
 * (sorted; once for the whole batch as Composer's colout_batch does with batch: true, or image by image as its
 * ColOutTransform does in the dataset with batch: false), so the batch shrinks to those. */
static int colout_run(void *self, const void *options, Event e, TrainState *s, Error *err) {
    if (e != EVENT_AFTER_DATALOADER) return 0;
    Colout *m = self;
    const ColoutOptions *o = options;
    int kh = (int)((1.0 - o->p_row) * s->h), kw = (int)((1.0 - o->p_col) * s->w);
    if (kh < 1) kh = 1;
    if (kw < 1) kw = 1;
    if (kh == s->h && kw == s->w) return 0;
    size_t bytes = (size_t)s->n * s->h * s->w * s->c * sizeof(float);
    if (algo_grow((void **)&m->rows, &m->rows_cap, (size_t)s->h * sizeof(int64_t), err) ||
        algo_grow((void **)&m->cols, &m->cols_cap, (size_t)s->w * sizeof(int64_t), err) ||
        algo_grow((void **)&m->copy, &m->copy_cap, bytes, err))
        return -1;
    Rng r;
    algo_rng_batch(&r, s, ALGO_SLOT_COLOUT);
    memcpy(m->copy, s->images, bytes);
    float *dst = s->images;
    for (int i = 0; i < s->n; i++) {
        if (i == 0 || !o->batch) draw_kept(&r, m, s->h, s->w, kh, kw);
        for (int y = 0; y < kh; y++)
            for (int x = 0; x < kw; x++) {
                const float *p = m->copy + (((size_t)i * s->h + m->rows[y]) * s->w + m->cols[x]) * s->c;
                for (int c = 0; c < s->c; c++) *dst++ = p[c];
            }
    }
    s->h = kh;
    s->w = kw;
    return 0;
}

static void colout_destroy(void *self, TrainState *s) {
    Colout *m = self;
    free(m->rows);
    free(m->cols);
    free(m->copy);
}

const AlgorithmImpl COLOUT_IMPL = {.state_size = sizeof(Colout), .run = colout_run, .destroy = colout_destroy};
