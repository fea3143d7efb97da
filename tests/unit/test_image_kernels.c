/* test_image_kernels.c — the data loader's image kernels: INTER_AREA resizing (src/data/resize.c) against a
 * direct 2-D reference on many shapes and against OpenCV's own output (tests/fixtures/resize_area.safetensors,
 * written by tools/make_resize_fixtures.py), and JPEG decode/encode (src/data/jpeg.c): round trips, headers of
 * the shared photos, DCT-scaled decodes, crop decodes (identical to full ones), jpeg_pick_denom, corrupt and
 * truncated streams, gray images. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "core/fsutil.h"
#include "core/rng.h"
#include "data/jpeg.h"
#include "data/resize.h"
#include "io/safetensors.h"
#include "testutil.h"

/* ------------------------------------------------------------------------------------------------------------
 * Resize: the slow reference. Each output pixel is computed on its own, in double precision, from the
 * definition: shrinking on both axes, the average of the source over the output cell
 * [dx*sx, (dx+1)*sx) x [dy*sy, (dy+1)*sy) (pixel overlaps of at most 1e-3 px ignored, the cell clipped to the
 * window: OpenCV's rules); otherwise OpenCV's bilinear emulation with weights fx = frac((dx+1) - (sx0+1)/sx).
 * ref [dh, dw, c] gets the real values before rounding. */
enum { PATH_COPY, PATH_AREA, PATH_AREA_INT, PATH_GROW };

static int ref_resize(const uint8_t *src, size_t stride, int c, int y0, int x0, int wh, int ww, int dh, int dw,
                      double *ref) {
    const uint8_t *s = src + (size_t)y0 * stride + (size_t)x0 * c;
    double inv_x = (double)dw / ww, inv_y = (double)dh / wh, sx = 1. / inv_x, sy = 1. / inv_y;
    if (ww == dw && wh == dh) {
        for (int y = 0; y < dh; y++)
            for (int i = 0; i < dw * c; i++) ref[(size_t)y * dw * c + i] = s[(size_t)y * stride + i];
        return PATH_COPY;
    }
    if (sx >= 1 && sy >= 1) {
        for (int dy = 0; dy < dh; dy++) {
            double fy1 = dy * sy, fy2 = fy1 + sy, cell_h = fmin(sy, wh - fy1);
            for (int dx = 0; dx < dw; dx++) {
                double fx1 = dx * sx, fx2 = fx1 + sx, cell_w = fmin(sx, ww - fx1);
                for (int ch = 0; ch < c; ch++) {
                    double acc = 0;
                    for (int y = (int)floor(fy1); y < wh && y < fy2; y++) {
                        double oy = fmin(y + 1, fy2) - fmax(y, fy1);
                        if (oy <= 1e-3) continue;
                        for (int x = (int)floor(fx1); x < ww && x < fx2; x++) {
                            double ox = fmin(x + 1, fx2) - fmax(x, fx1);
                            if (ox <= 1e-3) continue;
                            acc += oy * ox * s[(size_t)y * stride + (size_t)x * c + ch];
                        }
                    }
                    ref[((size_t)dy * dw + dx) * c + ch] = acc / (cell_w * cell_h);
                }
            }
        }
        bool integer = ww % dw == 0 && wh % dh == 0;
        return integer ? PATH_AREA_INT : PATH_AREA;
    }
    for (int dy = 0; dy < dh; dy++) {
        int ya = (int)floor(dy * sy);
        float fy = (float)((dy + 1) - (ya + 1) * inv_y);
        fy = fy <= 0 ? 0.f : fy - floorf(fy);
        int yb = ya + 1 < wh ? ya + 1 : wh - 1;
        for (int dx = 0; dx < dw; dx++) {
            int xa = (int)floor(dx * sx);
            float fx = (float)((dx + 1) - (xa + 1) * inv_x);
            fx = fx <= 0 ? 0.f : fx - floorf(fx);
            if (xa >= ww - 1) {
                xa = ww - 1;
                fx = 0;
            }
            int xb = xa + 1 < ww ? xa + 1 : ww - 1;
            for (int ch = 0; ch < c; ch++) {
#define PX(y, x) ((double)s[(size_t)(y) * stride + (size_t)(x) * c + ch])
                double top = (1 - (double)fx) * PX(ya, xa) + fx * PX(ya, xb);
                double bot = (1 - (double)fx) * PX(yb, xa) + fx * PX(yb, xb);
                ref[((size_t)dy * dw + dx) * c + ch] = (1 - (double)fy) * top + fy * bot;
#undef PX
            }
        }
    }
    return PATH_GROW;
}

/* Tallies of fast-vs-reference agreement per path. */
typedef struct Tally {
    long n[4], exact[4], near_tie[4];
    double worst_real[4]; /* max |fast - real reference value| */
} Tally;

/* Resizes one window with resize_area (scratch and output sized exactly, so ASan sees overruns) and checks it
 * against the reference: area paths must equal the reference rounded half to even except within 0.01 of a
 * .5 tie (then 1 LSB); the grow path must be within 1 LSB of the real value. */
