/* winograd_bf16.h — 3x3, stride 1, pad 1 convolutions of a bf16 plan by Winograd's F(2x2, 3x3) with bf16 dot
 * products (private to src/backend/cpu/; AVX-512 with AVX512_BF16: call only where cpu_conv_bf16_native()).
 *
 * The same products as winograd.c's F(2x2) — y = A^T [(G g G^T) . (B^T d B)] A forward and backward data,
 * dg = G^T [sum over tiles of (B^T d B) . (A dy A^T)] G backward weights — with the transformed tiles (V, Z) and
 * weights (U) computed in fp32 and rounded to bf16 (nearest, ties to even) before the 16 per-tile products,
 * which vdpbf16ps sums in fp32; dU and dg stay fp32. F(2x2)'s transforms have coefficients 0, +-1 and +-1/2,
 * so rounding V, U and Z costs 1.5 to 2.2 times the error of a direct convolution on bf16 inputs
 * (docs/performance.md, "bf16 Winograd"); F(4x4)'s coefficients make it about 9 times, so there is no bf16
 * F(4x4).
 *
 * Activations are [n, c/B, h, w, B] with B = the tensor's block (B = c is NHWC), B a multiple of 16, each
 * stored fp32 or bf16 as the ConvDesc's ActTypes say. */
#ifndef CTRAIN_BACKEND_CPU_WINOGRAD_BF16_H
#define CTRAIN_BACKEND_CPU_WINOGRAD_BF16_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"

/* True when d is a convolution this file computes: 3x3, stride 1, pad 1, cin and cout multiples of 32, blocks
 * bx (of x, dx) and by (of y, dy) multiples of 16 that divide their channel counts. */
bool wino16_supported(const ConvDesc *d, int bx, int by);

/* Bytes of workspace forward and backward data need at most on threads threads, and with weights backward
 * weights too. */
size_t wino16_work_bytes(const ConvDesc *d, bool weights, int threads);

/* y [n, h, w, cout] (stored as d->t.y) = conv(x [n, h, w, cin] (d->t.x), w [cout, cin, 3, 3]); work:
 * wino16_work_bytes, 64-byte aligned. */
void wino16_forward(const ConvDesc *d, int bx, int by, const void *x, const float *w, void *y, void *work,
                    int threads);
/* dx [n, h, w, cin] (d->t.dx) from dy [n, h, w, cout] (d->t.dy) and w [cout, cin, 3, 3]. */
void wino16_backward_data(const ConvDesc *d, int bx, int by, const void *dy, const float *w, void *dx, void *work,
                          int threads);
/* dw [cout, cin, 3, 3] (fp32) from x [n, h, w, cin] (d->t.x) and dy [n, h, w, cout] (d->t.dy). */
void wino16_backward_weights(const ConvDesc *d, int bx, int by, const void *x, const void *dy, float *dw,
                             void *work, int threads);

#endif
