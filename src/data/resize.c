/* resize.c — OpenCV INTER_AREA resampling of a crop window (see resize.h for the semantics).
 *
 * Every path follows the arithmetic of OpenCV's imgproc/src/resize.cpp (computeResizeAreaTab +
 * ResizeArea_Invoker, resizeAreaFast_Invoker, and the INTER_AREA branch of the generic linear resize with
 * VResizeLinearVec_32s8u) so results match cv::resize bit for bit; tests/unit/test_image_kernels.c checks this
 * against OpenCV's own output and against a direct 2-D reference. Floating-point results depend on the order of
 * the float operations, so the loops below keep OpenCV's order per output element and never fuse a multiply
 * and an add (C11 mode gives -ffp-contract=off on GCC; clang is told by the pragma).
 *
 * Layout: the horizontal pass turns one source row into dw*c floats using per-column tap tables built once;
 * the vertical pass combines those rows. Tables live in the caller's float scratch (integers up to 2^24 are
 * stored exactly as floats, so the scratch holds one type only). */
#include "data/resize.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* OpenCV's fixed-point scale for the 2-tap kernel: 11 bits. */
#define COEF_SCALE 2048

/* cvRound of a float: round half to even (the SSE conversion under the default rounding mode). */
static inline int round_even(float v) {
#if defined(__SSE2__)
    return _mm_cvt_ss2si(_mm_set_ss(v));
#else
    return (int)lrintf(v);
#endif
}

/* saturate_cast<uchar>(float): round half to even, clamp to 0..255. */
static inline uint8_t sat_u8(float v) {
    int r = round_even(v);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

#if defined(__SSE2__)
/* d [n] float = s [n] uint8. */
static void u8_to_float(const uint8_t *s, float *d, int n) {
    int i = 0;
#if defined(__AVX2__)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(s + i)))));
#endif
    for (; i < n; i++) d[i] = (float)s[i];
}
#endif

/* sum [n] = beta * buf [n] (first == true) or sum += beta * buf (first == false). */
static void vert_accumulate(float *sum, const float *buf, float beta, int n, bool first) {
    int i = 0;
#if defined(__AVX__)
    __m256 b = _mm256_set1_ps(beta);
    if (first)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(sum + i, _mm256_mul_ps(b, _mm256_loadu_ps(buf + i)));
    else
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(sum + i, _mm256_add_ps(_mm256_loadu_ps(sum + i), _mm256_mul_ps(b, _mm256_loadu_ps(buf + i))));
#endif
    if (first)
        for (; i < n; i++) sum[i] = beta * buf[i];
    else
        for (; i < n; i++) {
            float p = beta * buf[i];
            sum[i] = sum[i] + p;
        }
}

/* d [n] uint8 = saturate_cast<uchar>(s [n] float). */
static void float_to_u8(const float *s, uint8_t *d, int n) {
    int i = 0;
#if defined(__AVX2__)
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtps_epi32(_mm256_loadu_ps(s + i));
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(d + i), _mm_packus_epi16(w, w));
    }
#endif
    for (; i < n; i++) d[i] = sat_u8(s[i]);
}

/* ---- true area averaging (scale >= 1 on both axes, non-integer) ---- */

/* One output cell of computeResizeAreaTab: source pixels [first, first+count) with weights: a head sliver,
 * full pixels, a tail sliver (slivers under 1e-3 px dropped, as OpenCV does). */
typedef struct AreaCell {
    double f1, f2, cell;
    int s1, s2;
    bool head, tail;
} AreaCell;

static void area_cell(AreaCell *a, int ssize, double scale, int d) {
    a->f1 = d * scale;
    a->f2 = a->f1 + scale;
    a->cell = fmin(scale, (double)ssize - a->f1);
    a->s1 = (int)ceil(a->f1);
    a->s2 = (int)floor(a->f2);
    if (a->s2 > ssize - 1) a->s2 = ssize - 1;
    if (a->s1 > a->s2) a->s1 = a->s2;
    a->head = a->s1 - a->f1 > 1e-3;
    a->tail = a->f2 - a->s2 > 1e-3;
}

static int area_cell_first(const AreaCell *a) { return a->head ? a->s1 - 1 : a->s1; }
static int area_cell_count(const AreaCell *a) { return (a->s2 - a->s1) + a->head + a->tail; }