static void check_one(const uint8_t *img, int H, int W, int c, int y0, int x0, int wh, int ww, int dh, int dw,
                      Tally *t) {
    (void)H;
    size_t n = (size_t)dh * dw * c;
    uint8_t *got = malloc(n);
    double *ref = malloc(n * sizeof *ref);
    float *scratch = malloc(resize_scratch_floats(ww, dw, dh, c) * sizeof *scratch);
    assert_non_null(got);
    assert_non_null(ref);
    assert_non_null(scratch);
    resize_area(img, (size_t)W * c, c, y0, x0, wh, ww, got, dh, dw, scratch);
    int path = ref_resize(img, (size_t)W * c, c, y0, x0, wh, ww, dh, dw, ref);
    for (size_t i = 0; i < n; i++) {
        double r = ref[i];
        double rounded = fmin(255, fmax(0, nearbyint(r)));
        double d = fabs(got[i] - rounded), real = fabs(got[i] - r);
        bool near_tie = fabs(r - floor(r) - 0.5) < 0.01;
        t->n[path]++;
        t->exact[path] += d == 0;
        t->near_tie[path] += near_tie;
        if (real > t->worst_real[path]) t->worst_real[path] = real;
        bool ok = path == PATH_GROW ? d <= 1 && real < 1.0 : (d == 0 || (near_tie && d <= 1));
        if (!ok) {
            fprintf(stderr, "resize c=%d window (%d,%d %dx%d) -> %dx%d, element %zu: got %d, reference %.6f\n", c, y0,
                    x0, wh, ww, dh, dw, i, got[i], r);
            fail();
        }
    }
    free(got);
    free(ref);
    free(scratch);
}

/* Fills img [h, w, c]: uniform noise (smooth = false) or a smooth pattern. */
static void make_image(uint8_t *img, int h, int w, int c, bool smooth, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, RNG_SYNTHETIC, 0, 0);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) {
                double v = smooth ? 128 + 90 * sin(0.045 * x + 0.031 * y + ch) + 30 * cos(0.023 * x - 0.04 * y + 2 * ch)
                                  : 256 * rng_uniform(&r);
                img[((size_t)y * w + x) * c + ch] = (uint8_t)fmin(255, fmax(0, v));
            }
}

static void test_resize_vs_reference(void **state) {
    (void)state;
    enum { H = 61, W = 83 };
    static const int wins[] = {1, 2, 3, 7, 12, 24, 37, 59};
    static const int outs[] = {1, 2, 5, 6, 12, 17, 48};
    const int nw = (int)(sizeof wins / sizeof wins[0]), no = (int)(sizeof outs / sizeof outs[0]);
    uint8_t *img = malloc((size_t)H * W * 3);
    Tally t;
    memset(&t, 0, sizeof t);
    long cases = 0;
    for (int c = 1; c <= 3; c += 2)
        for (int smooth = 0; smooth < 2; smooth++) {
            make_image(img, H, W, c, smooth, 11 + (uint64_t)c + 7 * (uint64_t)smooth);
            for (int a = 0; a < nw; a++)
                for (int b = 0; b < nw; b++)
                    for (int p = 0; p < no; p++)
                        for (int q = 0; q < no; q++) {
                            int wh = wins[a], ww = wins[b] + (b & 1); /* some odd-sized, some even */
                            int y0 = (int)((cases * 7) % (H - wh + 1)), x0 = (int)((cases * 13) % (W - ww + 1));
                            check_one(img, H, W, c, y0, x0, wh, ww, outs[p], outs[q], &t);
                            cases++;
                        }
        }
    /* A few larger, FFCV-like shapes: RRC shrink and grow, center crop, writer downscale. */
    enum { BH = 375, BW = 500 };
    uint8_t *big = malloc((size_t)BH * BW * 3);
    make_image(big, BH, BW, 3, true, 99);
    static const int shapes[][6] = {{0, 0, 375, 500, 176, 176}, {30, 41, 211, 302, 176, 176}, {3, 5, 40, 37, 176, 176},
                                    {0, 62, 375, 375, 224, 224}, {0, 0, 375, 500, 281, 375}, {0, 0, 375, 500, 188, 250},
                                    {10, 0, 90, 500, 160, 160}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *s = shapes[i];
        check_one(big, BH, BW, 3, s[0], s[1], s[2], s[3], s[4], s[5], &t);
        cases++;
    }
    static const char *names[] = {"copy", "area", "area (integer factors)", "grow (bilinear emulation)"};
    for (int p = 0; p < 4; p++)
        printf("resize vs reference, %s: %ld pixels, %.4f%% exact, %ld within 0.01 of a tie, max |fast - real| %.4f\n",
               names[p], t.n[p], t.n[p] ? 100.0 * t.exact[p] / t.n[p] : 0, t.near_tie[p], t.worst_real[p]);
    printf("resize vs reference: %ld windows\n", cases);
    for (int p = 0; p < 4; p++) assert_true(t.n[p] > 0);
    assert_int_equal(t.exact[PATH_COPY], t.n[PATH_COPY]);
    free(img);
    free(big);
}

