/* cuda_kernels.h — launchers of the CUDA backend's own kernels (cuda_kernels.cu), callable from C.
 *
 * Every launcher queues work on `stream` and returns at once; pointers are device memory; layouts and
 * semantics are those of the matching BackendOps entry in backend/backend.h. Reductions are deterministic: a
 * fixed grid writes per-block partial sums (in double) that one pass adds in a fixed order, so the same inputs
 * give the same bits on every run. `part` is device scratch of at least cuda_partials_bytes(c) bytes. */
#ifndef CTRAIN_BACKEND_CUDA_KERNELS_H
#define CTRAIN_BACKEND_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of partial-sum scratch the reductions over c channels need. */
size_t cuda_partials_bytes(int c);

/* ---- batch norm: x, y, dx, dy [rows, c]; per-channel vectors [c] ---- */
void cuda_bn_forward_train(cudaStream_t stream, int64_t rows, int c, const float *x, const float *gamma,
                           const float *beta, float *y, float *save_mean, float *save_invstd, float *running_mean,
                           float *running_var, float momentum, float eps, double *part);
void cuda_bn_forward_eval(cudaStream_t stream, int64_t rows, int c, const float *x, const float *gamma,
                          const float *beta, const float *running_mean, const float *running_var, float eps, float *y);
void cuda_bn_backward(cudaStream_t stream, int64_t rows, int c, const float *x, const float *dy, const float *gamma,
                      const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                      double *part);

/* ---- elementwise over n floats ---- */
void cuda_relu_forward(cudaStream_t stream, int64_t n, const float *x, float *y);
void cuda_relu_backward(cudaStream_t stream, int64_t n, const float *y, const float *dy, float *dx);
void cuda_add(cudaStream_t stream, int64_t n, const float *a, const float *b, float *y);
void cuda_axpy(cudaStream_t stream, int64_t n, float alpha, const float *x, float *y);
void cuda_scale(cudaStream_t stream, int64_t n, float alpha, float *x);
void cuda_sigmoid_forward(cudaStream_t stream, int64_t n, const float *x, float *y);
void cuda_sigmoid_backward(cudaStream_t stream, int64_t n, const float *y, const float *dy, float *dx);
/* sum of x [n]^2 into *out (device, one double), through part */
void cuda_sum_squares(cudaStream_t stream, int64_t n, const float *x, double *part, double *out);

/* ---- pooling and model surgery ---- */
void cuda_maxpool_forward(cudaStream_t stream, const PoolDesc *d, const float *x, float *y, int32_t *argmax);
void cuda_maxpool_backward(cudaStream_t stream, const PoolDesc *d, const float *dy, const int32_t *argmax, float *dx);
void cuda_avgpool_forward(cudaStream_t stream, int n, int hw, int c, const float *x, float *y);
void cuda_avgpool_backward(cudaStream_t stream, int n, int hw, int c, const float *dy, float *dx);
void cuda_blur_forward(cudaStream_t stream, const PoolDesc *d, const float *x, float *y);
void cuda_blur_backward(cudaStream_t stream, const PoolDesc *d, const float *dy, float *dx);
void cuda_channel_scale_forward(cudaStream_t stream, int n, int hw, int c, const float *x, const float *s, float *y);
void cuda_channel_scale_backward(cudaStream_t stream, int n, int hw, int c, const float *x, const float *s,
                                 const float *dy, float *dx, float *ds);
void cuda_sample_scale(cudaStream_t stream, int n, int64_t inner, const float *s, const float *x, float *y);

/* ---- fully connected helpers (the GEMMs are cuBLAS) ---- */
/* y [n, cout] += b [cout] */
void cuda_add_bias(cudaStream_t stream, int n, int cout, const float *b, float *y);
/* db [cout] = sum over n of dy [n, cout] */
void cuda_bias_grad(cudaStream_t stream, int n, int cout, const float *dy, float *db);

/* ---- loss and optimizer ---- */
void cuda_loss_forward_backward(cudaStream_t stream, LossKind kind, int n, int c, const float *logits,
                                const float *target, float grad_scale, float *loss, float *dlogits);
void cuda_sgd_step(cudaStream_t stream, const SgdStep *s, int64_t n, float *p, const float *g, float *buf);

/* ---- layout and precision conversions for cuDNN / cuBLAS ---- */
/* dst [cout, k, k, cin] (KRSC) = src [cout, cin, k, k] (OIHW); bf16 when to_bf16, else fp32 */
void cuda_oihw_to_krsc(cudaStream_t stream, int cout, int cin, int k, const float *src, void *dst, int to_bf16);
/* dst [cout, cin, k, k] fp32 = src [cout, k, k, cin] (bf16 when from_bf16, else fp32) */
void cuda_krsc_to_oihw(cudaStream_t stream, int cout, int cin, int k, const void *src, float *dst, int from_bf16);
/* dst [n] bf16 = src [n] fp32 (round to nearest even) */
void cuda_to_bf16(cudaStream_t stream, int64_t n, const float *src, void *dst);
/* dst [n] fp32 = src [n] bf16 */
void cuda_from_bf16(cudaStream_t stream, int64_t n, const void *src, float *dst);

#ifdef __cplusplus
}
#endif

#endif
