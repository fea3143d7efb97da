/* test_randaugment.c — src/data/randaugment.c: every op against Pillow's output at fixed magnitudes
 * (tests/fixtures/randaugment_pil.safetensors, written by tools/make_randaugment_fixtures.py), and the sampler:
 * determinism for a given stream, depth 0, uniform op choice, and the magnitude ranges Composer 0.9 draws. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "data/randaugment.h"
#include "io/safetensors.h"
#include "testutil.h"

static const char *const IMAGES[] = {"cat", "synth", "sq"};
#define N_IMAGES 3

typedef struct OpCase {
    const char *name; /* fixture name */
    int op;           /* RaOp */
} OpCase;

static const OpCase OPS[] = {
    {"autocontrast", RA_OP_AUTOCONTRAST}, {"equalize", RA_OP_EQUALIZE},   {"posterize", RA_OP_POSTERIZE},
    {"solarize", RA_OP_SOLARIZE},         {"color", RA_OP_COLOR},         {"contrast", RA_OP_CONTRAST},
    {"brightness", RA_OP_BRIGHTNESS},     {"rotate", RA_OP_ROTATE},       {"shear_x", RA_OP_SHEAR_X},
    {"shear_y", RA_OP_SHEAR_Y},           {"translate_x", RA_OP_TRANSLATE_X}, {"translate_y", RA_OP_TRANSLATE_Y},
    {"sharpness", RA_OP_SHARPNESS},
};
#define N_OPS ((int)(sizeof OPS / sizeof OPS[0]))

static SafeTensors *open_fixture(void) {
    SafeTensors *st = NULL;
    Error err = {0};
    int rc = st_open(tu_fixture("randaugment_pil.safetensors"), &st, &err);
    if (rc) print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    return st;
}

static const StTensor *get(const SafeTensors *st, const char *name) {
    const StTensor *t = st_get(st, name);
    if (!t) print_error("fixture tensor %s missing\n", name);
    assert_non_null(t);
    return t;
}

/* Applies one fixture op to every image at every magnitude and compares with Pillow: counts values that differ
 * and that differ by more than 1, and the largest difference, and prints them. */
static void check_op(const SafeTensors *st, const OpCase *oc) {
    char name[128];
    snprintf(name, sizeof name, "mag/%s", oc->name);
    const StTensor *mags = get(st, name);
    assert_int_equal(mags->dtype, ST_F64);
    long total = 0, differ = 0, over1 = 0;
    int maxdiff = 0;
    for (int k = 0; k < N_IMAGES; k++) {
        snprintf(name, sizeof name, "in/%s", IMAGES[k]);
        const StTensor *in = get(st, name);
        assert_int_equal(in->dtype, ST_U8);
        assert_int_equal(in->ndim, 3);
        assert_int_equal(in->shape[2], 3);
        int h = (int)in->shape[0], w = (int)in->shape[1];
        size_t n = (size_t)h * (size_t)w * 3;
        uint8_t *img = malloc(n), *scratch = malloc(randaugment_scratch_bytes(h, w));
        assert_non_null(img);
        assert_non_null(scratch);
        for (int64_t i = 0; i < mags->numel; i++) {
            double m;
            memcpy(&m, (const char *)mags->data + i * 8, 8);
            snprintf(name, sizeof name, "out/%s/%s/%d", IMAGES[k], oc->name, (int)i);
            const StTensor *ref = get(st, name);
            assert_int_equal(ref->numel, (int64_t)n);
            memcpy(img, in->data, n);
            randaugment_apply_step(img, h, w, (RaStep){oc->op, m}, scratch);
            const uint8_t *r = ref->data;
            long d_here = 0;
            for (size_t j = 0; j < n; j++) {
                int d = abs((int)img[j] - (int)r[j]);
                if (d) {
                    if (!d_here)
                        print_message("  %s %s m=%g: first difference at [%zu, %zu, %zu]: %d vs Pillow %d\n",
                                      oc->name, IMAGES[k], m, j / 3 / (size_t)w, j / 3 % (size_t)w, j % 3,
                                      img[j], r[j]);
                    d_here++;
                    differ++;
                }
                if (d > 1) over1++;
                if (d > maxdiff) maxdiff = d;
            }
            total += (long)n;
        }
        free(img);
        free(scratch);
    }
    print_message("%-12s vs Pillow %s: %ld values, %ld differ, %ld by more than 1, max |diff| %d\n", oc->name,
                  st_metadata(st, "pillow") ? st_metadata(st, "pillow") : "?", total, differ, over1, maxdiff);
    /* Every op reproduces Pillow's arithmetic, so every op must match bit for bit. For the resampling ops
     * (rotate, shear, translate, sharpness) this is stricter than "|diff| <= 1 on 99% of values", which would
     * miss real bugs: a half-pixel error in the out-of-image test changes only ~0.2% of values. */
    assert_true((double)(total - over1) >= 0.99 * (double)total);
    assert_int_equal(differ, 0);
}

