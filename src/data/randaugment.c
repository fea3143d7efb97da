/* randaugment.c — Composer 0.9's RandAugment over [h, w, 3] u8 images (see randaugment.h), reproducing Pillow.
 *
 * Sources followed: composer/algorithms/randaugment/randaugment.py (the loop: `depth` times
 * np.random.choice(augmentation_set), then aug(img, severity)) and composer/algorithms/utils/
 * augmentation_primitives.py (the ops and their magnitude sampling); Pillow's ImageOps.py, ImageEnhance.py,
 * Image.py (rotate, transform) and libImaging Convert.c (rgb2l), Blend.c, Filter.c (3x3), Geometry.c (affine,
 * bilinear_filter32RGB), _imaging.c (_filter, _point).
 *
 * Floating-point order and precision follow Pillow's C code expression by expression (float for the blends and
 * the 3x3 filter, double for the geometry and the autocontrast LUT). Matching Pillow bit for bit needs a*b + c
 * to stay two roundings, never one FMA: GCC's default for -std=c11 (-ffp-contract=off, which CMakeLists.txt's
 * C_EXTENSIONS OFF gives), and the pragma below asks clang for the same. -ffp-contract=fast (GNU C's default)
 * with an FMA target changes ~0.5% of the color op's values by 1; test_randaugment catches it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/randaugment.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static const double RA_PI = 3.14159265358979323846; /* Python's Py_MATH_PI */

size_t randaugment_scratch_bytes(int h, int w) {
    if (h <= 0 || w <= 0) return 0;
    return (size_t)h * (size_t)w * 3;
}

/* ------------------------------------------------------------------------------------------------------------
 * Point ops: a per-channel LUT, as ImageOps._lut / Image.point (LUT entries clipped to 0..255, _imaging.c). */

static void apply_luts(uint8_t *img, size_t npix, const int lut[3][256]) {
    uint8_t l8[3][256];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++) l8[c][i] = (uint8_t)(lut[c][i] < 0 ? 0 : lut[c][i] > 255 ? 255 : lut[c][i]);
    for (size_t p = 0; p < npix; p++) {
        img[3 * p + 0] = l8[0][img[3 * p + 0]];
        img[3 * p + 1] = l8[1][img[3 * p + 1]];
        img[3 * p + 2] = l8[2][img[3 * p + 2]];
    }
}

/* image.histogram() of an RGB image: 256 counts per channel. */
static void histogram(const uint8_t *img, size_t npix, int64_t hist[3][256]) {
    memset(hist, 0, sizeof(int64_t) * 3 * 256);
    for (size_t p = 0; p < npix; p++) {
        hist[0][img[3 * p + 0]]++;
        hist[1][img[3 * p + 1]]++;
        hist[2][img[3 * p + 2]]++;
    }
}

void ra_autocontrast(uint8_t *img, int h, int w) {
    if (h <= 0 || w <= 0) return;
    size_t npix = (size_t)h * (size_t)w;
    int64_t hist[3][256];
    int lut[3][256];
    histogram(img, npix, hist);
    for (int c = 0; c < 3; c++) {
        int lo = 0, hi = 255;
        while (lo < 256 && !hist[c][lo]) lo++;
        while (hi >= 0 && !hist[c][hi]) hi--;
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lut[c][i] = i;
            continue;
        }
        /* scale = 255.0 / (hi - lo); offset = -lo * scale; int(ix * scale + offset), clipped */
        double scale = 255.0 / (double)(hi - lo), offset = (double)(-lo) * scale;
        for (int i = 0; i < 256; i++) {
            double v = (double)i * scale;
            v = v + offset;
            int iv = (int)v; /* Python int(): toward zero */
            lut[c][i] = iv < 0 ? 0 : iv > 255 ? 255 : iv;
        }
    }
    apply_luts(img, npix, (const int(*)[256])lut);
}