/* Weight k of the cell (0 <= k < count), as OpenCV's float alpha. */
static float area_cell_weight(const AreaCell *a, int k) {
    if (a->head) {
        if (k == 0) return (float)((a->s1 - a->f1) / a->cell);
        k--;
    }
    if (k < a->s2 - a->s1) return (float)(1.0 / a->cell);
    return (float)(fmin(fmin(a->f2 - a->s2, 1.0), a->cell) / a->cell);
}

#if defined(__SSE2__)
/* The c = 3 horizontal kernel: row [ww, 3] float (+1 float of slack) -> hbuf [dw, 3] float (+1). One pixel is one
 * 4-lane vector (lane 3 unused); four columns at a time keep four independent add chains in flight. */
__attribute__((noinline)) static void area_hpass3(const float *row, int dw, int K, const float *xs, const float *xw,
                                                  float *hbuf) {
    int dx = 0;
    for (; dx + 4 <= dw; dx += 4) {
        const float *p0 = row + 3 * (int)xs[dx], *p1 = row + 3 * (int)xs[dx + 1];
        const float *p2 = row + 3 * (int)xs[dx + 2], *p3 = row + 3 * (int)xs[dx + 3];
        const float *w0 = xw + (size_t)dx * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        __m128 a0 = _mm_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < K; k++) {
            a0 = _mm_add_ps(a0, _mm_mul_ps(_mm_loadu_ps(p0 + 3 * k), _mm_set1_ps(w0[k])));
            a1 = _mm_add_ps(a1, _mm_mul_ps(_mm_loadu_ps(p1 + 3 * k), _mm_set1_ps(w1[k])));
            a2 = _mm_add_ps(a2, _mm_mul_ps(_mm_loadu_ps(p2 + 3 * k), _mm_set1_ps(w2[k])));
            a3 = _mm_add_ps(a3, _mm_mul_ps(_mm_loadu_ps(p3 + 3 * k), _mm_set1_ps(w3[k])));
        }
        float *o = hbuf + (size_t)dx * 3; /* in column order: each store's lane 3 is overwritten by the next */
        _mm_storeu_ps(o, a0);
        _mm_storeu_ps(o + 3, a1);
        _mm_storeu_ps(o + 6, a2);
        _mm_storeu_ps(o + 9, a3);
    }
    for (; dx < dw; dx++) {
        const float *p = row + 3 * (int)xs[dx], *w = xw + (size_t)dx * K;
        __m128 acc = _mm_setzero_ps();
        for (int k = 0; k < K; k++) acc = _mm_add_ps(acc, _mm_mul_ps(_mm_loadu_ps(p + 3 * k), _mm_set1_ps(w[k])));
        _mm_storeu_ps(hbuf + (size_t)dx * 3, acc);
    }
}
#endif

/* Horizontal area pass of one source row S [ww, c] uint8 into hbuf [dw, c] float (plus 1 float of slack for
 * c = 3). Every column has the same number of taps K (xs: first source pixel, xw [dw, K]: weights, zero-padded
 * in front), so the inner loop never mispredicts; a zero tap adds +0, which leaves OpenCV's sums unchanged.
 * row: ww*c + 4 floats of room. */
static void area_hpass(const uint8_t *S, int ww, int c, int dw, int K, const float *xs, const float *xw, float *row,
                       float *hbuf) {
#if defined(__SSE2__)
    if (c == 3) {
        u8_to_float(S, row, ww * 3);
        area_hpass3(row, dw, K, xs, xw, hbuf);
        return;
    }
#else
    (void)row;
    (void)ww;
#endif
    for (int dx = 0; dx < dw; dx++) {
        const uint8_t *p = S + (size_t)(int)xs[dx] * c;
        const float *w = xw + (size_t)dx * K;
        for (int ch = 0; ch < c; ch++) {
            float acc = 0.f;
            for (int k = 0; k < K; k++) {
                float t = (float)p[(size_t)k * c + ch] * w[k];
                acc = acc + t;
            }
            hbuf[(size_t)dx * c + ch] = acc;
        }
    }
}