static void test_ops_against_pillow(void **state) {
    (void)state;
    SafeTensors *st = open_fixture();
    for (int i = 0; i < N_OPS; i++) check_op(st, &OPS[i]);
    st_close(st);
}

/* The named per-op functions agree with randaugment_apply_step (which the fixture test goes through). */
static void test_named_ops_match_steps(void **state) {
    (void)state;
    enum { H = 23, W = 31 };
    uint8_t src[H * W * 3], a[H * W * 3], b[H * W * 3], scratch[H * W * 3];
    Rng r;
    rng_init(&r, 5, RNG_SYNTHETIC, 0, 0);
    for (int i = 0; i < H * W * 3; i++) src[i] = (uint8_t)(rng_u32(&r) >> 24);
    for (int op = 0; op < RA_OP_COUNT; op++) {
        double m = op == RA_OP_POSTERIZE ? 3 : op == RA_OP_SOLARIZE ? 100 : op == RA_OP_ROTATE ? -17
                   : op == RA_OP_SHEAR_X || op == RA_OP_SHEAR_Y ? 0.2 : op >= RA_OP_COLOR ? 1.6 : 4;
        memcpy(a, src, sizeof a);
        memcpy(b, src, sizeof b);
        randaugment_apply_step(a, H, W, (RaStep){op, m}, scratch);
        switch (op) {
        case RA_OP_AUTOCONTRAST: ra_autocontrast(b, H, W); break;
        case RA_OP_EQUALIZE: ra_equalize(b, H, W); break;
        case RA_OP_POSTERIZE: ra_posterize(b, H, W, 3); break;
        case RA_OP_ROTATE: ra_rotate(b, H, W, m, scratch); break;
        case RA_OP_SOLARIZE: ra_solarize(b, H, W, 100); break;
        case RA_OP_SHEAR_X: ra_shear_x(b, H, W, m, scratch); break;
        case RA_OP_SHEAR_Y: ra_shear_y(b, H, W, m, scratch); break;
        case RA_OP_TRANSLATE_X: ra_translate_x(b, H, W, m, scratch); break;
        case RA_OP_TRANSLATE_Y: ra_translate_y(b, H, W, m, scratch); break;
        case RA_OP_COLOR: ra_color(b, H, W, m); break;
        case RA_OP_CONTRAST: ra_contrast(b, H, W, m); break;
        case RA_OP_BRIGHTNESS: ra_brightness(b, H, W, m); break;
        case RA_OP_SHARPNESS: ra_sharpness(b, H, W, m, scratch); break;
        }
        assert_memory_equal(a, b, sizeof a);
    }
    /* identities: factor 1, rotate 0 and 360, translate 0, posterize 8 */
    const RaStep ident[] = {{RA_OP_COLOR, 1}, {RA_OP_CONTRAST, 1}, {RA_OP_BRIGHTNESS, 1}, {RA_OP_SHARPNESS, 1},
                            {RA_OP_ROTATE, 0}, {RA_OP_ROTATE, 360}, {RA_OP_TRANSLATE_X, 0}, {RA_OP_SHEAR_Y, 0},
                            {RA_OP_POSTERIZE, 8}, {RA_OP_SOLARIZE, 256}};
    for (size_t i = 0; i < sizeof ident / sizeof ident[0]; i++) {
        memcpy(a, src, sizeof a);
        randaugment_apply_step(a, H, W, ident[i], scratch);
        assert_memory_equal(a, src, sizeof a);
    }
    /* tiny images: nothing breaks, sharpness leaves images under 3x3 alone */
    uint8_t t[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, t0[12];
    memcpy(t0, t, sizeof t);
    ra_sharpness(t, 2, 2, 5.0, scratch);
    assert_memory_equal(t, t0, sizeof t);
    for (int op = 0; op < RA_OP_COUNT; op++) randaugment_apply_step(t, 2, 2, (RaStep){op, 1.5}, scratch);
    randaugment_apply_step(t, 1, 1, (RaStep){RA_OP_ROTATE, 13}, scratch);
    assert_int_equal(randaugment_scratch_bytes(29, 37), 29 * 37 * 3);
}

static void fill_random(uint8_t *img, size_t n, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, RNG_SYNTHETIC, 1, 2);
    for (size_t i = 0; i < n; i++) img[i] = (uint8_t)(rng_u32(&r) >> 24);
}

