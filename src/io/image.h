/* image.h — reading photos (JPEG through libjpeg-turbo, PNG through libpng) and preparing them for a model:
 * resize the shorter side (antialiased bilinear, like PIL), center crop, normalize. */
#ifndef CTRAIN_IO_IMAGE_H
#define CTRAIN_IO_IMAGE_H

#include <stdint.h>

#include "core/error.h"

/* An 8-bit image in memory. */
typedef struct Image {
    int h, w, c;        /* c = 1 (gray) or 3 (RGB) */
    uint8_t *pix;       /* [h, w, c] */
} Image;

/* Decodes a JPEG or PNG file (by its signature) into channels 1 or 3 (converting as PIL's convert does). */
int image_load(const char *path, int channels, Image *out, Error *err);
/* Frees the pixels. */
void image_free(Image *im);
/* Resizes so the shorter side is `resize` (antialiased bilinear, as PIL), takes the central crop x crop
 * square, and writes (v - mean[c]) / std[c] (0..255 units) to out [crop, crop, c]. */
int image_preprocess(const Image *im, int resize, int crop, const float *mean, const float *std, float *out,
                     Error *err);

#endif
