/* winograd.h — 3x3, stride 1, pad 1 convolutions by Winograd's minimal filtering on the CPU backend's
 * activations (private to src/backend/cpu/; AVX2 + FMA).
 *
 * Each m x m output tile (m = 2 or 4) is computed from an a x a input tile (a = m + 2) with a * a multiplies
 * per (cin, cout) pair instead of 9 m * m: 16 instead of 36 for F(2x2, 3x3), 36 instead of 144 for F(4x4, 3x3).
 * y = A^T [(G g G^T) . (B^T d B)] A. Forward and backward data are that product (backward data on the
 * flipped, transposed weights); backward weights is its transpose, dg = G^T [sum over tiles of
 * (B^T d B) . (A dy A^T)] G. The a * a per-tile products are small GEMMs run on chunks of tiles that stay in
 * the core's cache. Results differ from a direct convolution by rounding only. F(2x2, 3x3)'s coefficients are
 * 0, +-1 and +-1/2 and its rounding is that of a direct convolution; F(4x4, 3x3)'s reach 8 and 1/24, and its
 * error is a few times larger (docs/performance.md gives the measured sizes); the tests compare both with the
 * reference backend.
 *
 * Activations are [n, c/B, h, w, B] with B = the tensor's block (B = c is NHWC), B a multiple of 8. */
#ifndef CTRAIN_BACKEND_CPU_WINOGRAD_H
#define CTRAIN_BACKEND_CPU_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"

/* True when d is a convolution this file computes with m x m output tiles: m 2 or 4, 3x3, stride 1, pad 1,
 * cin and cout multiples of 16, blocks bx (of x, dx) and by (of y, dy) multiples of 8 that divide their
 * channel counts. */
bool wino_supported(const ConvDesc *d, int m, int bx, int by);

/* Bytes of workspace the three passes need at most on threads threads. */
size_t wino_work_bytes(const ConvDesc *d, int m, int threads);

/* y [n, h, w, cout] = conv(x [n, h, w, cin], w [cout, cin, 3, 3]); work: wino_work_bytes, 64-byte aligned. */
void wino_forward(const ConvDesc *d, int m, int bx, int by, const float *x, const float *w, float *y, void *work,
                  int threads);
/* dx [n, h, w, cin] from dy [n, h, w, cout] and w [cout, cin, 3, 3]. */
void wino_backward_data(const ConvDesc *d, int m, int bx, int by, const float *dy, const float *w, float *dx,
                        void *work, int threads);
/* dw [cout, cin, 3, 3] from x [n, h, w, cin] and dy [n, h, w, cout]. */
void wino_backward_weights(const ConvDesc *d, int m, int bx, int by, const float *x, const float *dy, float *dw,
                           void *work, int threads);

/* The pixels of a tile whose first pixel is (h, w) of an image [ih, iw] (outside it where the tile reaches past
 * its edge): pixel (k, j) of the tile lies at + k row + j col elements from a channel group's pixel (0, 0),
 * inside the image when wino_pixel_in says so. The transforms of winograd.c and winograd_bf16.c compute each
 * pixel from these (a table of 16 or 36 offsets and flags filled per tile cost more: docs/performance.md). */
typedef struct WinoPixels {
    int h, w, ih, iw;
    ptrdiff_t at, row, col;
} WinoPixels;

/* The pixels from (h, w) of an image of d's input size in an activation with block b. */
static inline WinoPixels wino_pixels(const ConvDesc *d, int b, int h, int w) {
    return (WinoPixels){h, w, d->h, d->w, ((ptrdiff_t)h * d->w + w) * b, (ptrdiff_t)d->w * b, b};
}

static inline bool wino_pixel_in(const WinoPixels *px, int k, int j) {
    return (unsigned)(px->h + k) < (unsigned)px->ih && (unsigned)(px->w + j) < (unsigned)px->iw;
}

static inline ptrdiff_t wino_pixel_off(const WinoPixels *px, int k, int j) {
    return px->at + k * px->row + j * px->col;
}

/* Helpers winograd_bf16.c shares. The tiles [*lo, *hi) of the calling OpenMP thread: an equal share of tiles,
 * in order. */
void wino_thread_tiles(int tiles, int *lo, int *hi);
/* Inside a parallel region, after a barrier: du0 [n] += the other threads' sums rest [threads - 1][n], each
 * thread adding its share of the elements. */
void wino_sum_threads(float *du0, const float *rest, size_t n);
/* dw [cout, cin, 3, 3] = G^T dU G from the summed products dU [a * a][cin][cout] of m x m tiles (also the last
 * step of winograd_bf16.c's backward weights). */
void wino_weights_untransform(const ConvDesc *d, int m, const float *du, float *dw, int threads);

#endif
