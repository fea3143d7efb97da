/* cpu_conv.h — the CPU backend's convolutions through oneDNN (private to src/backend/cpu/).
 *
 * cpu_conv.c is the only file that includes oneDNN. A CpuConv holds the engine, the stream and one workspace
 * (oneDNN scratchpads and the weights in the primitives' own layouts) that every plan of this backend
 * shares: plans grow it when they are made, calls never allocate. Calls on one CpuConv therefore run one at
 * a time, like work queued on one GPU stream. Free every plan before the CpuConv. */
#ifndef CTRAIN_BACKEND_CPU_CONV_H
#define CTRAIN_BACKEND_CPU_CONV_H

#include <stdbool.h>

#include "backend/backend.h"

typedef struct CpuConv CpuConv;

/* Creates the oneDNN engine and stream; oneDNN runs its kernels on threads OpenMP threads. */
int cpu_conv_create(int threads, CpuConv **out, Error *err);
/* Frees it (NULL is fine); every plan made from it must be freed first. */
void cpu_conv_destroy(CpuConv *cc);

/* True when oneDNN finds native bf16 dot products (AVX512_BF16 or AMX) on this CPU. */
bool cpu_conv_bf16_native(void);

/* True when oneDNN runs bf16 convolutions on AMX tiles on this CPU (then no pass runs bf16 Winograd). */
bool cpu_conv_amx(void);

/* The channel block of oneDNN's blocked activation layout its kernels prefer on this CPU: 16 with AVX-512, else 8. */
int cpu_conv_vector_block(void);

/* The most channels (in or out) of a 3x3 stride-1 fp32 convolution that a plan with winograd runs in winograd.c
 * on this CPU: 512, or 128 on an Intel CPU with AVX-512 (see cpu_conv.c, wino_tile). */
int cpu_conv_wino_widest(void);

/* Makes the forward, backward-data and backward-weights primitives for d, with their weight reorders; with
 * bf16 they read x, dy and w in bf16 (cast copies, or the caller's own where d->t stores them bf16) and accumulate
 * in fp32, writing y and dx in d->t's storage and dw in fp32 (without bf16, d->t must be all fp32). block: the
 * caller's activations with a multiple of block channels are nChw<block>c (0: all NHWC; backend.h). winograd:
 * a 3x3 stride-1 convolution with 32 to cpu_conv_wino_widest() channels in and out runs winograd.c instead
 * (F(4x4, 3x3); on AVX2 F(2x2, 3x3) with 512), in fp32. */
int cpu_conv_plan(CpuConv *cc, const ConvDesc *d, bool bf16, int block, bool winograd, void **plan, Error *err);
/* Frees a plan (NULL is fine). */
void cpu_conv_plan_free(void *plan);

/* The layouts plan's oneDNN primitives run on: "caller's"; "NHWC" (input and output differ in layout, or a
 * kernel oneDNN offers for the caller's is far too slow: both reordered); or "NCHW input" (a plan without
 * backward data, ConvDesc.no_dx, whose input is NHWC and output blocked: ResNet's stem reads an NCHW copy of
 * its 3-channel input and writes its blocked output itself). Winograd plans run no primitives: "caller's". */
const char *cpu_conv_layouts(const void *plan);
/* oneDNN's name of the implementation a pass of plan runs (pass 0 forward, 1 backward data, 2 backward
 * weights), e.g. "jit_1x1:avx2" or "x64:gemm:jit", or winograd.c's "winograd_f4x4_3x3:avx2" /
 * "winograd_f2x2_3x3:avx2". */
const char *cpu_conv_impl(const void *plan, int pass);

/* y [n, oh, ow, cout] = conv(x [n, h, w, cin], w [cout, cin, k, k]) */
int cpu_conv_forward(void *plan, const void *x, const float *w, void *y, Error *err);
/* dx [n, h, w, cin] from dy [n, oh, ow, cout] and w [cout, cin, k, k] */
int cpu_conv_backward_data(void *plan, const void *dy, const float *w, void *dx, Error *err);
/* dw [cout, cin, k, k] from x [n, h, w, cin] and dy [n, oh, ow, cout] */
int cpu_conv_backward_weights(void *plan, const void *x, const void *dy, float *dw, Error *err);

#endif