/* The resize reads nothing outside its window: a window surrounded by poison gives the same result as the
 * same pixels alone. */
static void test_resize_window_isolation(void **state) {
    (void)state;
    enum { H = 40, W = 50, C = 3, WH = 17, WW = 23, Y0 = 9, X0 = 14 };
    uint8_t *img = malloc((size_t)H * W * C), *alone = malloc((size_t)WH * WW * C);
    make_image(img, H, W, C, false, 5);
    for (int y = 0; y < WH; y++) memcpy(alone + (size_t)y * WW * C, img + ((size_t)(y + Y0) * W + X0) * C, (size_t)WW * C);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (y < Y0 || y >= Y0 + WH || x < X0 || x >= X0 + WW) memset(img + ((size_t)y * W + x) * C, 255, C);
    static const int outs[][2] = {{5, 7}, {17, 23}, {40, 9}, {8, 46}, {34, 46}, {1, 1}};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        int dh = outs[i][0], dw = outs[i][1];
        uint8_t *a = malloc((size_t)dh * dw * C), *b = malloc((size_t)dh * dw * C);
        float *scratch = malloc(resize_scratch_floats(WW, dw, dh, C) * sizeof *scratch);
        resize_area(img, (size_t)W * C, C, Y0, X0, WH, WW, a, dh, dw, scratch);
        resize_area(alone, (size_t)WW * C, C, 0, 0, WH, WW, b, dh, dw, scratch);
        assert_memory_equal(a, b, (size_t)dh * dw * C);
        free(a);
        free(b);
        free(scratch);
    }
    free(img);
    free(alone);
}

/* Against OpenCV 5's cv2.resize(INTER_AREA) output stored by tools/make_resize_fixtures.py. */
static void test_resize_vs_opencv(void **state) {
    (void)state;
    SafeTensors *st;
    Error err = {{0}};
    if (st_open(tu_fixture("resize_area.safetensors"), &st, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        fail();
    }
    const StTensor *cases = st_get(st, "cases");
    assert_non_null(cases);
    assert_int_equal(cases->dtype, ST_I32);
    assert_int_equal(cases->ndim, 2);
    assert_int_equal(cases->shape[1], 7);
    long total = 0, exact = 0;
    int worst = 0;
    for (int64_t i = 0; i < cases->shape[0]; i++) {
        int32_t cs[7];
        memcpy(cs, (const uint8_t *)cases->data + i * sizeof cs, sizeof cs);
        char name[32];
        snprintf(name, sizeof name, "src%d", cs[0]);
        const StTensor *src = st_get(st, name);
        snprintf(name, sizeof name, "out%d", (int)i);
        const StTensor *out = st_get(st, name);
        assert_non_null(src);
        assert_non_null(out);
        int H = (int)src->shape[0], W = (int)src->shape[1], c = (int)src->shape[2];
        int y0 = cs[1], x0 = cs[2], wh = cs[3], ww = cs[4], dh = cs[5], dw = cs[6];
        assert_true(y0 >= 0 && y0 + wh <= H && x0 >= 0 && x0 + ww <= W);
        assert_int_equal(out->shape[0], dh);
        assert_int_equal(out->shape[1], dw);
        size_t n = (size_t)dh * dw * c;
        uint8_t *img = malloc((size_t)H * W * c), *got = malloc(n);
        memcpy(img, src->data, (size_t)H * W * c);
        float *scratch = malloc(resize_scratch_floats(ww, dw, dh, c) * sizeof *scratch);
        resize_area(img, (size_t)W * c, c, y0, x0, wh, ww, got, dh, dw, scratch);
        const uint8_t *want = out->data;
        long ex = 0;
        for (size_t k = 0; k < n; k++) {
            int d = abs((int)got[k] - (int)want[k]);
            if (d > worst) worst = d;
            ex += d == 0;
        }
        if (ex != (long)n)
            printf("opencv case %d (%s, c=%d, window %d,%d %dx%d -> %dx%d): %ld of %zu exact\n", (int)i, name, c, y0,
                   x0, wh, ww, dh, dw, ex, n);
        total += (long)n;
        exact += ex;
        free(img);
        free(got);
        free(scratch);
    }
    const char *ver = st_metadata(st, "opencv");
    printf("resize vs OpenCV %s: %lld cases, %ld pixels, %.4f%% exact, max |diff| %d\n", ver ? ver : "?",
           (long long)cases->shape[0], total, 100.0 * exact / total, worst);
    assert_true(worst <= 1);
    /* resize.c follows OpenCV's arithmetic, so every fixture matches bit for bit; a change here means the
     * float operation order (or FMA contraction) changed. */
    assert_int_equal(exact, total);
    st_close(st);
}

/* ------------------------------------------------------------------------------------------------------------
 * JPEG */

static uint8_t *read_photo(const char *name, size_t *size) {
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/photos/%s", name);
    uint8_t *data;
    Error err = {{0}};
    if (fs_read_all(tu_shared(rel), &data, size, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        fail();
    }
    return data;
}

static double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (se / n));
}

