/* test_algorithms.c — Composer's algorithms against their definitions, through their run-time hooks on a small
 * hand-made training state: label smoothing, MixUp (with label smoothing first, as the recipes order them),
 * CutMix, ColOut, progressive resizing (the per-epoch sizes of the mild recipe in composer.md, PyTorch's nearest
 * index rule, Composer's random crop), EMA after n updates and its evaluation swap, and the event order rule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algorithms/algorithms.h"
#include "model/init.h"
#include "testutil.h"

enum { N = 6, H = 8, W = 10, C = 2, K = 5 };

typedef struct Fixture {
    TrainState s;
    Progress pg;
    Timeline tl;
    float images[N * H * W * C], original[N * H * W * C];
    int32_t labels[N];
    float targets[N * K];
} Fixture;

static void fixture_init(Fixture *f) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < N * H * W * C; i++) f->images[i] = f->original[i] = (float)i;
    for (int i = 0; i < N; i++) f->labels[i] = (i * 3) % K;
    f->s.images = f->images;
    f->s.labels = f->labels;
    f->s.targets = f->targets;
    f->s.n = N;
    f->s.h = H;
    f->s.w = W;
    f->s.c = C;
    f->s.classes = K;
    f->s.micro_start = 0;
    f->s.micro_n = N;
    f->s.progress = &f->pg;
    f->s.tl = &f->tl;
    f->s.seed = 11;
    for (int i = 0; i < N; i++) f->targets[i * K + f->labels[i]] = 1.0f;
}

static void test_event_order_rule(void **state) {
    (void)state;
    assert_true(event_is_after(EVENT_AFTER_DATALOADER));
    assert_true(event_is_after(EVENT_AFTER_BACKWARD));
    assert_true(event_is_after(EVENT_EVAL_AFTER_FORWARD));
    assert_false(event_is_after(EVENT_BEFORE_LOSS));
    assert_false(event_is_after(EVENT_BATCH_END));
    assert_string_equal(event_name(EVENT_AFTER_TRAIN_BATCH), "after_train_batch");
}

static void test_label_smoothing(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    LabelSmoothingOptions o = {.smoothing = 0.1};
    Error err;
    assert_int_equal(LABEL_SMOOTHING_IMPL.run(NULL, &o, EVENT_BEFORE_LOSS, &f.s, &err), 0);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < K; c++)
            assert_float_equal(f.targets[i * K + c], (c == f.labels[i] ? 0.9f : 0.0f) + 0.1f / K, 1e-7);
    /* other events leave the targets alone */
    float before[N * K];
    memcpy(before, f.targets, sizeof before);
    assert_int_equal(LABEL_SMOOTHING_IMPL.run(NULL, &o, EVENT_AFTER_LOSS, &f.s, &err), 0);
    assert_memory_equal(before, f.targets, sizeof before);
}

/* MixUp after label smoothing (the recipes' order at BEFORE_LOSS): X = (1-l) X + l X[perm], targets =
 * (1-l) smooth(y) + l onehot(y[perm]) with l <= 1/2; recovered by finding each sample's partner. */
static void test_mixup(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    /* random images, so a mixed sample identifies its partner */
    tu_fill_uniform(f.original, N * H * W * C, 0, 1, 5);
    memcpy(f.images, f.original, sizeof f.images);
    MixupOptions o = {.alpha = 0.4};
    LabelSmoothingOptions ls = {.smoothing = 0.1};
    void *self = calloc(1, MIXUP_IMPL.state_size);
    Error err;
    assert_int_equal(MIXUP_IMPL.run(self, &o, EVENT_BEFORE_FORWARD, &f.s, &err), 0);
    assert_int_equal(LABEL_SMOOTHING_IMPL.run(NULL, &ls, EVENT_BEFORE_LOSS, &f.s, &err), 0);
    assert_int_equal(MIXUP_IMPL.run(self, &o, EVENT_BEFORE_LOSS, &f.s, &err), 0);
    size_t img = H * W * C;
    /* the one lambda of the micro-batch, from pixel 0 of a sample mixed with another */
    double lambda = -1;
    for (int i = 0; i < N && lambda < 0; i++)
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            double a = f.original[i * img], b = f.original[j * img], l = (f.images[i * img] - a) / (b - a);
            if (l <= 1e-6 || l > 0.5 + 1e-4) continue;
            bool all = true;
            for (size_t k = 0; k < img && all; k++)
                all = fabs(f.images[i * img + k] - ((1 - l) * f.original[i * img + k] + l * f.original[j * img + k])) < 1e-4;
            if (all) {
                lambda = l;
                break;
            }
        }
    assert_true(lambda > 0 && lambda <= 0.5);
    for (int i = 0; i < N; i++) {
        /* its partner: the j (itself included) that explains every pixel with that lambda */
        int partner = -1;
        for (int j = 0; j < N && partner < 0; j++) {
            bool all = true;
            for (size_t k = 0; k < img && all; k++)
                all = fabs(f.images[i * img + k] - ((1 - lambda) * f.original[i * img + k] +
                                                     lambda * f.original[j * img + k])) < 1e-4;
            if (all) partner = j;
        }
        assert_true(partner >= 0);
        for (int c = 0; c < K; c++) {
            double smooth = (c == f.labels[i] ? 0.9 : 0.0) + 0.1 / K;
            double want = (1 - lambda) * smooth + lambda * (c == f.labels[partner] ? 1.0 : 0.0);
            assert_true(fabs(f.targets[i * K + c] - want) < 1e-5);
        }
    }
    MIXUP_IMPL.destroy(self, &f.s);
    free(self);
}