static void test_apply_deterministic(void **state) {
    (void)state;
    enum { H = 40, W = 48, N = H * W * 3 };
    static uint8_t src[N], a[N], b[N], scratch[N];
    fill_random(src, N, 99);
    int differing = 0;
    for (int set = RA_SET_ALL; set <= RA_SET_ORIGINAL; set++)
        for (uint64_t sample = 0; sample < 40; sample++) {
            Rng r1, r2;
            rng_init(&r1, 1234, RNG_AUGMENT, 3, sample);
            rng_init(&r2, 1234, RNG_AUGMENT, 3, sample);
            memcpy(a, src, N);
            memcpy(b, src, N);
            randaugment_apply(a, H, W, 2, 9, set, &r1, scratch);
            randaugment_apply(b, H, W, 2, 9, set, &r2, scratch);
            assert_memory_equal(a, b, N);
            /* the same stream gives the same draws */
            rng_init(&r1, 1234, RNG_AUGMENT, 3, sample);
            rng_init(&r2, 1234, RNG_AUGMENT, 3, sample);
            RaStep s1 = randaugment_draw(set, 9, H, W, &r1), s2 = randaugment_draw(set, 9, H, W, &r2);
            assert_int_equal(s1.op, s2.op);
            assert_true(s1.magnitude == s2.magnitude);
            if (memcmp(a, src, N)) differing++;
        }
    /* the ops nearly always change a noise image (a rotate/translate of 0 or factor ~1 may not) */
    assert_true(differing > 100);
}

static void test_depth0_unchanged(void **state) {
    (void)state;
    enum { H = 17, W = 19, N = H * W * 3 };
    uint8_t src[N], a[N], scratch[N];
    fill_random(src, N, 7);
    memcpy(a, src, N);
    Rng r;
    rng_init(&r, 1, RNG_AUGMENT, 0, 0);
    randaugment_apply(a, H, W, 0, 9, RA_SET_ALL, &r, scratch);
    assert_memory_equal(a, src, N);
    randaugment_apply(a, H, W, -1, 9, RA_SET_ALL, &r, scratch);
    assert_memory_equal(a, src, N);
}