static double mean_abs(const uint8_t *a, const uint8_t *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs((double)a[i] - b[i]);
    return s / n;
}

static void test_jpeg_round_trip(void **state) {
    (void)state;
    JpegCodec *jc = jpeg_codec_new();
    assert_non_null(jc);
    static const int sizes[][2] = {{97, 61}, {16, 16}, {1, 1}, {250, 3}, {640, 480}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        uint8_t *rgb = malloc((size_t)w * h * 3), *back = malloc((size_t)w * h * 3);
        make_image(rgb, h, w, 3, true, 3);
        uint8_t *jpg;
        size_t size;
        Error err = {{0}};
        assert_int_equal(jpeg_encode(jc, rgb, w, h, 90, &jpg, &size, &err), 0);
        assert_true(size > 4 && jpg[0] == 0xFF && jpg[1] == 0xD8 && jpg[size - 2] == 0xFF && jpg[size - 1] == 0xD9);
        int hw, hh;
        assert_int_equal(jpeg_header(jc, jpg, size, &hw, &hh, &err), 0);
        assert_int_equal(hw, w);
        assert_int_equal(hh, h);
        for (int fast = 0; fast < 2; fast++) {
            int dw, dh;
            assert_int_equal(jpeg_decode(jc, jpg, size, 1, 3, fast, back, (size_t)w * h * 3, &dw, &dh, &err), 0);
            assert_int_equal(dw, w);
            assert_int_equal(dh, h);
            double p = psnr(rgb, back, (size_t)w * h * 3);
            printf("jpeg q90 round trip %dx%d (%s IDCT): %zu bytes, PSNR %.2f dB\n", w, h, fast ? "fast" : "accurate",
                   size, p);
            if (w * h >= 256) assert_true(p > 35);
            else assert_true(p > 30); /* tiny images: chroma subsampling of a few pixels dominates */
        }
        free(jpg);
        free(rgb);
        free(back);
    }
    jpeg_codec_free(jc);
}

/* jpeg_encode writes the same bytes as OpenCV's imencode (what FFCV's writer calls), stored by
 * tools/make_resize_fixtures.py. Both are libjpeg-turbo with libjpeg's defaults; a mismatch here means the
 * library or its settings differ (the pixels after decoding are then compared, to say by how much). */
static void test_jpeg_encode_matches_opencv(void **state) {
    (void)state;
    SafeTensors *st;
    Error err = {{0}};
    assert_int_equal(st_open(tu_fixture("resize_area.safetensors"), &st, &err), 0);
    static const struct { const char *src, *enc; int q; } cases[] = {{"src0", "jpeg_src0_q90", 90}, {"src3", "jpeg_src3_q50", 50}};
    JpegCodec *jc = jpeg_codec_new();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const StTensor *src = st_get(st, cases[i].src), *enc = st_get(st, cases[i].enc);
        assert_non_null(src);
        assert_non_null(enc);
        int h = (int)src->shape[0], w = (int)src->shape[1];
        uint8_t *rgb = malloc((size_t)w * h * 3);
        memcpy(rgb, src->data, (size_t)w * h * 3);
        uint8_t *jpg;
        size_t size;
        assert_int_equal(jpeg_encode(jc, rgb, w, h, cases[i].q, &jpg, &size, &err), 0);
        bool same = size == (size_t)enc->numel && memcmp(jpg, enc->data, size) == 0;
        printf("jpeg_encode %dx%d q%d: %zu bytes, OpenCV %lld bytes, %s\n", w, h, cases[i].q, size,
               (long long)enc->numel, same ? "identical" : "DIFFERENT");
        if (!same) {
            uint8_t *a = malloc((size_t)w * h * 3), *b = malloc((size_t)w * h * 3);
            int dw, dh;
            assert_int_equal(jpeg_decode(jc, jpg, size, 1, 3, false, a, (size_t)w * h * 3, &dw, &dh, &err), 0);
            assert_int_equal(jpeg_decode(jc, enc->data, (size_t)enc->numel, 1, 3, false, b, (size_t)w * h * 3, &dw, &dh,
                                         &err), 0);
            printf("  decoded mean |ours - OpenCV| = %.4f\n", mean_abs(a, b, (size_t)w * h * 3));
            free(a);
            free(b);
        }
        assert_true(same);
        free(jpg);
        free(rgb);
    }
    jpeg_codec_free(jc);
    st_close(st);
}

static void test_jpeg_headers(void **state) {
    (void)state;
    static const struct { const char *name; int w, h; } photos[] = {
        {"astronaut.jpg", 512, 512}, {"camera_gray.jpg", 512, 512}, {"chelsea.jpg", 451, 300},
        {"coffee.jpg", 512, 341},    {"coins_gray.jpg", 384, 303},  {"grace_hopper.jpg", 437, 512},
        {"hubble_deep_field.jpg", 512, 446},
    };
    JpegCodec *jc = jpeg_codec_new();
    for (size_t i = 0; i < sizeof photos / sizeof photos[0]; i++) {
        size_t size;
        uint8_t *data = read_photo(photos[i].name, &size);
        int w, h;
        Error err = {{0}};
        assert_int_equal(jpeg_header(jc, data, size, &w, &h, &err), 0);
        assert_int_equal(w, photos[i].w);
        assert_int_equal(h, photos[i].h);
        free(data);
    }
    jpeg_codec_free(jc);
}