static void test_cutmix(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    CutmixOptions o = {.alpha = 1.0};
    void *self = calloc(1, CUTMIX_IMPL.state_size);
    Error err;
    assert_int_equal(CUTMIX_IMPL.run(self, &o, EVENT_BEFORE_FORWARD, &f.s, &err), 0);
    assert_int_equal(CUTMIX_IMPL.run(self, &o, EVENT_BEFORE_LOSS, &f.s, &err), 0);
    size_t img = H * W * C;
    /* every pixel is either the sample's own or its partner's, the pasted region is the same box for all, and
     * the targets weigh the two labels by the pixel counts */
    for (int i = 0; i < N; i++) {
        int own = 0, other = -1, pasted = 0;
        for (size_t p = 0; p < H * W; p++) {
            float v = f.images[i * img + p * C];
            if (v == f.original[i * img + p * C]) own++;
            else {
                int j = (int)((v - (float)(p * C)) / (float)img + 0.5f);
                assert_true(j >= 0 && j < N && f.original[j * img + p * C] == v);
                if (other < 0) other = j;
                assert_int_equal(j, other);
                pasted++;
            }
        }
        double keep = (double)own / (H * W);
        if (pasted > 0) {
            double t_own = f.targets[i * K + f.labels[i]], t_other = f.targets[i * K + f.labels[other]];
            if (f.labels[i] != f.labels[other]) {
                assert_true(fabs(t_own - keep) < 1e-5);
                assert_true(fabs(t_other - (1 - keep)) < 1e-5);
            }
        }
    }
    CUTMIX_IMPL.destroy(self, &f.s);
    free(self);
}

/* ColOut keeps int((1 - p_row) H) rows and int((1 - p_col) W) columns in order: with batch true the same for
 * every sample, with batch false drawn for each (the six images do not all keep the same rows). */
static void test_colout(void **state) {
    (void)state;
    for (int per_image = 0; per_image < 2; per_image++) {
        Fixture f;
        fixture_init(&f);
        ColoutOptions o = {.p_row = 0.25, .p_col = 0.15, .batch = !per_image};
        void *self = calloc(1, COLOUT_IMPL.state_size);
        Error err;
        assert_int_equal(COLOUT_IMPL.run(self, &o, EVENT_AFTER_DATALOADER, &f.s, &err), 0);
        assert_int_equal(f.s.h, (int)(0.75 * H)); /* int((1 - p_row) * H) */
        assert_int_equal(f.s.w, (int)(0.85 * W));
        int rows[N][H], cols[N][W], same = 1;
        for (int i = 0; i < N; i++) {
            /* the fixture's pixel values are their indices: row and column of each kept pixel */
            const float *img = f.images + (size_t)i * f.s.h * f.s.w * C;
            for (int y = 0; y < f.s.h; y++) rows[i][y] = (int)img[(size_t)y * f.s.w * C] / (W * C) % H;
            for (int x = 0; x < f.s.w; x++) cols[i][x] = (int)img[(size_t)x * C] / C % W;
            for (int y = 1; y < f.s.h; y++) assert_true(rows[i][y] > rows[i][y - 1]);
            for (int x = 1; x < f.s.w; x++) assert_true(cols[i][x] > cols[i][x - 1]);
            for (int y = 0; y < f.s.h; y++)
                for (int x = 0; x < f.s.w; x++)
                    for (int c = 0; c < C; c++)
                        assert_true(img[((size_t)y * f.s.w + x) * C + c] ==
                                    f.original[(((size_t)i * H + rows[i][y]) * W + cols[i][x]) * C + c]);
            same &= !memcmp(rows[i], rows[0], (size_t)f.s.h * sizeof(int)) &&
                    !memcmp(cols[i], cols[0], (size_t)f.s.w * sizeof(int));
        }
        assert_int_equal(same, !per_image);
        COLOUT_IMPL.destroy(self, &f.s);
        free(self);
    }
}