/* Each op of the set is chosen about equally often; magnitudes stay in Composer's ranges. */
static void test_op_frequencies_and_ranges(void **state) {
    (void)state;
    enum { DRAWS = 130000, H = 176, W = 160 };
    const int sets[3] = {RA_SET_ALL, RA_SET_SAFE, RA_SET_ORIGINAL};
    for (int si = 0; si < 3; si++) {
        int set = sets[si], nops = set == RA_SET_SAFE ? RA_OP_SAFE_COUNT : RA_OP_COUNT;
        long count[RA_OP_COUNT] = {0}, neg[RA_OP_COUNT] = {0}, above1 = 0, enh = 0;
        double mn[RA_OP_COUNT], mx[RA_OP_COUNT];
        for (int i = 0; i < RA_OP_COUNT; i++) {
            mn[i] = INFINITY;
            mx[i] = -INFINITY;
        }
        Rng r;
        rng_init(&r, 42, RNG_AUGMENT, (uint64_t)set, 0);
        for (int i = 0; i < DRAWS; i++) {
            RaStep s = randaugment_draw(set, 9, H, W, &r);
            assert_true(s.op >= 0 && s.op < nops);
            count[s.op]++;
            if (s.magnitude < 0) neg[s.op]++;
            double am = fabs(s.magnitude);
            if (am < mn[s.op]) mn[s.op] = am;
            if (am > mx[s.op]) mx[s.op] = am;
            if (s.op >= RA_OP_COLOR && s.op != RA_OP_BRIGHTNESS) {
                enh++;
                above1 += s.magnitude > 1;
            }
            if (s.op == RA_OP_POSTERIZE || s.op == RA_OP_SOLARIZE || s.op == RA_OP_ROTATE ||
                s.op == RA_OP_TRANSLATE_X || s.op == RA_OP_TRANSLATE_Y)
                assert_true(s.magnitude == floor(s.magnitude)); /* integer magnitudes */
        }
        double expect = (double)DRAWS / nops;
        for (int op = 0; op < nops; op++) {
            /* sd = sqrt(n p (1-p)) ~ 96-104: a 5% band is about 5 sd */
            assert_true(fabs((double)count[op] - expect) < 0.05 * expect);
        }
        /* severity 9: level ~ U(0.1, 9) */
        assert_true(mn[RA_OP_POSTERIZE] >= 1 && mx[RA_OP_POSTERIZE] <= 4);    /* 4 - int(level*0.4) */
        assert_true(mn[RA_OP_SOLARIZE] >= 26 && mx[RA_OP_SOLARIZE] <= 254);   /* 256 - int(level*25.6) */
        assert_true(mx[RA_OP_ROTATE] <= 26 && mx[RA_OP_ROTATE] >= 25);        /* int(level*3) */
        assert_true(mx[RA_OP_SHEAR_X] < 0.27 && mn[RA_OP_SHEAR_X] >= 0.003 - 1e-12);
        assert_true(mx[RA_OP_TRANSLATE_X] <= (int)(9 * (W / 3.0) / 10) && mx[RA_OP_TRANSLATE_X] >= 46);
        assert_true(mx[RA_OP_TRANSLATE_Y] <= (int)(9 * (H / 3.0) / 10) && mx[RA_OP_TRANSLATE_Y] >= 51);
        for (int op = RA_OP_ROTATE; op <= RA_OP_TRANSLATE_Y; op++) {
            if (op == RA_OP_SOLARIZE) continue;
            /* the sign flips with probability 1/2 (zero magnitudes count as positive) */
            assert_true(fabs((double)neg[op] / (double)count[op] - 0.5) < 0.05);
        }
        if (set == RA_SET_ALL) {
            /* symmetric sample: U(1, 9) or U(0.19, 1), each half the time; brightness above 1 scaled by 0.75 */
            for (int op = RA_OP_COLOR; op <= RA_OP_SHARPNESS; op++) {
                assert_true(mn[op] >= 0.19 - 1e-12);
                assert_true(mx[op] <= (op == RA_OP_BRIGHTNESS ? 6.75 : 9.0));
                assert_true(mx[op] >= (op == RA_OP_BRIGHTNESS ? 6.6 : 8.8));
            }
            assert_true(fabs((double)above1 / (double)enh - 0.5) < 0.02);
        } else if (set == RA_SET_ORIGINAL) {
            /* level * 0.18 + 0.1 with level ~ U(0.1, 9): [0.118, 1.72) */
            for (int op = RA_OP_COLOR; op <= RA_OP_SHARPNESS; op++) {
                assert_true(mn[op] >= 0.118 - 1e-12 && mn[op] < 0.13);
                assert_true(mx[op] < 1.72 && mx[op] > 1.7);
            }
        } else {
            for (int op = RA_OP_SAFE_COUNT; op < RA_OP_COUNT; op++) assert_int_equal(count[op], 0);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_against_pillow),
        cmocka_unit_test(test_named_ops_match_steps),
        cmocka_unit_test(test_apply_deterministic),
        cmocka_unit_test(test_depth0_unchanged),
        cmocka_unit_test(test_op_frequencies_and_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