/* Scaled decodes have TJSCALED sizes and look like the full decode box-averaged over the same d x d blocks:
 * compared on the blocks that lie wholly inside the image (the last partial block is padded by the codec). */
static void test_jpeg_scaled(void **state) {
    (void)state;
    static const char *names[] = {"astronaut.jpg", "chelsea.jpg", "grace_hopper.jpg", "coins_gray.jpg"};
    JpegCodec *jc = jpeg_codec_new();
    double worst = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t size;
        uint8_t *data = read_photo(names[i], &size);
        int W, H, w, h;
        Error err = {{0}};
        assert_int_equal(jpeg_header(jc, data, size, &W, &H, &err), 0);
        size_t cap = (size_t)W * H * 3;
        uint8_t *full = malloc(cap), *scaled = malloc(cap), *ref = malloc(cap), *part = malloc(cap);
        for (int fast = 0; fast < 2; fast++) {
            assert_int_equal(jpeg_decode(jc, data, size, 1, 3, fast, full, cap, &w, &h, &err), 0);
            assert_int_equal(w, W);
            assert_int_equal(h, H);
            for (int d = 2; d <= 8; d *= 2) {
                assert_int_equal(jpeg_decode(jc, data, size, d, 3, fast, scaled, cap, &w, &h, &err), 0);
                assert_int_equal(w, (W + d - 1) / d);
                assert_int_equal(h, (H + d - 1) / d);
                int bw = W / d, bh = H / d;
                float *scratch = malloc(resize_scratch_floats(bw * d, bw, bh, 3) * sizeof *scratch);
                resize_area(full, (size_t)W * 3, 3, 0, 0, bh * d, bw * d, ref, bh, bw, scratch);
                free(scratch);
                for (int y = 0; y < bh; y++) memcpy(part + (size_t)y * bw * 3, scaled + (size_t)y * w * 3, (size_t)bw * 3);
                double m = mean_abs(part, ref, (size_t)bw * bh * 3);
                if (m > worst) worst = m;
                printf("jpeg %s 1/%d (%s IDCT): %dx%d, mean |scaled - box average of full| = %.3f\n", names[i], d,
                       fast ? "fast" : "accurate", w, h, m);
                assert_true(m < 2.0); /* measured at most 1.07 (grace_hopper, fast IDCT, 1/4) */
            }
        }
        /* A buffer one byte short is an error, not an overrun; so are unsupported scales and channel counts. */
        int d = 4;
        size_t need = (size_t)((W + d - 1) / d) * ((H + d - 1) / d) * 3;
        assert_int_equal(jpeg_decode(jc, data, size, d, 3, true, scaled, need - 1, &w, &h, &err), -1);
        assert_non_null(strstr(err.msg, "needs"));
        assert_int_equal(jpeg_decode(jc, data, size, d, 3, true, scaled, need, &w, &h, &err), 0);
        assert_int_equal(jpeg_decode(jc, data, size, 3, 3, true, scaled, cap, &w, &h, &err), -1);
        assert_int_equal(jpeg_decode(jc, data, size, 1, 2, true, scaled, cap, &w, &h, &err), -1);
        free(full);
        free(scaled);
        free(ref);
        free(part);
        free(data);
    }
    printf("jpeg scaled decodes: worst mean |diff| %.3f\n", worst);
    jpeg_codec_free(jc);
}

/* jpeg_decode_crop gives exactly the pixels of a full decode, for every scale, channel count and IDCT, on
 * 4:2:0 color (fancy upsampling at the crop edges), odd sizes and gray JPEGs; its buffer bound holds. */