void ra_equalize(uint8_t *img, int h, int w) {
    if (h <= 0 || w <= 0) return;
    size_t npix = (size_t)h * (size_t)w;
    int64_t hist[3][256];
    int lut[3][256];
    histogram(img, npix, hist);
    for (int c = 0; c < 3; c++) {
        /* histo = the nonzero counts in order; step = (sum(histo) - histo[-1]) // 255 */
        int nonzero = 0, last = -1;
        int64_t total = 0;
        for (int i = 0; i < 256; i++)
            if (hist[c][i]) {
                nonzero++;
                last = i;
                total += hist[c][i];
            }
        int64_t step = nonzero <= 1 ? 0 : (total - hist[c][last]) / 255;
        if (step == 0) {
            for (int i = 0; i < 256; i++) lut[c][i] = i;
            continue;
        }
        int64_t n = step / 2;
        for (int i = 0; i < 256; i++) {
            int64_t v = n / step;
            lut[c][i] = v > 255 ? 255 : (int)v; /* Image.point clips the LUT to 255 */
            n += hist[c][i];
        }
    }
    apply_luts(img, npix, (const int(*)[256])lut);
}

void ra_posterize(uint8_t *img, int h, int w, int bits) {
    if (h <= 0 || w <= 0) return;
    if (bits < 0) bits = 0;
    if (bits > 8) bits = 8;
    uint8_t mask = (uint8_t)(~((1u << (8 - bits)) - 1u) & 0xffu); /* ~(2 ** (8 - bits) - 1) */
    size_t n = (size_t)h * (size_t)w * 3;
    for (size_t i = 0; i < n; i++) img[i] &= mask;
}

void ra_solarize(uint8_t *img, int h, int w, int threshold) {
    if (h <= 0 || w <= 0) return;
    size_t n = (size_t)h * (size_t)w * 3;
    for (size_t i = 0; i < n; i++)
        if (img[i] >= threshold) img[i] = (uint8_t)(255 - img[i]);
}

/* ------------------------------------------------------------------------------------------------------------
 * ImageEnhance: Image.blend(degenerate, image, factor) = ImagingBlend with a C float alpha:
 * out = (UINT8)(float)(in1 + alpha * (in2 - in1)), clipped to [0, 255] (only reachable when extrapolating). */