/* The mild recipe at 32 epochs on 176 px crops: the sizes composer.md lists per epoch. */
static void test_progressive_resizing_sizes(void **state) {
    (void)state;
    ProgressiveResizingOptions o = {.initial_scale = 0.5, .delay_fraction = 0.4, .finetune_fraction = 0.2,
                                    .size_increment = 4};
    const int want[32] = {88, 88, 88, 88, 88, 88, 88, 88, 88, 88, 88, 88, 88, 88, 96, 104,
                          112, 116, 124, 132, 136, 144, 152, 160, 164, 172, 176, 176, 176, 176, 176, 176};
    for (int e = 0; e < 32; e++) assert_int_equal(progressive_resizing_size(&o, 176, e / 32.0), want[e]);
}

/* Nearest downscaling as F.interpolate(scale_factor=w'/W, mode='nearest', recompute_scale_factor=False):
 * 10 -> 8 (factor 0.8, index floor(x * 1.25)), the batch shrinks, values copied. */
static void test_progressive_resizing_batch(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f);
    ProgressiveResizingOptions o = {.initial_scale = 0.8, .delay_fraction = 0.5, .finetune_fraction = 0.2,
                                    .size_increment = 2};
    f.tl.max_duration = (TimeSpec){.value = 10, .unit = TIME_EPOCH, .set = true};
    f.pg.epoch = 1; /* before the delay: scale 0.8 -> w' = round(10*0.8/2)*2 = 8 */
    void *self = calloc(1, PROGRESSIVE_RESIZING_IMPL.state_size);
    Error err;
    assert_int_equal(PROGRESSIVE_RESIZING_IMPL.run(self, &o, EVENT_AFTER_DATALOADER, &f.s, &err), 0);
    assert_int_equal(f.s.w, 8);
    assert_int_equal(f.s.h, (int)floor(8 * 0.8)); /* floor(H * factor) = 6 */
    const int src[8] = {0, 1, 2, 3, 5, 6, 7, 8}; /* floor(x * 1.25) */
    for (int i = 0; i < N; i++)
        for (int y = 0; y < f.s.h; y++)
            for (int x = 0; x < 8; x++) {
                int sy = (int)floorf(y * 1.25f);
                assert_true(f.images[(((size_t)i * f.s.h + y) * 8 + x) * C] ==
                            f.original[(((size_t)i * H + sy) * W + src[x]) * C]);
            }
    /* at the end of training: full size, untouched (round(10/2)*2 = 10; with size_increment 4 it would stay at
     * round(2.5)*4 = 8 forever, as in Composer) */
    fixture_init(&f);
    f.tl.max_duration = (TimeSpec){.value = 10, .unit = TIME_EPOCH, .set = true};
    f.pg.epoch = 9;
    assert_int_equal(PROGRESSIVE_RESIZING_IMPL.run(self, &o, EVENT_AFTER_DATALOADER, &f.s, &err), 0);
    assert_int_equal(f.s.w, W);
    assert_memory_equal(f.images, f.original, sizeof f.images);
    PROGRESSIVE_RESIZING_IMPL.destroy(self, &f.s);
    free(self);
}

/* Crop mode, as Composer's _make_crop: at factor 0.8 the 8 x 10 images become their 6 x 8 window at one
 * (top, left) for the whole batch, drawn uniformly from [0, H - 6) x [0, W - 8) (torch.randint(H - Hc)): over 64
 * batches every offset pair appears, and the last ones (top 2, left 2) never. */
