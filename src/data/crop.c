/* crop.c — crop boxes (see crop.h), following torchvision/transforms/transforms.py and ffcv/fields/rgb_image.py. */
#include <math.h>

#include "data/crop.h"

/* Python's round(): halves go to the even neighbour. */
static int round_half_even(double v) { return (int)nearbyint(v); }

CropBox crop_random_resized(Rng *r, int h, int w, double scale_lo, double scale_hi, double ratio_lo,
                            double ratio_hi) {
    double area = (double)h * w, lr0 = log(ratio_lo), lr1 = log(ratio_hi);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (scale_lo + (scale_hi - scale_lo) * rng_uniform_double(r));
        double aspect = exp(lr0 + (lr1 - lr0) * rng_uniform_double(r));
        int cw = round_half_even(sqrt(target * aspect)), ch = round_half_even(sqrt(target / aspect));
        if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
            int y = (int)rng_below(r, (uint32_t)(h - ch + 1)), x = (int)rng_below(r, (uint32_t)(w - cw + 1));
            return (CropBox){y, x, ch, cw};
        }
    }
    /* fallback: the whole image, or its central part with the aspect ratio clamped */
    double in_ratio = (double)w / h;
    int cw, ch;
    if (in_ratio < ratio_lo) {
        cw = w;
        ch = round_half_even(cw / ratio_lo);
    } else if (in_ratio > ratio_hi) {
        ch = h;
        cw = round_half_even(ch * ratio_hi);
    } else {
        cw = w;
        ch = h;
    }
    if (ch < 1) ch = 1;
    if (cw < 1) cw = 1;
    return (CropBox){(h - ch) / 2, (w - cw) / 2, ch, cw};
}

CropBox crop_center(int h, int w, double ratio) {
    int s = h < w ? h : w, c = (int)(ratio * s);
    if (c < 1) c = 1;
    if (c > s) c = s;
    return (CropBox){(h - c) / 2, (w - c) / 2, c, c};
}