static void area_generic(const uint8_t *src, size_t stride, int c, int wh, int ww, uint8_t *dst, int dh, int dw,
                         double scale_x, double scale_y, float *scratch) {
    size_t nd = (size_t)dw * c;
    int K = 1;
    for (int dx = 0; dx < dw; dx++) {
        AreaCell a;
        area_cell(&a, ww, scale_x, dx);
        if (area_cell_count(&a) > K) K = area_cell_count(&a);
    }
    float *xs = scratch, *xw = xs + dw;                       /* [dw], [dw, K] with dw*K <= ww + 2*dw */
    float *row = xw + (size_t)dw * K;                         /* [ww*c + 4] */
    float *hbuf = row + (size_t)ww * c + 4;                   /* [dw*c + 4] */
    float *sum = hbuf + nd + 4;                               /* [dw*c] */
    memset(row + (size_t)ww * c, 0, 4 * sizeof(float));

    for (int dx = 0; dx < dw; dx++) {
        AreaCell a;
        area_cell(&a, ww, scale_x, dx);
        int n = area_cell_count(&a), first = area_cell_first(&a);
        int start = first + K <= ww ? first : ww - K; /* keep all K taps inside the row */
        float *w = xw + (size_t)dx * K;
        for (int k = 0; k < K; k++) w[k] = 0.f;
        for (int k = 0; k < n; k++) w[first - start + k] = area_cell_weight(&a, k);
        xs[dx] = (float)start;
    }

    int cached = -1;
    for (int dy = 0; dy < dh; dy++) {
        AreaCell a;
        area_cell(&a, wh, scale_y, dy);
        int n = area_cell_count(&a), first = area_cell_first(&a);
        for (int k = 0; k < n; k++) {
            int sy = first + k;
            if (sy != cached) {
                area_hpass(src + (size_t)sy * stride, ww, c, dw, K, xs, xw, row, hbuf);
                cached = sy;
            }
            vert_accumulate(sum, hbuf, area_cell_weight(&a, k), (int)nd, k == 0);
        }
        if (n == 0) memset(sum, 0, nd * sizeof(float));
        float_to_u8(sum, dst + (size_t)dy * nd, (int)nd);
    }
}

/* ---- integer factors (window = factor * output on both axes) ---- */

/* Box sums of iy x ix blocks, rounded like OpenCV's resizeAreaFast_: (s + 2) >> 2 for 2x2 with 1, 3 or 4
 * channels (its SIMD path), else cvRound(s * (1.f / area)). Separable: column sums of iy rows (in float, exact
 * while 255 * area < 2^24), then sums of ix columns; colsum: ww*c floats. */
static void area_int(const uint8_t *src, size_t stride, int c, int ww, uint8_t *dst, int dh, int dw, int ix, int iy,
                     float *colsum) {
    bool half_up = ix == 2 && iy == 2 && (c == 1 || c == 3 || c == 4);
    float inv_area = 1.f / (float)(ix * iy);
    int n = ww * c;
    for (int dy = 0; dy < dh; dy++) {
        const uint8_t *S = src + (size_t)dy * iy * stride;
        uint8_t *D = dst + (size_t)dy * dw * c;
        if ((long long)ix * iy * 255 >= (1LL << 24)) { /* huge blocks: integer sums, no table */
            for (int dx = 0; dx < dw; dx++)
                for (int ch = 0; ch < c; ch++) {
                    int64_t sum = 0;
                    for (int y = 0; y < iy; y++)
                        for (int x = 0; x < ix; x++) sum += S[(size_t)y * stride + ((size_t)dx * ix + x) * c + ch];
                    D[(size_t)dx * c + ch] = sat_u8((float)sum * inv_area);
                }
            continue;
        }
        int i = 0;
#if defined(__AVX2__)
        for (; i + 8 <= n; i += 8) {
            __m256 acc = _mm256_setzero_ps();
            for (int y = 0; y < iy; y++)
                acc = _mm256_add_ps(acc, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(
                                             _mm_loadl_epi64((const __m128i *)(S + (size_t)y * stride + i)))));
            _mm256_storeu_ps(colsum + i, acc);
        }
#endif
        for (; i < n; i++) {
            float acc = 0.f;
            for (int y = 0; y < iy; y++) acc += (float)S[(size_t)y * stride + i];
            colsum[i] = acc;
        }
        if (half_up) /* ix == 2 */
            for (int dx = 0; dx < dw; dx++)
                for (int ch = 0; ch < c; ch++) {
                    const float *p = colsum + (size_t)dx * 2 * c + ch;
                    D[(size_t)dx * c + ch] = (uint8_t)(((int)(p[0] + p[c]) + 2) >> 2);
                }
        else
            for (int dx = 0; dx < dw; dx++)
                for (int ch = 0; ch < c; ch++) {
                    const float *p = colsum + (size_t)dx * ix * c + ch;
                    float sum = 0.f;
                    for (int x = 0; x < ix; x++) sum += p[(size_t)x * c];
                    D[(size_t)dx * c + ch] = sat_u8(sum * inv_area);
                }
    }
}