static void test_progressive_resizing_crop(void **state) {
    (void)state;
    ProgressiveResizingOptions o = {.mode = PR_MODE_CROP, .initial_scale = 0.8, .delay_fraction = 0.5,
                                    .finetune_fraction = 0.2, .size_increment = 2};
    void *self = calloc(1, PROGRESSIVE_RESIZING_IMPL.state_size);
    Error err;
    int seen[3][3] = {{0}};
    for (int64_t batch = 0; batch < 64; batch++) {
        Fixture f;
        fixture_init(&f);
        f.tl.max_duration = (TimeSpec){.value = 10, .unit = TIME_EPOCH, .set = true};
        f.pg.epoch = 1;
        f.pg.batch = batch;
        assert_int_equal(PROGRESSIVE_RESIZING_IMPL.run(self, &o, EVENT_AFTER_DATALOADER, &f.s, &err), 0);
        assert_int_equal(f.s.w, 8);
        assert_int_equal(f.s.h, 6); /* int(0.8 * 8) */
        /* the fixture's pixel values are their indices: the first one gives the window's corner */
        int top = (int)f.images[0] / (W * C), left = (int)f.images[0] / C % W;
        assert_true(top < 2 && left < 2);
        seen[top][left]++;
        for (int i = 0; i < N; i++)
            for (int y = 0; y < 6; y++)
                for (int x = 0; x < 8; x++)
                    for (int c = 0; c < C; c++)
                        assert_true(f.images[(((size_t)i * 6 + y) * 8 + x) * C + c] ==
                                    f.original[(((size_t)i * H + top + y) * W + left + x) * C + c]);
    }
    for (int t = 0; t < 2; t++)
        for (int l = 0; l < 2; l++) assert_true(seen[t][l] > 0);
    PROGRESSIVE_RESIZING_IMPL.destroy(self, NULL);
    free(self);
}

/* EMA with half_life 4ba, update_interval 2ba: smoothing 2^-0.5 per update at batches 2, 4, 6; weights and BN
 * buffers averaged; evaluation sees the averages and training gets its weights back. */
static void test_ema(void **state) {
    (void)state;
    Error err;
    Backend *be;
    assert_int_equal(backend_create("ref", 1, &be, &err), 0);
    ResnetOptions ro = {.model_name = "resnet8", .num_classes = 3, .groups = 1, .width_per_group = 64, .width = 4};
    Model m;
    assert_int_equal(resnet_build(&ro, 1, &m, &err), 0);
    assert_int_equal(model_alloc(&m, be, &err), 0);
    Fixture f;
    fixture_init(&f);
    f.s.be = be;
    f.s.model = &m;
    EmaOptions o = {.half_life = {4, TIME_BATCH, true}, .update_interval = {2, TIME_BATCH, true}};
    double sm = pow(2.0, -0.5);
    assert_true(fabs(ema_smoothing(&o) - sm) < 1e-15);
    void *self = calloc(1, EMA_IMPL.state_size);
    double want = 0, want_buf = 0;
    bool first = true;
    for (int b = 1; b <= 6; b++) {
        /* the "training" weights at batch b: every weight b, every buffer 10 b */
        for (int64_t i = 0; i < m.n_weights; i++) m.weights[i] = (float)b;
        for (int64_t i = 0; i < m.n_buffers; i++) m.buffers[i] = (float)(10 * b);
        f.pg.batch = b;
        assert_int_equal(EMA_IMPL.run(self, &o, EVENT_BATCH_END, &f.s, &err), 0);
        if (b % 2 == 0) {
            want = first ? b : sm * want + (1 - sm) * b;
            want_buf = first ? 10 * b : sm * want_buf + (1 - sm) * 10 * b;
            first = false;
        }
    }
    float *train_w = m.weights;
    assert_int_equal(EMA_IMPL.run(self, &o, EVENT_EVAL_START, &f.s, &err), 0);
    assert_true(m.weights != train_w);
    assert_true(fabs(m.weights[0] - want) < 1e-5 && fabs(m.weights[m.n_weights - 1] - want) < 1e-5);
    assert_true(fabs(m.buffers[0] - want_buf) < 1e-4);
    assert_int_equal(EMA_IMPL.run(self, &o, EVENT_EVAL_END, &f.s, &err), 0);
    assert_true(m.weights == train_w && m.weights[0] == 6.0f);
    EMA_IMPL.destroy(self, &f.s);
    free(self);
    model_free(&m);
    backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_order_rule),
        cmocka_unit_test(test_label_smoothing),
        cmocka_unit_test(test_mixup),
        cmocka_unit_test(test_cutmix),
        cmocka_unit_test(test_colout),
        cmocka_unit_test(test_progressive_resizing_sizes),
        cmocka_unit_test(test_progressive_resizing_batch),
        cmocka_unit_test(test_progressive_resizing_crop),
        cmocka_unit_test(test_ema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
