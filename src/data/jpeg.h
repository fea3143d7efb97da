/* jpeg.h — JPEG decoding and encoding for the data loader and the .beton writer, through libjpeg-turbo's
 * TurboJPEG API (the decoder FFCV uses).
 *
 * Decoding matches FFCV's libffcv when fast = true (TJFLAG_FASTDCT: the fast integer IDCT, fancy upsampling,
 * tightly packed RGB). Scaled decoding (1/2, 1/4, 1/8) happens in the DCT domain and is much cheaper than a
 * full decode followed by a downscale. A stream that cannot be decoded completely (truncated, or entropy-coded
 * data corrupt) is an error; warnings after which the image is still whole (extraneous bytes between markers,
 * unknown JFIF revision, ...) are not. Encoding matches OpenCV's imencode defaults: baseline, 4:2:0, accurate
 * DCT, no optimized Huffman tables. jpeg_decode_crop decodes only the rows and (iMCU-aligned) columns a crop
 * needs, through libjpeg's jpeg_skip_scanlines/jpeg_crop_scanline, with the same pixels as a full decode. */
#ifndef CTRAIN_DATA_JPEG_H
#define CTRAIN_DATA_JPEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Decoder and encoder state for one thread (TurboJPEG handles, a libjpeg decompressor); not thread-safe, cheap
 * to keep. */
typedef struct JpegCodec JpegCodec;

/* A new codec, or NULL when out of memory. */
JpegCodec *jpeg_codec_new(void);
/* Frees the codec; NULL is fine. */
void jpeg_codec_free(JpegCodec *c);

/* Reads the size of a JPEG stream from its header. */
int jpeg_header(JpegCodec *c, const uint8_t *data, size_t size, int *w, int *h, Error *err);

/* The largest reduction 1/d, d in {1, 2, 4, 8} (the factors libjpeg-turbo's DCT scaling supports), such that a
 * crop of crop_w x crop_h source pixels still covers at least out_w x out_h pixels after scaling
 * (crop_w >= d*out_w and crop_h >= d*out_h); 1 when none fits. */
int jpeg_pick_denom(int crop_w, int crop_h, int out_w, int out_h);

/* Decodes at scale 1/denom (denom in {1, 2, 4, 8}) into out [*h, *w, channels] uint8 (channels 3 = RGB,
 * 1 = gray; either from a color or a gray JPEG), whose capacity is cap bytes. *w and *h are the scaled sizes,
 * TJSCALED (rounded up). fast: the fast integer IDCT (FFCV's choice), else the accurate one. */
int jpeg_decode(JpegCodec *c, const uint8_t *data, size_t size, int denom, int channels, bool fast, uint8_t *out,
                size_t cap, int *w, int *h, Error *err);

/* Like jpeg_decode, but decodes only what the crop rows [y0, y0+ch) x columns [x0, x0+cw) of the image scaled by
 * 1/denom need (coordinates in that scaled image, of TJSCALED size, and inside it): out [ch, *ow, channels] holds
 * scaled columns [*ox, *ox + *ow), a range that contains the crop (widened to whole iMCUs plus a margin), so
 * the crop is out's window rows [0, ch) x cols [x0 - *ox, x0 - *ox + cw). Its pixels equal the same pixels of
 * jpeg_decode with the same denom, channels and fast (fancy upsampling included). cap >= (cw + 64) * ch *
 * channels always suffices. Rows above the crop are entropy-decoded but not reconstructed, rows below and
 * columns outside are skipped, so a crop costs roughly its share of the image plus the entropy decoding.
 * Damage is reported as by jpeg_decode when it lies in the part decoded (the rows down to the crop's last);
 * a stream cut or garbled only below the crop decodes without error. */
int jpeg_decode_crop(JpegCodec *c, const uint8_t *data, size_t size, int denom, int channels, bool fast, int x0,
                     int y0, int cw, int ch, uint8_t *out, size_t cap, int *ox, int *ow, Error *err);

/* Encodes rgb [h, w, 3] uint8 as a baseline JPEG with 4:2:0 chroma subsampling at quality 1..100, as
 * OpenCV's imencode does; *out is malloc'ed (free it), *size its length. */
int jpeg_encode(JpegCodec *c, const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *size,
                Error *err);

#endif