static void test_jpeg_crop_exact(void **state) {
    (void)state;
    static const char *names[] = {"astronaut.jpg", "chelsea.jpg", "camera_gray.jpg", "coffee.jpg"};
    JpegCodec *jc = jpeg_codec_new();
    Rng r;
    rng_init(&r, 2024, RNG_SYNTHETIC, 0, 0);
    long crops = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t size;
        uint8_t *data = read_photo(names[i], &size);
        int W, H;
        Error err = {{0}};
        assert_int_equal(jpeg_header(jc, data, size, &W, &H, &err), 0);
        uint8_t *full = malloc((size_t)W * H * 3);
        for (int d = 1; d <= 8; d *= 2)
            for (int channels = 1; channels <= 3; channels += 2)
                for (int fast = 0; fast < 2; fast++) {
                    int w, h;
                    assert_int_equal(jpeg_decode(jc, data, size, d, channels, fast, full, (size_t)W * H * 3, &w, &h, &err), 0);
                    for (int t = 0; t < 12; t++) {
                        int cw = 1 + (int)(rng_uniform(&r) * w), ch = 1 + (int)(rng_uniform(&r) * h);
                        if (t == 0) cw = w, ch = h; /* the whole image */
                        if (t == 1) cw = 1, ch = 1;
                        int x0 = (int)(rng_uniform(&r) * (w - cw + 1)), y0 = (int)(rng_uniform(&r) * (h - ch + 1));
                        size_t cap = (size_t)(cw + 64) * ch * channels;
                        uint8_t *out = malloc(cap);
                        int ox = -1, ow = -1;
                        if (jpeg_decode_crop(jc, data, size, d, channels, fast, x0, y0, cw, ch, out, cap, &ox, &ow, &err)) {
                            fprintf(stderr, "%s\n", err.msg);
                            fail();
                        }
                        assert_true(ox >= 0 && ox <= x0 && ox + ow >= x0 + cw && ox + ow <= w);
                        for (int y = 0; y < ch; y++)
                            if (memcmp(out + ((size_t)y * ow + (x0 - ox)) * channels,
                                       full + ((size_t)(y0 + y) * w + x0) * channels, (size_t)cw * channels)) {
                                fprintf(stderr, "%s 1/%d c=%d fast=%d crop %dx%d at (%d,%d): row %d differs\n", names[i], d,
                                        channels, fast, cw, ch, x0, y0, y);
                                fail();
                            }
                        free(out);
                        crops++;
                    }
                }
        /* Outside the image, or a buffer too small: errors. */
        uint8_t small[64];
        int ox, ow;
        assert_int_equal(jpeg_decode_crop(jc, data, size, 1, 3, true, W - 10, 0, 11, 1, small, sizeof small, &ox, &ow, &err), -1);
        assert_int_equal(jpeg_decode_crop(jc, data, size, 2, 3, true, 0, 0, 10, 10, small, sizeof small, &ox, &ow, &err), -1);
        assert_non_null(strstr(err.msg, "needs"));
        assert_int_equal(jpeg_decode_crop(jc, data, size, 5, 3, true, 0, 0, 1, 1, small, sizeof small, &ox, &ow, &err), -1);
        /* Cut in half: a crop reaching the lost rows is an error (and the codec stays usable). */
        assert_int_equal(jpeg_decode_crop(jc, data, size / 2, 1, 3, true, 0, H - 8, 8, 8, full, (size_t)W * H * 3, &ox,
                                          &ow, &err), -1);
        assert_non_null(strstr(err.msg, "corrupt JPEG"));
        assert_int_equal(jpeg_decode_crop(jc, data, size, 1, 3, true, 0, H - 8, 8, 8, full, (size_t)W * H * 3, &ox, &ow,
                                          &err), 0);
        free(full);
        free(data);
    }
    printf("jpeg crop decodes: %ld crops identical to the full decode\n", crops);
    jpeg_codec_free(jc);
}

static void test_jpeg_pick_denom(void **state) {
    (void)state;
    assert_int_equal(jpeg_pick_denom(500, 375, 176, 176), 2);
    assert_int_equal(jpeg_pick_denom(352, 352, 176, 176), 2);
    assert_int_equal(jpeg_pick_denom(351, 352, 176, 176), 1);
    assert_int_equal(jpeg_pick_denom(704, 704, 176, 176), 4);
    assert_int_equal(jpeg_pick_denom(1408, 1408, 176, 176), 8);
    assert_int_equal(jpeg_pick_denom(100000, 100000, 1, 1), 8);
    assert_int_equal(jpeg_pick_denom(176, 176, 176, 176), 1);
    assert_int_equal(jpeg_pick_denom(40, 37, 176, 176), 1); /* growing: no reduction */
    assert_int_equal(jpeg_pick_denom(900, 300, 224, 224), 1);
    assert_int_equal(jpeg_pick_denom(900, 450, 224, 224), 2);
    assert_int_equal(jpeg_pick_denom(1800, 1000, 224, 224), 4);
}

/* Decodes data; returns 0/-1 and checks that a failure left a one-line message. */
static int try_decode(JpegCodec *jc, const uint8_t *data, size_t size, uint8_t *out, size_t cap) {
    Error err = {{0}};
    int w, h;
    int rc = jpeg_decode(jc, data, size, 1, 3, true, out, cap, &w, &h, &err);
    if (rc) {
        assert_true(err.msg[0] != 0);
        assert_null(strchr(err.msg, '\n'));
    }
    return rc;
}

