/* winograd.h — 3x3, stride 1, pad 1 convolutions by Winograd's F(2x2, 3x3) on the CPU backend's activations
 * (private to src/backend/cpu/; AVX2 + FMA).
 *
 * Each 2x2 output tile is computed from a 4x4 input tile with 16 multiplies per (cin, cout) pair instead of 36:
 * y = A^T [(G g G^T) . (B^T d B)] A. Forward and backward data are that product (backward data on the
 * flipped, transposed weights); backward weights is its transpose, dg = G^T [sum over tiles of
 * (B^T d B) . (A dy A^T)] G. The 16 per-tile products are 16 small GEMMs run on chunks of tiles that stay in
 * the core's cache. Results differ from a direct convolution by rounding only (the transforms' coefficients
 * are 0, +-1 and +-1/2); the tests compare them with the reference backend.
 *
 * Activations are [n, c/B, h, w, B] with B = the tensor's block (B = c is NHWC), B a multiple of 8. */
#ifndef CTRAIN_BACKEND_CPU_WINOGRAD_H
#define CTRAIN_BACKEND_CPU_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"

/* True when d is a convolution this file computes: 3x3, stride 1, pad 1, cin and cout multiples of 16,
 * blocks bx (of x, dx) and by (of y, dy) multiples of 8 that divide their channel counts. */
bool wino_supported(const ConvDesc *d, int bx, int by);

/* Bytes of workspace the three passes need at most on threads threads. */
size_t wino_work_bytes(const ConvDesc *d, int threads);

/* y [n, h, w, cout] = conv(x [n, h, w, cin], w [cout, cin, 3, 3]); work: wino_work_bytes, 64-byte aligned. */
void wino_forward(const ConvDesc *d, int bx, int by, const float *x, const float *w, float *y, void *work,
                  int threads);
/* dx [n, h, w, cin] from dy [n, h, w, cout] and w [cout, cin, 3, 3]. */
void wino_backward_data(const ConvDesc *d, int bx, int by, const float *dy, const float *w, float *dx,
                        void *work, int threads);
/* dw [cout, cin, 3, 3] from x [n, h, w, cin] and dy [n, h, w, cout]. */
void wino_backward_weights(const ConvDesc *d, int bx, int by, const float *x, const float *dy, float *dw,
                           void *work, int threads);

#endif