static inline uint8_t blend_px(int degenerate, int value, float alpha) {
    float t = (float)(value - degenerate) * alpha;
    t = (float)degenerate + t;
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* RGB -> L as Pillow's rgb2l: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (ITU-R 601-2 in 16-bit fixed point). */
static inline int luma(const uint8_t *p) {
    return (int)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
}

void ra_color(uint8_t *img, int h, int w, double factor) {
    if (h <= 0 || w <= 0) return;
    float alpha = (float)factor;
    size_t npix = (size_t)h * (size_t)w;
    for (size_t p = 0; p < npix; p++) {
        uint8_t *px = img + 3 * p;
        int l = luma(px);
        px[0] = blend_px(l, px[0], alpha);
        px[1] = blend_px(l, px[1], alpha);
        px[2] = blend_px(l, px[2], alpha);
    }
}

void ra_contrast(uint8_t *img, int h, int w, double factor) {
    if (h <= 0 || w <= 0) return;
    float alpha = (float)factor;
    size_t npix = (size_t)h * (size_t)w;
    uint64_t sum = 0;
    for (size_t p = 0; p < npix; p++) sum += (uint64_t)luma(img + 3 * p);
    /* int(ImageStat.Stat(L).mean[0] + 0.5), the mean being sum / count in double */
    double mean = (double)sum / (double)npix;
    int m = (int)(mean + 0.5);
    for (size_t i = 0; i < npix * 3; i++) img[i] = blend_px(m, img[i], alpha);
}

void ra_brightness(uint8_t *img, int h, int w, double factor) {
    if (h <= 0 || w <= 0) return;
    float alpha = (float)factor;
    size_t n = (size_t)h * (size_t)w * 3;
    for (size_t i = 0; i < n; i++) img[i] = blend_px(0, img[i], alpha);
}

/* Filter.c clip8: clamp to [0, 255], then truncate. */
static inline uint8_t clip8(float v) {
    if (v <= 0.0f) return 0;
    if (v >= 255.0f) return 255;
    return (uint8_t)v;
}

void ra_sharpness(uint8_t *img, int h, int w, double factor, uint8_t *scratch) {
    /* ImagingFilter returns a copy for images smaller than the kernel: the blend then gives the image back */
    if (h < 3 || w < 3) return;
    float alpha = (float)factor;
    /* SMOOTH: (3, 3), scale 13, offset 0, kernel 1 1 1 / 1 5 1 / 1 1 1; _imaging.c divides each float32 entry
     * by the float divisor; ImagingFilter3x3 adds 0.5 to the offset for rounding and sums row y+1, y, y-1, each
     * row as (k0*a + k1*b) + k2*c, in float. Rows 0 and h-1 and columns 0 and w-1 are copied unfiltered. */
    const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
    size_t stride = (size_t)w * 3;
    memcpy(scratch, img, (size_t)h * stride);
    for (int y = 1; y < h - 1; y++) {
        const uint8_t *rm = scratch + (size_t)(y - 1) * stride, *r0 = scratch + (size_t)y * stride,
                      *rp = scratch + (size_t)(y + 1) * stride;
        uint8_t *out = img + (size_t)y * stride;
        for (int x = 1; x < w - 1; x++) {
            for (int c = 0; c < 3; c++) {
                size_t i = (size_t)x * 3 + (size_t)c;
                float ss = 0.5f;
                ss += (float)rp[i - 3] * k1 + (float)rp[i] * k1 + (float)rp[i + 3] * k1;
                ss += (float)r0[i - 3] * k1 + (float)r0[i] * k5 + (float)r0[i + 3] * k1;
                ss += (float)rm[i - 3] * k1 + (float)rm[i] * k1 + (float)rm[i + 3] * k1;
                out[i] = blend_px(clip8(ss), r0[i], alpha);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------------------------
 * Geometry: Image.transform(AFFINE, resample=BILINEAR) with fillcolor None = ImagingGenericTransform with
 * affine_transform (pixel centers) and bilinear_filter32RGB; pixels whose source point lies outside
 * [0, w) x [0, h) are black. */

void ra_affine(uint8_t *img, int h, int w, const double m[6], uint8_t *scratch) {
    if (h <= 0 || w <= 0) return;
    size_t stride = (size_t)w * 3;
    memcpy(scratch, img, (size_t)h * stride);
    const double a0 = m[0], a1 = m[1], a2 = m[2], a3 = m[3], a4 = m[4], a5 = m[5];
    for (int y = 0; y < h; y++) {
        uint8_t *out = img + (size_t)y * stride;
        double yc = y + 0.5;
        for (int x = 0; x < w; x++, out += 3) {
            double xc = x + 0.5;
            double xx = a0 * xc, yy = a3 * xc, t;
            t = a1 * yc;
            xx = xx + t;
            xx = xx + a2;
            t = a4 * yc;
            yy = yy + t;
            yy = yy + a5;
            if (!(xx >= 0.0 && xx < (double)w && yy >= 0.0 && yy < (double)h)) {
                out[0] = out[1] = out[2] = 0;
                continue;
            }
            xx -= 0.5;
            yy -= 0.5;
            int ix = (int)floor(xx), iy = (int)floor(yy);
            double dx = xx - ix, dy = yy - iy;
            int x0 = ix < 0 ? 0 : ix < w ? ix : w - 1;
            int x1 = ix + 1 < 0 ? 0 : ix + 1 < w ? ix + 1 : w - 1;
            int y0 = iy < 0 ? 0 : iy < h ? iy : h - 1;
            int has_y1 = iy + 1 >= 0 && iy + 1 < h;
            const uint8_t *r0 = scratch + (size_t)y0 * stride, *r1 = scratch + (size_t)(has_y1 ? iy + 1 : y0) * stride;
            for (int c = 0; c < 3; c++) {
                int p00 = r0[(size_t)x0 * 3 + c], p01 = r0[(size_t)x1 * 3 + c];
                double v1 = (double)(p01 - p00) * dx, v2, d;
                v1 = (double)p00 + v1;
                if (has_y1) {
                    int p10 = r1[(size_t)x0 * 3 + c], p11 = r1[(size_t)x1 * 3 + c];
                    v2 = (double)(p11 - p10) * dx;
                    v2 = (double)p10 + v2;
                } else {
                    v2 = v1;
                }
                d = (v2 - v1) * dy;
                v1 = v1 + d;
                out[c] = (uint8_t)v1;
            }
        }
    }
}

void ra_shear_x(uint8_t *img, int h, int w, double shear, uint8_t *scratch) {
    const double m[6] = {1, shear, 0, 0, 1, 0};
    ra_affine(img, h, w, m, scratch);
}

void ra_shear_y(uint8_t *img, int h, int w, double shear, uint8_t *scratch) {
    const double m[6] = {1, 0, 0, shear, 1, 0};
    ra_affine(img, h, w, m, scratch);
}

void ra_translate_x(uint8_t *img, int h, int w, double pixels, uint8_t *scratch) {
    const double m[6] = {1, 0, pixels, 0, 1, 0};
    ra_affine(img, h, w, m, scratch);
}

void ra_translate_y(uint8_t *img, int h, int w, double pixels, uint8_t *scratch) {
    const double m[6] = {1, 0, 0, 0, 1, pixels};
    ra_affine(img, h, w, m, scratch);
}

/* Python's round(x, 15): correctly rounded to 15 decimals, read back correctly rounded (printf and strtod are
 * exact in glibc; the decimal point follows the locale both ways). */
static double py_round15(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

void ra_rotate(uint8_t *img, int h, int w, double degrees, uint8_t *scratch) {
    if (h <= 0 || w <= 0) return;
    /* angle = angle % 360.0 (Python's modulo: the result has the divisor's sign) */
    double angle = fmod(degrees, 360.0);
    if (angle < 0) angle += 360.0;
    size_t npix = (size_t)h * (size_t)w, stride = (size_t)w * 3;
    if (angle == 0) return; /* self.copy() */
    if (angle == 180) {     /* transpose(ROTATE_180): reverse the pixel order */
        for (size_t i = 0, j = npix - 1; i < j; i++, j--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = img[3 * i + c];
                img[3 * i + c] = img[3 * j + c];
                img[3 * j + c] = t;
            }
        return;
    }
    if ((angle == 90 || angle == 270) && w == h) { /* transpose(ROTATE_90 / ROTATE_270), square images only */
        memcpy(scratch, img, (size_t)h * stride);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                /* ROTATE_90: out[w-1-x][y] = in[y][x]; ROTATE_270: out[x][h-1-y] = in[y][x] */
                int oy = angle == 90 ? w - 1 - x : x, ox = angle == 90 ? y : h - 1 - y;
                memcpy(img + (size_t)oy * stride + (size_t)ox * 3, scratch + (size_t)y * stride + (size_t)x * 3, 3);
            }
        return;
    }
    /* The inverse matrix about the center (w/2, h/2), entries rounded to 15 decimals as Image.rotate does. */
    double a = -(angle * (RA_PI / 180.0)); /* -math.radians(angle) */
    double m[6] = {py_round15(cos(a)), py_round15(sin(a)), 0.0, py_round15(-sin(a)), py_round15(cos(a)), 0.0};
    double cx = w / 2.0, cy = h / 2.0, t;
    t = m[0] * -cx;
    m[2] = m[1] * -cy;
    m[2] = t + m[2];
    m[2] = m[2] + 0.0;
    t = m[3] * -cx;
    m[5] = m[4] * -cy;
    m[5] = t + m[5];
    m[5] = m[5] + 0.0;
    m[2] += cx;
    m[5] += cy;
    ra_affine(img, h, w, m, scratch);
}

/* ------------------------------------------------------------------------------------------------------------
 * Sampling, as augmentation_primitives.py: np.random.uniform(lo, hi) = lo + (hi - lo) * U[0, 1). */

static double uniform(Rng *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform_double(r); }

/* _sample_level(n) = U(0.1, n) */
static double sample_level(Rng *r, double n) { return uniform(r, 0.1, n); }

/* _int_parameter(level, maxval) = int(level * maxval / 10); level > 0 here, so int() is floor */
static double int_parameter(double level, double maxval) { return trunc(level * maxval / 10.0); }

/* _float_parameter(level, maxval) = level * maxval / 10 */
static double float_parameter(double level, double maxval) { return level * maxval / 10.0; }

/* _symmetric_sample(level): with probability 1/2 U(1, level), else U(1 - 0.09 level, 1) */
static double symmetric_sample(Rng *r, double level) {
    if (rng_uniform_double(r) > 0.5) return uniform(r, 1.0, level);
    return uniform(r, 1.0 - 0.09 * level, 1.0);
}

/* The random sign flip: `if np.random.uniform() > 0.5: x = -x` */
static double random_sign(Rng *r, double v) { return rng_uniform_double(r) > 0.5 ? -v : v; }

RaStep randaugment_draw(int set, double severity, int h, int w, Rng *r) {
    int n = set == RA_SET_SAFE ? RA_OP_SAFE_COUNT : RA_OP_COUNT;
    int original = set == RA_SET_ORIGINAL;
    RaStep s = {(int)rng_below(r, (uint32_t)n), 0.0};
    switch (s.op) {
    case RA_OP_AUTOCONTRAST:
    case RA_OP_EQUALIZE: break;
    case RA_OP_POSTERIZE: s.magnitude = 4 - int_parameter(sample_level(r, severity), 4); break;
    case RA_OP_ROTATE:
        s.magnitude = int_parameter(sample_level(r, severity), 30);
        s.magnitude = random_sign(r, s.magnitude);
        break;
    case RA_OP_SOLARIZE: s.magnitude = 256 - int_parameter(sample_level(r, severity), 256); break;
    case RA_OP_SHEAR_X:
    case RA_OP_SHEAR_Y:
        s.magnitude = float_parameter(sample_level(r, severity), 0.3);
        s.magnitude = random_sign(r, s.magnitude);
        break;
    case RA_OP_TRANSLATE_X:
        s.magnitude = int_parameter(sample_level(r, severity), w / 3.0);
        s.magnitude = random_sign(r, s.magnitude);
        break;
    case RA_OP_TRANSLATE_Y:
        s.magnitude = int_parameter(sample_level(r, severity), h / 3.0);
        s.magnitude = random_sign(r, s.magnitude);
        break;
    case RA_OP_COLOR:
    case RA_OP_CONTRAST:
    case RA_OP_SHARPNESS:
        s.magnitude = original ? float_parameter(sample_level(r, severity), 1.8) + 0.1 : symmetric_sample(r, severity);
        break;
    case RA_OP_BRIGHTNESS:
        if (original) {
            s.magnitude = float_parameter(sample_level(r, severity), 1.8) + 0.1;
        } else {
            s.magnitude = symmetric_sample(r, severity);
            if (s.magnitude > 1) s.magnitude *= 0.75; /* "reduce intensity of brightness increases" */
        }
        break;
    default: break;
    }
    return s;
}

void randaugment_apply_step(uint8_t *img, int h, int w, RaStep step, uint8_t *scratch) {
    double m = step.magnitude;
    switch (step.op) {
    case RA_OP_AUTOCONTRAST: ra_autocontrast(img, h, w); break;
    case RA_OP_EQUALIZE: ra_equalize(img, h, w); break;
    case RA_OP_POSTERIZE: ra_posterize(img, h, w, (int)m); break;
    case RA_OP_ROTATE: ra_rotate(img, h, w, m, scratch); break;
    case RA_OP_SOLARIZE: ra_solarize(img, h, w, (int)m); break;
    case RA_OP_SHEAR_X: ra_shear_x(img, h, w, m, scratch); break;
    case RA_OP_SHEAR_Y: ra_shear_y(img, h, w, m, scratch); break;
    case RA_OP_TRANSLATE_X: ra_translate_x(img, h, w, m, scratch); break;
    case RA_OP_TRANSLATE_Y: ra_translate_y(img, h, w, m, scratch); break;
    case RA_OP_COLOR: ra_color(img, h, w, m); break;
    case RA_OP_CONTRAST: ra_contrast(img, h, w, m); break;
    case RA_OP_BRIGHTNESS: ra_brightness(img, h, w, m); break;
    case RA_OP_SHARPNESS: ra_sharpness(img, h, w, m, scratch); break;
    default: break;
    }
}

void randaugment_apply(uint8_t *img, int h, int w, int depth, double severity, int set, Rng *r,
                       uint8_t *scratch) {
    if (h <= 0 || w <= 0) return;
    for (int i = 0; i < depth; i++) {
        RaStep step = randaugment_draw(set, severity, h, w, r);
        randaugment_apply_step(img, h, w, step, scratch);
    }
}