/* ---- growing on an axis: OpenCV's bilinear emulation of INTER_AREA, 11-bit fixed point ---- */

/* OpenCV's INTER_AREA emulation coordinate: the source index and the fractional weight of the next pixel. */
static int grow_coord(int d, double scale, double inv_scale, float *frac) {
    int s = (int)floor(d * scale);
    float f = (float)((double)(d + 1) - (double)(s + 1) * inv_scale);
    *frac = f <= 0 ? 0.f : f - floorf(f);
    return s;
}

/* Horizontal 2-tap pass of one source row S [ww, c] into h [dw, c] (floats holding (sum >> 4), the value
 * OpenCV's vertical SIMD pass works on; every quantity is an integer below 2^24, exact in float).
 * row: ww*c + 4 floats of room for the c = 3 vector path. */
static void grow_hpass(const uint8_t *S, int ww, int c, int dw, int xmax, const float *xo, const float *a0,
                       const float *a1, float *row, float *h) {
#if defined(__SSE4_1__)
    if (c == 3) {
        /* (p0*w0 + p1*w1) * (1/16) then floor: the same integers as the scalar >> 4 below. One pixel per vector,
         * lane 3 unused and overwritten by the next column's store. */
        u8_to_float(S, row, ww * 3);
        const __m128 sixteenth = _mm_set1_ps(1.f / 16.f);
        int dx = 0;
        for (; dx < xmax; dx++) {
            const float *p = row + 3 * (int)xo[dx];
            __m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(p), _mm_set1_ps(a0[dx])),
                                  _mm_mul_ps(_mm_loadu_ps(p + 3), _mm_set1_ps(a1[dx])));
            _mm_storeu_ps(h + (size_t)dx * 3, _mm_floor_ps(_mm_mul_ps(v, sixteenth)));
        }
        const __m128 scale = _mm_set1_ps((float)(COEF_SCALE >> 4));
        for (; dx < dw; dx++)
            _mm_storeu_ps(h + (size_t)dx * 3, _mm_mul_ps(_mm_loadu_ps(row + 3 * (int)xo[dx]), scale));
        return;
    }
#else
    (void)row;
    (void)ww;
#endif
    for (int dx = 0; dx < dw; dx++) {
        const uint8_t *p = S + (size_t)(int)xo[dx] * c;
        float *o = h + (size_t)dx * c;
        if (dx < xmax) {
            int w0 = (int)a0[dx], w1 = (int)a1[dx];
            for (int ch = 0; ch < c; ch++) o[ch] = (float)((p[ch] * w0 + p[ch + c] * w1) >> 4);
        } else {
            for (int ch = 0; ch < c; ch++) o[ch] = (float)((p[ch] * COEF_SCALE) >> 4);
        }
    }
}