static void test_jpeg_corrupt(void **state) {
    (void)state;
    JpegCodec *jc = jpeg_codec_new();
    size_t size;
    uint8_t *data = read_photo("chelsea.jpg", &size);
    size_t cap = 451 * 300 * 3;
    uint8_t *out = malloc(cap);
    Error err = {{0}};
    int w, h;
    assert_int_equal(try_decode(jc, data, size, out, cap), 0);
    /* Truncated anywhere: an error, never a crash. */
    static const double cuts[] = {0.0, 0.001, 0.01, 0.1, 0.3, 0.5, 0.9, 0.99};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        size_t n = (size_t)(cuts[i] * size);
        uint8_t *t = malloc(n ? n : 1);
        memcpy(t, data, n);
        assert_int_equal(try_decode(jc, t, n, out, cap), -1);
        free(t);
    }
    assert_int_equal(jpeg_decode(jc, data, size / 2, 1, 3, true, out, cap, &w, &h, &err), -1);
    printf("truncated JPEG: %s\n", err.msg);
    assert_int_equal(jpeg_header(jc, data, 1, &w, &h, &err), -1);
    /* Not a JPEG at all. */
    uint8_t junk[4096];
    Rng r;
    rng_init(&r, 77, RNG_SYNTHETIC, 0, 0);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(256 * rng_uniform(&r));
    assert_int_equal(try_decode(jc, junk, sizeof junk, out, cap), -1);
    /* An EOI marker in the middle of the entropy-coded data: the rest of the image is missing. */
    uint8_t *t = malloc(size);
    memcpy(t, data, size);
    t[size / 2] = 0xFF;
    t[size / 2 + 1] = 0xD9;
    assert_int_equal(jpeg_decode(jc, t, size, 1, 3, true, out, cap, &w, &h, &err), -1);
    printf("JPEG with EOI in the middle: %s\n", err.msg);
    /* Random bytes in the entropy-coded data: Huffman data has little redundancy, so most such damage decodes
     * to a complete (wrong-looking) image; either outcome is fine, a crash or overrun is not (ASan watches). */
    int errors = 0;
    for (int trial = 0; trial < 40; trial++) {
        memcpy(t, data, size);
        for (int k = 0; k < 8; k++) {
            size_t at = size / 4 + (size_t)(rng_uniform(&r) * (double)(size / 2));
            t[at] = (uint8_t)(256 * rng_uniform(&r));
        }
        errors += try_decode(jc, t, size, out, cap) != 0;
    }
    printf("JPEG with 8 random bytes replaced: %d of 40 decodes reported corruption\n", errors);
    free(t);
    /* Junk between two header segments makes libjpeg warn ("Corrupt JPEG data: 3 extraneous bytes before
     * marker 0xdb") but the image is whole: it decodes, to the same pixels. */
    assert_true(data[2] == 0xFF && data[3] == 0xE0);
    size_t at = 4 + (size_t)(data[4] << 8 | data[5]); /* the marker after APP0 */
    uint8_t *x = malloc(size + 3);
    memcpy(x, data, at);
    memcpy(x + at, "\x01\x02\x03", 3);
    memcpy(x + at + 3, data + at, size - at);
    uint8_t *ref = malloc(cap);
    assert_int_equal(try_decode(jc, data, size, ref, cap), 0);
    assert_int_equal(try_decode(jc, x, size + 3, out, cap), 0);
    assert_memory_equal(out, ref, cap);
    /* The same stream cut short: TurboJPEG shows only the first (harmless) warning, the truncation must still
     * be found. */
    assert_int_equal(jpeg_decode(jc, x, (size + 3) * 6 / 10, 1, 3, true, out, cap, &w, &h, &err), -1);
    assert_non_null(strstr(err.msg, "Premature end"));
    int ox, ow;
    assert_int_equal(jpeg_decode_crop(jc, x, size + 3, 1, 3, true, 10, 20, 30, 40, out, cap, &ox, &ow, &err), 0);
    assert_int_equal(jpeg_decode_crop(jc, junk, sizeof junk, 1, 3, true, 0, 0, 1, 1, out, cap, &ox, &ow, &err), -1);
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) /* truncated, whole-image crop */
        assert_int_equal(jpeg_decode_crop(jc, data, (size_t)(cuts[i] * size), 1, 3, true, 0, 0, 451, 300, out, cap, &ox,
                                          &ow, &err), -1);
    free(x);
    free(ref);
    free(out);
    free(data);
    jpeg_codec_free(jc);
}

static void test_jpeg_gray(void **state) {
    (void)state;
    JpegCodec *jc = jpeg_codec_new();
    size_t size;
    uint8_t *data = read_photo("camera_gray.jpg", &size);
    int W, H, w, h;
    Error err = {{0}};
    assert_int_equal(jpeg_header(jc, data, size, &W, &H, &err), 0);
    size_t n = (size_t)W * H;
    uint8_t *g = malloc(n), *rgb = malloc(n * 3);
    assert_int_equal(jpeg_decode(jc, data, size, 1, 1, false, g, n, &w, &h, &err), 0);
    assert_int_equal(w * h, (int)n);
    assert_int_equal(jpeg_decode(jc, data, size, 1, 3, false, rgb, n * 3, &w, &h, &err), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(rgb[3 * i], g[i]);
        assert_int_equal(rgb[3 * i + 1], g[i]);
        assert_int_equal(rgb[3 * i + 2], g[i]);
    }
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += g[i];
    assert_true(mean / n > 20 && mean / n < 235); /* a real picture, not a blank */
    /* A color JPEG decodes to gray as well. */
    free(data);
    data = read_photo("chelsea.jpg", &size);
    assert_int_equal(jpeg_decode(jc, data, size, 2, 1, true, g, n, &w, &h, &err), 0);
    assert_int_equal(w, 226);
    assert_int_equal(h, 150);
    free(g);
    free(rgb);
    free(data);
    jpeg_codec_free(jc);
}

