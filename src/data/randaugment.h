/* randaugment.h — Composer 0.9's RandAugment (composer/algorithms/randaugment/randaugment.py with the ops of
 * composer/algorithms/utils/augmentation_primitives.py) over 8-bit RGB images, reproducing Pillow's arithmetic.
 *
 * Per image, `depth` times: pick one op uniformly from the set and apply it with a magnitude drawn from
 * `severity` (0..10). The 'all' set has 13 ops in this order (RaOp): autocontrast, equalize, posterize, rotate,
 * solarize, shear_x, shear_y, translate_x, translate_y, color, contrast, brightness, sharpness; 'safe' is the
 * first 9; 'original' is the 13 with the old factor sampling for the last 4. Every op matches Pillow
 * bit for bit (tests/unit/test_randaugment.c; docs/randaugment.md has the details). Images are [h, w, 3] u8,
 * row-major, modified in place; the geometric ops and sharpness need a scratch copy of the image. */
#ifndef CTRAIN_DATA_RANDAUGMENT_H
#define CTRAIN_DATA_RANDAUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "algorithms/algorithms.h" /* RandaugmentSet: RA_SET_ALL, RA_SET_SAFE, RA_SET_ORIGINAL */
#include "core/rng.h"

/* The ops, in Composer's list order (the 'safe' set is the first RA_OP_SAFE_COUNT). */
typedef enum RaOp {
    RA_OP_AUTOCONTRAST = 0,
    RA_OP_EQUALIZE,
    RA_OP_POSTERIZE,
    RA_OP_ROTATE,
    RA_OP_SOLARIZE,
    RA_OP_SHEAR_X,
    RA_OP_SHEAR_Y,
    RA_OP_TRANSLATE_X,
    RA_OP_TRANSLATE_Y,
    RA_OP_COLOR,
    RA_OP_CONTRAST,
    RA_OP_BRIGHTNESS,
    RA_OP_SHARPNESS,
    RA_OP_COUNT
} RaOp;
#define RA_OP_SAFE_COUNT 9

/* One drawn op with its magnitude in the op's own unit: posterize bits, solarize threshold, rotate degrees
 * (counter-clockwise), shear factor, translate pixels (PIL's affine offset: +t samples the source at x + t,
 * so the content moves left/up), enhance factor (1 = unchanged); unused (0) for autocontrast and equalize. */
typedef struct RaStep {
    int op; /* RaOp */
    double magnitude;
} RaStep;

/* Bytes of scratch that randaugment_apply and the geometric/sharpness ops need for an h x w image. */
size_t randaugment_scratch_bytes(int h, int w);

/* Applies `depth` random ops of Composer's set (RandaugmentSet) to img [h, w, 3] in place, drawing every random
 * choice from r (the caller names the stream per sample). scratch: randaugment_scratch_bytes(h, w) bytes.
 * Allocates nothing. depth <= 0 leaves img unchanged. */
void randaugment_apply(uint8_t *img, int h, int w, int depth, double severity, int set, Rng *r,
                       uint8_t *scratch);

/* Draws one step as Composer does: the op uniformly from the set, then its magnitude from severity (the random
 * numbers are drawn in Composer's order; see randaugment.c). w and h matter for translate. */
RaStep randaugment_draw(int set, double severity, int h, int w, Rng *r);

/* Applies one step to img [h, w, 3] in place; scratch as for randaugment_apply. */
void randaugment_apply_step(uint8_t *img, int h, int w, RaStep step, uint8_t *scratch);

/* ---- The ops with explicit magnitudes, each as Composer calls Pillow. img [h, w, 3], in place. ---- */

/* ImageOps.autocontrast(img): per channel, stretch [min, max] to [0, 255] (a constant channel is unchanged). */
void ra_autocontrast(uint8_t *img, int h, int w);
/* ImageOps.equalize(img): per channel, Pillow's histogram equalization LUT. */
void ra_equalize(uint8_t *img, int h, int w);
/* ImageOps.posterize(img, bits): keep the top `bits` bits (0..8) of each value. */
void ra_posterize(uint8_t *img, int h, int w, int bits);
/* ImageOps.solarize(img, threshold): values >= threshold become 255 - value. */
void ra_solarize(uint8_t *img, int h, int w, int threshold);
/* Image.rotate(degrees, resample=BILINEAR): counter-clockwise about the center, same size, black fill.
 * scratch: h * w * 3 bytes. */
void ra_rotate(uint8_t *img, int h, int w, double degrees, uint8_t *scratch);
/* Image.transform(size, AFFINE, m, resample=BILINEAR) with black fill: output pixel (x, y) samples the source at
 * (m[0] x' + m[1] y' + m[2], m[3] x' + m[4] y' + m[5]) with x' = x + 0.5, y' = y + 0.5 (pixel centers).
 * scratch: h * w * 3 bytes. */
void ra_affine(uint8_t *img, int h, int w, const double m[6], uint8_t *scratch);
/* AFFINE (1, shear, 0, 0, 1, 0) / (1, 0, 0, shear, 1, 0), bilinear. scratch: h * w * 3 bytes. */
void ra_shear_x(uint8_t *img, int h, int w, double shear, uint8_t *scratch);
void ra_shear_y(uint8_t *img, int h, int w, double shear, uint8_t *scratch);
/* AFFINE (1, 0, pixels, 0, 1, 0) / (1, 0, 0, 0, 1, pixels), bilinear. scratch: h * w * 3 bytes. */
void ra_translate_x(uint8_t *img, int h, int w, double pixels, uint8_t *scratch);
void ra_translate_y(uint8_t *img, int h, int w, double pixels, uint8_t *scratch);
/* ImageEnhance.Color(img).enhance(factor): blend with the image's gray (mode L) version. */
void ra_color(uint8_t *img, int h, int w, double factor);
/* ImageEnhance.Contrast(img).enhance(factor): blend with a flat image at the rounded mean of the L image. */
void ra_contrast(uint8_t *img, int h, int w, double factor);
/* ImageEnhance.Brightness(img).enhance(factor): blend with black. */
void ra_brightness(uint8_t *img, int h, int w, double factor);
/* ImageEnhance.Sharpness(img).enhance(factor): blend with ImageFilter.SMOOTH of the image (border pixels are
 * not filtered). scratch: h * w * 3 bytes. */
void ra_sharpness(uint8_t *img, int h, int w, double factor, uint8_t *scratch);

#endif