/* D [n] = ((h0*b0 >> 16) + (h1*b1 >> 16) + 2) >> 2, saturated: OpenCV's VResizeLinearVec_32s8u. */
static void grow_vpass(const float *h0, const float *h1, int b0, int b1, uint8_t *D, int n) {
    int i = 0;
#if defined(__AVX2__)
    __m256i vb0 = _mm256_set1_epi32(b0), vb1 = _mm256_set1_epi32(b1), two = _mm256_set1_epi32(2);
    for (; i + 8 <= n; i += 8) {
        __m256i x0 = _mm256_srai_epi32(_mm256_mullo_epi32(_mm256_cvttps_epi32(_mm256_loadu_ps(h0 + i)), vb0), 16);
        __m256i x1 = _mm256_srai_epi32(_mm256_mullo_epi32(_mm256_cvttps_epi32(_mm256_loadu_ps(h1 + i)), vb1), 16);
        __m256i v = _mm256_srai_epi32(_mm256_add_epi32(_mm256_add_epi32(x0, x1), two), 2);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storel_epi64((__m128i *)(D + i), _mm_packus_epi16(w, w));
    }
#endif
    for (; i < n; i++) {
        int v = ((((int)h0[i] * b0) >> 16) + (((int)h1[i] * b1) >> 16) + 2) >> 2;
        D[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

static void area_grow(const uint8_t *src, size_t stride, int c, int wh, int ww, uint8_t *dst, int dh, int dw,
                      double scale_x, double scale_y, double inv_x, double inv_y, float *scratch) {
    size_t nd = (size_t)dw * c;
    float *xo = scratch, *a0 = xo + dw, *a1 = a0 + dw; /* [dw] each */
    float *rows[2] = {a1 + dw, a1 + dw + nd + 4};      /* [dw*c + 4] each (vector stores spill 1 float) */
    float *row = rows[1] + nd + 4;                     /* [ww*c + 4] */
    memset(row + (size_t)ww * c, 0, 4 * sizeof(float));
    int tags[2] = {-1, -1};

    int xmax = dw;
    for (int dx = 0; dx < dw; dx++) {
        float fx;
        int sx = grow_coord(dx, scale_x, inv_x, &fx);
        if (sx + 1 >= ww) {
            if (xmax > dx) xmax = dx;
            if (sx >= ww - 1) {
                fx = 0.f;
                sx = ww - 1;
            }
        }
        xo[dx] = (float)sx;
        a0[dx] = (float)round_even((1.f - fx) * (float)COEF_SCALE);
        a1[dx] = (float)round_even(fx * (float)COEF_SCALE);
    }

    for (int dy = 0; dy < dh; dy++) {
        float fy;
        int sy = grow_coord(dy, scale_y, inv_y, &fy);
        int need[2] = {sy < wh ? sy : wh - 1, sy + 1 < wh ? sy + 1 : wh - 1};
        const float *p[2] = {NULL, NULL};
        for (int i = 0; i < 2; i++)
            for (int s = 0; s < 2; s++)
                if (tags[s] == need[i]) p[i] = rows[s];
        for (int i = 0; i < 2; i++) {
            if (p[i]) continue;
            int s = (p[1 - i] == rows[0]) ? 1 : 0; /* the slot the other needed row is not in */
            grow_hpass(src + (size_t)need[i] * stride, ww, c, dw, xmax, xo, a0, a1, row, rows[s]);
            tags[s] = need[i];
            p[i] = rows[s];
            if (need[1 - i] == need[i]) p[1 - i] = rows[s];
        }
        int b0 = round_even((1.f - fy) * (float)COEF_SCALE), b1 = round_even(fy * (float)COEF_SCALE);
        grow_vpass(p[0], p[1], b0, b1, dst + (size_t)dy * nd, (int)nd);
    }
}

size_t resize_scratch_floats(int ww, int dw, int dh, int c) {
    (void)dh;
    size_t w = (size_t)ww, d = (size_t)dw, cc = (size_t)c;
    size_t area = d + (w + 3 * d) + (w * cc + 4) + (d * cc + 4) + d * cc;
    size_t grow = 3 * d + 2 * (d * cc + 4) + (w * cc + 4);
    return (area > grow ? area : grow) + 16;
}

void resize_area(const uint8_t *src, size_t stride, int c, int y0, int x0, int wh, int ww, uint8_t *dst, int dh,
                 int dw, float *scratch) {
    const uint8_t *s = src + (size_t)y0 * stride + (size_t)x0 * c;
    if (ww == dw && wh == dh) {
        for (int y = 0; y < dh; y++) memcpy(dst + (size_t)y * dw * c, s + (size_t)y * stride, (size_t)dw * c);
        return;
    }
    /* OpenCV derives the scales this way; the exact doubles matter for the tables. */
    double inv_x = (double)dw / ww, inv_y = (double)dh / wh;
    double scale_x = 1. / inv_x, scale_y = 1. / inv_y;
    if (scale_x >= 1 && scale_y >= 1) {
        int ix = (int)lrint(scale_x), iy = (int)lrint(scale_y);
        if (fabs(scale_x - ix) < DBL_EPSILON && fabs(scale_y - iy) < DBL_EPSILON && ww == ix * dw && wh == iy * dh)
            area_int(s, stride, c, ww, dst, dh, dw, ix, iy, scratch);
        else
            area_generic(s, stride, c, wh, ww, dst, dh, dw, scale_x, scale_y, scratch);
        return;
    }
    area_grow(s, stride, c, wh, ww, dst, dh, dw, scale_x, scale_y, inv_x, inv_y, scratch);
}

/* ------------------------------------------------------------------ fractional windows (DCT-scaled crops) */

size_t resize_frac_scratch_floats(int ww, int dw, int c) {
    /* per output column: first source column and up to (ww/dw + 2) weights; two output-row accumulators */
    size_t taps = (size_t)ww / (size_t)(dw > 0 ? dw : 1) + 3;
    return (size_t)dw * (1 + taps) + 2 * (size_t)dw * (size_t)c;
}

/* Overlap weights of source cells [i, i+1) with [a, b), normalized by (b - a): first cell and count. */
static int frac_taps(double a, double b, int limit, int *first, float *w, int max) {
    int i0 = (int)floor(a), i1 = (int)ceil(b), n = 0;
    if (i0 < 0) i0 = 0;
    if (i1 > limit) i1 = limit;
    double inv = 1.0 / (b - a);
    for (int i = i0; i < i1 && n < max; i++) {
        double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
        w[n++] = (float)((hi - lo) * inv);
    }
    *first = i0;
    return n;
}

void resize_area_frac(const uint8_t *src, size_t stride, int c, double y0, double x0, double wh, double ww,
                      uint8_t *dst, int dh, int dw, float *scratch) {
    int sw_limit = (int)ceil(x0 + ww), sh_limit = (int)ceil(y0 + wh);
    double sx = ww / dw, sy = wh / dh;
    int max_taps = (int)(sx + 3);
    /* column taps: xfirst[dw] (stored as float: exact below 2^24) and xw[dw][max_taps] */
    float *xfirst = scratch, *xw = scratch + dw, *row = xw + (size_t)dw * max_taps, *acc = row + (size_t)dw * c;
    for (int ox = 0; ox < dw; ox++) {
        int first;
        float *w = xw + (size_t)ox * max_taps;
        for (int k = 0; k < max_taps; k++) w[k] = 0.0f;
        frac_taps(x0 + ox * sx, x0 + (ox + 1) * sx, sw_limit, &first, w, max_taps);
        xfirst[ox] = (float)first;
    }
    float yw[4096];
    int ymax = (int)(sy + 3) < 4096 ? (int)(sy + 3) : 4096;
    for (int oy = 0; oy < dh; oy++) {
        int yfirst;
        int ny = frac_taps(y0 + oy * sy, y0 + (oy + 1) * sy, sh_limit, &yfirst, yw, ymax);
        for (int k = 0; k < dw * c; k++) acc[k] = 0.0f;
        for (int t = 0; t < ny; t++) {
            const uint8_t *s = src + (size_t)(yfirst + t) * stride;
            /* horizontal pass of one source row */
            for (int ox = 0; ox < dw; ox++) {
                const float *w = xw + (size_t)ox * max_taps;
                const uint8_t *p = s + (size_t)xfirst[ox] * c;
                int limit = sw_limit - (int)xfirst[ox];
                for (int ch = 0; ch < c; ch++) {
                    float v = 0.0f;
                    for (int k = 0; k < max_taps && k < limit; k++) v += w[k] * p[(size_t)k * c + ch];
                    row[(size_t)ox * c + ch] = v;
                }
            }
            float wy = yw[t];
            for (int k = 0; k < dw * c; k++) acc[k] += wy * row[k];
        }
        uint8_t *d = dst + (size_t)oy * dw * c;
        for (int k = 0; k < dw * c; k++) {
            float v = nearbyintf(acc[k]);
            d[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}
