/* crop.h — where a sample's crop comes from: torchvision's RandomResizedCrop parameters (which FFCV's
 * RandomResizedCropRGBImageDecoder reimplements) and FFCV's center crop with a ratio. Boxes are in source pixels. */
#ifndef CTRAIN_DATA_CROP_H
#define CTRAIN_DATA_CROP_H

#include "core/rng.h"

typedef struct CropBox {
    int y, x, h, w;   /* rows [y, y+h), columns [x, x+w) */
} CropBox;

/* torchvision RandomResizedCrop.get_params: up to 10 tries of a random area fraction in [scale_lo, scale_hi] and
 * log-uniform aspect ratio in [ratio_lo, ratio_hi]; otherwise the central crop with the ratio clamped. */
CropBox crop_random_resized(Rng *r, int h, int w, double scale_lo, double scale_hi, double ratio_lo,
                            double ratio_hi);
/* FFCV's get_center_crop: a square of side int(ratio * min(h, w)) in the middle (at least 1 pixel). */
CropBox crop_center(int h, int w, double ratio);

#endif