/* resize_area_frac: integer edges give resize_area's area result (to 1 LSB at rounding ties); fractional edges
 * give the exact mean of a linear ramp over each output pixel's interval. */
static void test_resize_frac(void **state) {
    (void)state;
    enum { H = 37, W = 53 };
    uint8_t src[H * W * 3], a[20 * 16 * 3], b[20 * 16 * 3];
    for (int i = 0; i < H * W * 3; i++) src[i] = (uint8_t)((i * 37 + (i / 7) * 11) & 0xFF);
    float scratch[65536];
    const int cases[][6] = {{3, 5, 30, 47, 16, 16}, {0, 0, 37, 53, 7, 11}, {2, 1, 20, 30, 20, 13}};
    for (int k = 0; k < 3; k++) {
        const int *c = cases[k];
        resize_area(src, W * 3, 3, c[0], c[1], c[2], c[3], a, c[4], c[5], scratch);
        assert_true(resize_frac_scratch_floats(c[3] + 1, c[5], 3) <= 65536);
        resize_area_frac(src, W * 3, 3, c[0], c[1], c[2], c[3], b, c[4], c[5], scratch);
        for (int i = 0; i < c[4] * c[5] * 3; i++) assert_true(abs((int)a[i] - (int)b[i]) <= 1);
    }
    /* a ramp v(x) = 4x + 2 on one channel: output ox of window [x0, x0 + ww) is the ramp's mean over its interval */
    uint8_t ramp[4 * 60];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 60; x++) ramp[y * 60 + x] = (uint8_t)(4 * x + 2);
    double x0 = 2.75, ww = 41.5;
    uint8_t out[2 * 10];
    resize_area_frac(ramp, 60, 1, 0.5, x0, 3.0, ww, out, 2, 10, scratch);
    for (int ox = 0; ox < 10; ox++) {
        double a0 = x0 + ox * ww / 10, a1 = a0 + ww / 10;
        /* the mean of the step function 4*floor(x) + 2 over [a0, a1) */
        double sum = 0;
        for (int x = (int)a0; x < (int)ceil(a1); x++) {
            double lo = a0 > x ? a0 : x, hi = a1 < x + 1 ? a1 : x + 1;
            sum += (4.0 * x + 2) * (hi - lo);
        }
        double want = sum / (a1 - a0);
        assert_true(fabs(out[ox] - want) <= 0.5 + 1e-6);
        assert_true(out[10 + ox] == out[ox]);
    }
}

/* A JPEG without its quantization tables is corrupt even right after a good image decoded on the same codec
 * (libjpeg keeps tables between images unless the decoder is fresh). */
static void test_jpeg_no_stale_tables(void **state) {
    (void)state;
    enum { W = 40, H = 24 };
    uint8_t rgb[W * H * 3], out[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 13);
    JpegCodec *c = jpeg_codec_new();
    uint8_t *jpg;
    size_t size;
    Error err;
    assert_int_equal(jpeg_encode(c, rgb, W, H, 90, &jpg, &size, &err), 0);
    /* a copy with every DQT segment (FF DB, length) removed */
    uint8_t *bad = malloc(size);
    size_t n = 0;
    for (size_t i = 0; i < size;) {
        if (i + 3 < size && jpg[i] == 0xFF && jpg[i + 1] == 0xDB) {
            i += 2 + (size_t)(jpg[i + 2] << 8 | jpg[i + 3]);
            continue;
        }
        bad[n++] = jpg[i++];
    }
    assert_true(n < size);
    int w, h, ox, ow;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(jpeg_decode(c, jpg, size, 1, 3, false, out, sizeof out, &w, &h, &err), 0);
        assert_int_equal(jpeg_decode(c, bad, n, 1, 3, false, out, sizeof out, &w, &h, &err), -1);
        assert_non_null(strstr(err.msg, "corrupt JPEG"));
        assert_int_equal(jpeg_decode_crop(c, jpg, size, 1, 3, false, 8, 8, 16, 8, out, sizeof out, &ox, &ow, &err), 0);
        assert_int_equal(jpeg_decode_crop(c, bad, n, 1, 3, false, 8, 8, 16, 8, out, sizeof out, &ox, &ow, &err), -1);
    }
    free(bad);
    free(jpg);
    jpeg_codec_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_vs_reference),
        cmocka_unit_test(test_resize_window_isolation),
        cmocka_unit_test(test_resize_vs_opencv),
        cmocka_unit_test(test_jpeg_round_trip),
        cmocka_unit_test(test_jpeg_encode_matches_opencv),
        cmocka_unit_test(test_jpeg_headers),
        cmocka_unit_test(test_jpeg_scaled),
        cmocka_unit_test(test_jpeg_crop_exact),
        cmocka_unit_test(test_jpeg_pick_denom),
        cmocka_unit_test(test_jpeg_corrupt),
        cmocka_unit_test(test_jpeg_gray),
        cmocka_unit_test(test_resize_frac),
        cmocka_unit_test(test_jpeg_no_stale_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
