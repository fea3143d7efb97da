/* cuda_kernels.cu — the CUDA backend's own kernels: batch norm, elementwise ops, pooling, BlurPool's blur,
 * squeeze-excite and stochastic-depth scaling, the FC bias, the losses, the SGD update, and the layout/precision
 * conversions cuDNN needs. Written for correctness first: every kernel follows the reference backend
 * (backend/ref/ref_backend.c) expression by expression, accumulating in double where the reference does, and
 * every reduction has a fixed order (no atomics), so results repeat bit for bit. The elementwise float updates
 * use __fmul_rn/__fadd_rn so that nvcc cannot fuse them into FMAs: they then equal the reference exactly. */
#include <cuda_bf16.h>
#include <math.h>

#include "backend/cuda/cuda_kernels.h"

namespace {

constexpr int THREADS = 256;
constexpr int MAX_BLOCKS = 4096;
constexpr int MAX_ROW_BLOCKS = 512; /* the most row blocks a per-channel reduction splits its rows into */

/* Blocks for a grid-stride loop over n items. */
unsigned grid_for(int64_t n) {
    int64_t b = (n + THREADS - 1) / THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b < MAX_BLOCKS ? b : MAX_BLOCKS);
}

/* Row blocks of a per-channel reduction: a function of rows only, so the summation order is fixed. */
int row_blocks(int64_t rows) {
    int64_t b = rows / 256;
    if (b < 1) b = 1;
    return (int)(b < MAX_ROW_BLOCKS ? b : MAX_ROW_BLOCKS);
}

#define GRID_STRIDE(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); \
                               i += (int64_t)gridDim.x * blockDim.x)

/* The coordinates of flat index i of an [n, h, w, c] array (also [cout, k, k, cin] filters). */
struct Nhwc {
    int n, y, x, c;
};
__device__ Nhwc nhwc_of(int64_t i, int h, int w, int c) {
    Nhwc p;
    p.c = (int)(i % c);
    int64_t t = i / c;
    p.x = (int)(t % w);
    t /= w;
    p.y = (int)(t % h);
    p.n = (int)(t / h);
    return p;
}

/* ------------------------------------------------------------------ batch norm */

/* part[b, ch] (and part2[b, ch] when given) = sums over block b's rows of f(x[r, ch]) for every channel. */
__global__ void bn_sum_kernel(int64_t rows, int c, int nb, const float *x, const double *mean, double *part) {
    int b = blockIdx.x;
    int64_t r0 = rows * b / nb, r1 = rows * (b + 1) / nb;
    for (int ch = threadIdx.x; ch < c; ch += blockDim.x) {
        double s = 0;
        if (mean) {
            double m = mean[ch];
            for (int64_t r = r0; r < r1; r++) {
                double t = x[r * c + ch] - m;
                s += t * t;
            }
        } else {
            for (int64_t r = r0; r < r1; r++) s += x[r * c + ch];
        }
        part[(int64_t)b * c + ch] = s;
    }
}

/* stats[ch] = sum over the nb partials, in order. */
__global__ void sum_partials_kernel(int c, int nb, const double *part, double *stats) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double s = 0;
    for (int b = 0; b < nb; b++) s += part[(int64_t)b * c + ch];
    stats[ch] = s;
}

__global__ void bn_mean_kernel(int c, int64_t rows, double *sum_to_mean) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch < c) sum_to_mean[ch] = sum_to_mean[ch] / (double)rows;
}

__global__ void bn_finish_kernel(int64_t rows, int c, const double *mean, const double *sq, float *save_mean,
                                 float *save_invstd, float *running_mean, float *running_var, float momentum,
                                 float eps, double *invstd_out) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double var = sq[ch] / (double)rows;
    double invstd = 1.0 / sqrt(var + eps);
    save_mean[ch] = (float)mean[ch];
    save_invstd[ch] = (float)invstd;
    invstd_out[ch] = invstd;
    double unbiased = rows > 1 ? sq[ch] / (double)(rows - 1) : var;
    running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean[ch]);
    running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
}

__global__ void bn_apply_kernel(int64_t total, int c, const float *x, const double *mean, const double *invstd,
                                const float *gamma, const float *beta, float *y) {
    GRID_STRIDE(i, total) {
        int ch = (int)(i % c);
        y[i] = (float)((x[i] - mean[ch]) * invstd[ch] * gamma[ch] + beta[ch]);
    }
}

__global__ void bn_eval_kernel(int64_t total, int c, const float *x, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, float eps, float *y) {
    GRID_STRIDE(i, total) {
        int ch = (int)(i % c);
        double invstd = 1.0 / sqrt((double)running_var[ch] + eps);
        y[i] = (float)((x[i] - (double)running_mean[ch]) * invstd * gamma[ch] + beta[ch]);
    }
}

/* part[b, ch] = sum dy, part2[b, ch] = sum dy * xhat over block b's rows. */
__global__ void bn_back_sum_kernel(int64_t rows, int c, int nb, const float *x, const float *dy, const float *mean,
                                   const float *invstd, double *part, double *part2) {
    int b = blockIdx.x;
    int64_t r0 = rows * b / nb, r1 = rows * (b + 1) / nb;
    for (int ch = threadIdx.x; ch < c; ch += blockDim.x) {
        double m = mean[ch], is = invstd[ch], s = 0, s2 = 0;
        for (int64_t r = r0; r < r1; r++) {
            double g = dy[r * c + ch];
            s += g;
            s2 += g * (x[r * c + ch] - m) * is;
        }
        part[(int64_t)b * c + ch] = s;
        part2[(int64_t)b * c + ch] = s2;
    }
}

__global__ void bn_back_finish_kernel(int c, const double *sdy, const double *sdyx, float *dgamma, float *dbeta) {
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    dgamma[ch] = (float)sdyx[ch];
    dbeta[ch] = (float)sdy[ch];
}

__global__ void bn_back_dx_kernel(int64_t total, int64_t rows, int c, const float *x, const float *dy,
                                  const float *gamma, const float *mean, const float *invstd, const double *sdy,
                                  const double *sdyx, float *dx) {
    GRID_STRIDE(i, total) {
        int ch = (int)(i % c);
        double is = invstd[ch], k = gamma[ch] * is / (double)rows;
        double xhat = (x[i] - (double)mean[ch]) * is;
        dx[i] = (float)(k * ((double)rows * dy[i] - sdy[ch] - xhat * sdyx[ch]));
    }
}

/* ------------------------------------------------------------------ elementwise */

__global__ void relu_forward_kernel(int64_t n, const float *x, float *y) {
    GRID_STRIDE(i, n) y[i] = x[i] > 0 ? x[i] : 0.0f;
}
__global__ void relu_backward_kernel(int64_t n, const float *y, const float *dy, float *dx) {
    GRID_STRIDE(i, n) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}
__global__ void add_kernel(int64_t n, const float *a, const float *b, float *y) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(a[i], b[i]);
}
__global__ void axpy_kernel(int64_t n, float alpha, const float *x, float *y) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(y[i], __fmul_rn(alpha, x[i]));
}
__global__ void scale_kernel(int64_t n, float alpha, float *x) {
    GRID_STRIDE(i, n) x[i] = __fmul_rn(x[i], alpha);
}
__global__ void sigmoid_forward_kernel(int64_t n, const float *x, float *y) {
    GRID_STRIDE(i, n) y[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
}
__global__ void sigmoid_backward_kernel(int64_t n, const float *y, const float *dy, float *dx) {
    GRID_STRIDE(i, n) dx[i] = (float)((double)dy[i] * y[i] * (1.0 - (double)y[i]));
}

/* part[b] = sum of x^2 over block b's contiguous chunk, reduced in shared memory in a fixed tree. */
__global__ void sum_squares_kernel(int64_t n, int nb, const float *x, double *part) {
    __shared__ double s[THREADS];
    int b = blockIdx.x;
    int64_t i0 = n * b / nb, i1 = n * (b + 1) / nb;
    double acc = 0;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) acc += (double)x[i] * x[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int w = THREADS / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[b] = s[0];
}

/* ------------------------------------------------------------------ pooling */

__global__ void maxpool_forward_kernel(PoolDesc d, const float *x, float *y, int32_t *argmax) {
    int64_t total = (int64_t)d.n * d.oh * d.ow * d.c;
    GRID_STRIDE(o, total) {
        Nhwc q = nhwc_of(o, d.oh, d.ow, d.c);
        int ch = q.c, ox = q.x, oy = q.y, n = q.n;
        float best = -INFINITY;
        int32_t at = -1;
        for (int ky = 0; ky < d.k; ky++) {
            int iy = oy * d.stride - d.pad + ky;
            if (iy < 0 || iy >= d.h) continue;
            for (int kx = 0; kx < d.k; kx++) {
                int ix = ox * d.stride - d.pad + kx;
                if (ix < 0 || ix >= d.w) continue;
                float v = x[(((int64_t)n * d.h + iy) * d.w + ix) * d.c + ch];
                if (at < 0 || v > best || isnan(v)) {
                    best = v;
                    at = iy * d.w + ix;
                    if (isnan(v)) goto done;
                }
            }
        }
    done:
        y[o] = best;
        argmax[o] = at;
    }
}

/* Gathers, for every input element, the gradients of the outputs that picked it, in output order (the
 * reference's scatter order), so the float sums are the same. */
__global__ void maxpool_backward_kernel(PoolDesc d, const float *dy, const int32_t *argmax, float *dx) {
    int64_t total = (int64_t)d.n * d.h * d.w * d.c;
    GRID_STRIDE(i, total) {
        Nhwc q = nhwc_of(i, d.h, d.w, d.c);
        int ch = q.c, ix = q.x, iy = q.y, n = q.n;
        int oy0 = iy + d.pad - d.k + 1, oy1 = iy + d.pad, ox0 = ix + d.pad - d.k + 1, ox1 = ix + d.pad;
        oy0 = oy0 <= 0 ? 0 : (oy0 + d.stride - 1) / d.stride;
        ox0 = ox0 <= 0 ? 0 : (ox0 + d.stride - 1) / d.stride;
        oy1 = oy1 / d.stride;
        ox1 = ox1 / d.stride;
        if (oy1 > d.oh - 1) oy1 = d.oh - 1;
        if (ox1 > d.ow - 1) ox1 = d.ow - 1;
        int32_t me = iy * d.w + ix;
        float s = 0.0f;
        for (int oy = oy0; oy <= oy1; oy++)
            for (int ox = ox0; ox <= ox1; ox++) {
                int64_t o = (((int64_t)n * d.oh + oy) * d.ow + ox) * d.c + ch;
                if (argmax[o] == me) s = __fadd_rn(s, dy[o]);
            }
        dx[i] = s;
    }
}

__global__ void avgpool_forward_kernel(int n, int hw, int c, const float *x, float *y) {
    GRID_STRIDE(j, (int64_t)n * c) {
        int64_t i = j / c;
        int ch = (int)(j % c);
        double s = 0;
        for (int p = 0; p < hw; p++) s += x[(i * hw + p) * c + ch];
        y[j] = (float)(s / hw);
    }
}

__global__ void avgpool_backward_kernel(int n, int hw, int c, const float *dy, float *dx) {
    GRID_STRIDE(k, (int64_t)n * hw * c) {
        int ch = (int)(k % c);
        int64_t i = k / ((int64_t)hw * c);
        dx[k] = __fdiv_rn(dy[i * c + ch], (float)hw); /* IEEE division even under -prec-div=false */
    }
}

/* ------------------------------------------------------------------ model surgery */

__constant__ double BLUR_TAP[3] = {0.25, 0.5, 0.25};

__global__ void blur_forward_kernel(PoolDesc d, const float *x, float *y) {
    int64_t total = (int64_t)d.n * d.oh * d.ow * d.c;
    GRID_STRIDE(o, total) {
        Nhwc q = nhwc_of(o, d.oh, d.ow, d.c);
        int ch = q.c, ox = q.x, oy = q.y, n = q.n;
        double s = 0;
        for (int ky = 0; ky < 3; ky++) {
            int iy = oy * d.stride - 1 + ky;
            if (iy < 0 || iy >= d.h) continue;
            for (int kx = 0; kx < 3; kx++) {
                int ix = ox * d.stride - 1 + kx;
                if (ix < 0 || ix >= d.w) continue;
                s += BLUR_TAP[ky] * BLUR_TAP[kx] * x[(((int64_t)n * d.h + iy) * d.w + ix) * d.c + ch];
            }
        }
        y[o] = (float)s;
    }
}

__global__ void blur_backward_kernel(PoolDesc d, const float *dy, float *dx) {
    int64_t total = (int64_t)d.n * d.h * d.w * d.c;
    GRID_STRIDE(i, total) {
        Nhwc q = nhwc_of(i, d.h, d.w, d.c);
        int ch = q.c, ix = q.x, iy = q.y, n = q.n;
        double s = 0;
        for (int ky = 0; ky < 3; ky++) {
            int ty = iy + 1 - ky;
            if (ty < 0 || ty % d.stride || ty / d.stride >= d.oh) continue;
            for (int kx = 0; kx < 3; kx++) {
                int tx = ix + 1 - kx;
                if (tx < 0 || tx % d.stride || tx / d.stride >= d.ow) continue;
                s += BLUR_TAP[ky] * BLUR_TAP[kx] *
                     dy[(((int64_t)n * d.oh + ty / d.stride) * d.ow + tx / d.stride) * d.c + ch];
            }
        }
        dx[i] = (float)s;
    }
}

__global__ void channel_scale_forward_kernel(int n, int hw, int c, const float *x, const float *s, float *y) {
    GRID_STRIDE(k, (int64_t)n * hw * c) {
        int ch = (int)(k % c);
        int64_t i = k / ((int64_t)hw * c);
        y[k] = __fmul_rn(x[k], s[i * c + ch]);
    }
}

__global__ void channel_scale_dx_kernel(int n, int hw, int c, const float *s, const float *dy, float *dx) {
    GRID_STRIDE(k, (int64_t)n * hw * c) {
        int ch = (int)(k % c);
        int64_t i = k / ((int64_t)hw * c);
        dx[k] = __fmul_rn(dy[k], s[i * c + ch]);
    }
}

__global__ void channel_scale_ds_kernel(int n, int hw, int c, const float *x, const float *dy, float *ds) {
    GRID_STRIDE(j, (int64_t)n * c) {
        int64_t i = j / c;
        int ch = (int)(j % c);
        double acc = 0;
        for (int p = 0; p < hw; p++) {
            int64_t at = (i * hw + p) * c + ch;
            acc += (double)dy[at] * x[at];
        }
        ds[j] = (float)acc;
    }
}

__global__ void sample_scale_kernel(int n, int64_t inner, const float *s, const float *x, float *y) {
    GRID_STRIDE(k, (int64_t)n * inner) y[k] = __fmul_rn(x[k], s[k / inner]);
}

/* ------------------------------------------------------------------ fully connected */

__global__ void add_bias_kernel(int n, int cout, const float *b, float *y) {
    GRID_STRIDE(k, (int64_t)n * cout) y[k] = __fadd_rn(y[k], b[k % cout]);
}

__global__ void bias_grad_kernel(int n, int cout, const float *dy, float *db) {
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= cout) return;
    double s = 0;
    for (int i = 0; i < n; i++) s += dy[(int64_t)i * cout + o];
    db[o] = (float)s;
}

/* ------------------------------------------------------------------ loss */

__global__ void loss_kernel(LossKind kind, int n, int c, const float *logits, const float *target, float grad_scale,
                            float *loss, float *dlogits) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float *z = logits + (int64_t)i * c, *t = target + (int64_t)i * c;
    float *dz = dlogits ? dlogits + (int64_t)i * c : NULL;
    if (kind == LOSS_SOFT_CROSS_ENTROPY) {
        double mx = z[0];
        for (int j = 1; j < c; j++) mx = z[j] > mx ? z[j] : mx;
        double se = 0, st = 0, stz = 0;
        for (int j = 0; j < c; j++) {
            se += exp(z[j] - mx);
            st += t[j];
            stz += (double)t[j] * z[j];
        }
        double lse = mx + log(se);
        loss[i] = (float)(lse * st - stz);
        if (dz)
            for (int j = 0; j < c; j++) dz[j] = (float)((exp(z[j] - lse) * st - t[j]) * grad_scale);
    } else {
        double s = 0;
        for (int j = 0; j < c; j++) {
            double zj = z[j], tj = t[j];
            s += (zj > 0 ? zj : 0) - zj * tj + log1p(exp(-fabs(zj)));
            if (dz) dz[j] = (float)((1.0 / (1.0 + exp(-zj)) - tj) * grad_scale);
        }
        loss[i] = (float)s;
    }
}

/* ------------------------------------------------------------------ optimizer */

__global__ void sgd_kernel(SgdStep s, int64_t n, float *p, const float *g, float *buf) {
    const float mom = (float)s.momentum, damp1 = (float)(1.0 - s.dampening), wd = (float)s.weight_decay;
    /* __dmul_rn/__dadd_rn: nvcc would fuse 1 - a*b into an FMA, which the reference does not */
    const float neg_lr = (float)-s.lr, decay = (float)__dadd_rn(1.0, -__dmul_rn(s.decay_factor, s.weight_decay));
    GRID_STRIDE(i, n) {
        float d = g[i];
        if (!s.decoupled && wd != 0) d = __fadd_rn(d, __fmul_rn(wd, p[i]));
        if (mom != 0) {
            buf[i] = s.first_step ? d : __fadd_rn(__fmul_rn(buf[i], mom), __fmul_rn(damp1, d));
            d = s.nesterov ? __fadd_rn(d, __fmul_rn(mom, buf[i])) : buf[i];
        }
        if (s.decoupled && wd != 0) p[i] = __fmul_rn(p[i], decay);
        p[i] = __fadd_rn(p[i], __fmul_rn(neg_lr, d));
    }
}

/* ------------------------------------------------------------------ conversions */

__global__ void oihw_to_krsc_kernel(int cout, int cin, int k, const float *src, void *dst, int to_bf16) {
    int64_t total = (int64_t)cout * cin * k * k;
    GRID_STRIDE(j, total) {
        Nhwc q = nhwc_of(j, k, k, cin); /* KRSC: [cout, ky, kx, cin] */
        int ci = q.c, kx = q.x, ky = q.y, co = q.n;
        float v = src[(((int64_t)co * cin + ci) * k + ky) * k + kx];
        if (to_bf16) ((__nv_bfloat16 *)dst)[j] = __float2bfloat16_rn(v);
        else ((float *)dst)[j] = v;
    }
}

__global__ void krsc_to_oihw_kernel(int cout, int cin, int k, const void *src, float *dst, int from_bf16) {
    int64_t total = (int64_t)cout * cin * k * k;
    GRID_STRIDE(j, total) {
        Nhwc q = nhwc_of(j, k, k, cin); /* KRSC: [cout, ky, kx, cin] */
        int ci = q.c, kx = q.x, ky = q.y, co = q.n;
        float v = from_bf16 ? __bfloat162float(((const __nv_bfloat16 *)src)[j]) : ((const float *)src)[j];
        dst[(((int64_t)co * cin + ci) * k + ky) * k + kx] = v;
    }
}

__global__ void to_bf16_kernel(int64_t n, const float *src, __nv_bfloat16 *dst) {
    GRID_STRIDE(i, n) dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void from_bf16_kernel(int64_t n, const __nv_bfloat16 *src, float *dst) {
    GRID_STRIDE(i, n) dst[i] = __bfloat162float(src[i]);
}

unsigned channel_grid(int c) { return c > 0 ? (unsigned)((c + THREADS - 1) / THREADS) : 1u; }

} /* namespace */

/* ------------------------------------------------------------------ launchers */

extern "C" {

size_t cuda_partials_bytes(int c) {
    /* two [MAX_ROW_BLOCKS, c] partial arrays, then four [c] statistics */
    return ((size_t)2 * MAX_ROW_BLOCKS * (c > 0 ? c : 1) + 4 * (size_t)(c > 0 ? c : 1)) * sizeof(double);
}

void cuda_bn_forward_train(cudaStream_t stream, int64_t rows, int c, const float *x, const float *gamma,
                           const float *beta, float *y, float *save_mean, float *save_invstd, float *running_mean,
                           float *running_var, float momentum, float eps, double *part) {
    int nb = row_blocks(rows);
    double *mean = part + (size_t)2 * MAX_ROW_BLOCKS * c, *sq = mean + c, *invstd = sq + c;
    bn_sum_kernel<<<nb, THREADS, 0, stream>>>(rows, c, nb, x, NULL, part);
    sum_partials_kernel<<<channel_grid(c), THREADS, 0, stream>>>(c, nb, part, mean);
    bn_mean_kernel<<<channel_grid(c), THREADS, 0, stream>>>(c, rows, mean);
    bn_sum_kernel<<<nb, THREADS, 0, stream>>>(rows, c, nb, x, mean, part);
    sum_partials_kernel<<<channel_grid(c), THREADS, 0, stream>>>(c, nb, part, sq);
    bn_finish_kernel<<<channel_grid(c), THREADS, 0, stream>>>(rows, c, mean, sq, save_mean, save_invstd, running_mean,
                                                              running_var, momentum, eps, invstd);
    bn_apply_kernel<<<grid_for(rows * c), THREADS, 0, stream>>>(rows * c, c, x, mean, invstd, gamma, beta, y);
}

void cuda_bn_forward_eval(cudaStream_t stream, int64_t rows, int c, const float *x, const float *gamma,
                          const float *beta, const float *running_mean, const float *running_var, float eps, float *y) {
    bn_eval_kernel<<<grid_for(rows * c), THREADS, 0, stream>>>(rows * c, c, x, gamma, beta, running_mean, running_var,
                                                               eps, y);
}

void cuda_bn_backward(cudaStream_t stream, int64_t rows, int c, const float *x, const float *dy, const float *gamma,
                      const float *save_mean, const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                      double *part) {
    int nb = row_blocks(rows);
    double *part2 = part + (size_t)MAX_ROW_BLOCKS * c;
    double *sdy = part + (size_t)2 * MAX_ROW_BLOCKS * c, *sdyx = sdy + c;
    bn_back_sum_kernel<<<nb, THREADS, 0, stream>>>(rows, c, nb, x, dy, save_mean, save_invstd, part, part2);
    sum_partials_kernel<<<channel_grid(c), THREADS, 0, stream>>>(c, nb, part, sdy);
    sum_partials_kernel<<<channel_grid(c), THREADS, 0, stream>>>(c, nb, part2, sdyx);
    bn_back_finish_kernel<<<channel_grid(c), THREADS, 0, stream>>>(c, sdy, sdyx, dgamma, dbeta);
    bn_back_dx_kernel<<<grid_for(rows * c), THREADS, 0, stream>>>(rows * c, rows, c, x, dy, gamma, save_mean,
                                                                  save_invstd, sdy, sdyx, dx);
}

void cuda_relu_forward(cudaStream_t stream, int64_t n, const float *x, float *y) {
    relu_forward_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, x, y);
}
void cuda_relu_backward(cudaStream_t stream, int64_t n, const float *y, const float *dy, float *dx) {
    relu_backward_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, y, dy, dx);
}
void cuda_add(cudaStream_t stream, int64_t n, const float *a, const float *b, float *y) {
    add_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, a, b, y);
}
void cuda_axpy(cudaStream_t stream, int64_t n, float alpha, const float *x, float *y) {
    axpy_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, alpha, x, y);
}
void cuda_scale(cudaStream_t stream, int64_t n, float alpha, float *x) {
    scale_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, alpha, x);
}
void cuda_sigmoid_forward(cudaStream_t stream, int64_t n, const float *x, float *y) {
    sigmoid_forward_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, x, y);
}
void cuda_sigmoid_backward(cudaStream_t stream, int64_t n, const float *y, const float *dy, float *dx) {
    sigmoid_backward_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, y, dy, dx);
}

void cuda_sum_squares(cudaStream_t stream, int64_t n, const float *x, double *part, double *out) {
    int nb = row_blocks(n);
    sum_squares_kernel<<<nb, THREADS, 0, stream>>>(n, nb, x, part);
    sum_partials_kernel<<<1, THREADS, 0, stream>>>(1, nb, part, out);
}

void cuda_maxpool_forward(cudaStream_t stream, const PoolDesc *d, const float *x, float *y, int32_t *argmax) {
    maxpool_forward_kernel<<<grid_for((int64_t)d->n * d->oh * d->ow * d->c), THREADS, 0, stream>>>(*d, x, y, argmax);
}
void cuda_maxpool_backward(cudaStream_t stream, const PoolDesc *d, const float *dy, const int32_t *argmax, float *dx) {
    maxpool_backward_kernel<<<grid_for((int64_t)d->n * d->h * d->w * d->c), THREADS, 0, stream>>>(*d, dy, argmax, dx);
}
void cuda_avgpool_forward(cudaStream_t stream, int n, int hw, int c, const float *x, float *y) {
    avgpool_forward_kernel<<<grid_for((int64_t)n * c), THREADS, 0, stream>>>(n, hw, c, x, y);
}
void cuda_avgpool_backward(cudaStream_t stream, int n, int hw, int c, const float *dy, float *dx) {
    avgpool_backward_kernel<<<grid_for((int64_t)n * hw * c), THREADS, 0, stream>>>(n, hw, c, dy, dx);
}
void cuda_blur_forward(cudaStream_t stream, const PoolDesc *d, const float *x, float *y) {
    blur_forward_kernel<<<grid_for((int64_t)d->n * d->oh * d->ow * d->c), THREADS, 0, stream>>>(*d, x, y);
}
void cuda_blur_backward(cudaStream_t stream, const PoolDesc *d, const float *dy, float *dx) {
    blur_backward_kernel<<<grid_for((int64_t)d->n * d->h * d->w * d->c), THREADS, 0, stream>>>(*d, dy, dx);
}
void cuda_channel_scale_forward(cudaStream_t stream, int n, int hw, int c, const float *x, const float *s, float *y) {
    channel_scale_forward_kernel<<<grid_for((int64_t)n * hw * c), THREADS, 0, stream>>>(n, hw, c, x, s, y);
}
void cuda_channel_scale_backward(cudaStream_t stream, int n, int hw, int c, const float *x, const float *s,
                                 const float *dy, float *dx, float *ds) {
    if (dx) channel_scale_dx_kernel<<<grid_for((int64_t)n * hw * c), THREADS, 0, stream>>>(n, hw, c, s, dy, dx);
    if (ds) channel_scale_ds_kernel<<<grid_for((int64_t)n * c), THREADS, 0, stream>>>(n, hw, c, x, dy, ds);
}
void cuda_sample_scale(cudaStream_t stream, int n, int64_t inner, const float *s, const float *x, float *y) {
    sample_scale_kernel<<<grid_for((int64_t)n * inner), THREADS, 0, stream>>>(n, inner, s, x, y);
}

void cuda_add_bias(cudaStream_t stream, int n, int cout, const float *b, float *y) {
    add_bias_kernel<<<grid_for((int64_t)n * cout), THREADS, 0, stream>>>(n, cout, b, y);
}
void cuda_bias_grad(cudaStream_t stream, int n, int cout, const float *dy, float *db) {
    bias_grad_kernel<<<channel_grid(cout), THREADS, 0, stream>>>(n, cout, dy, db);
}

void cuda_loss_forward_backward(cudaStream_t stream, LossKind kind, int n, int c, const float *logits,
                                const float *target, float grad_scale, float *loss, float *dlogits) {
    loss_kernel<<<channel_grid(n), THREADS, 0, stream>>>(kind, n, c, logits, target, grad_scale, loss, dlogits);
}

void cuda_sgd_step(cudaStream_t stream, const SgdStep *s, int64_t n, float *p, const float *g, float *buf) {
    sgd_kernel<<<grid_for(n), THREADS, 0, stream>>>(*s, n, p, g, buf);
}

void cuda_oihw_to_krsc(cudaStream_t stream, int cout, int cin, int k, const float *src, void *dst, int to_bf16) {
    oihw_to_krsc_kernel<<<grid_for((int64_t)cout * cin * k * k), THREADS, 0, stream>>>(cout, cin, k, src, dst, to_bf16);
}
void cuda_krsc_to_oihw(cudaStream_t stream, int cout, int cin, int k, const void *src, float *dst, int from_bf16) {
    krsc_to_oihw_kernel<<<grid_for((int64_t)cout * cin * k * k), THREADS, 0, stream>>>(cout, cin, k, src, dst,
                                                                                      from_bf16);
}
void cuda_to_bf16(cudaStream_t stream, int64_t n, const float *src, void *dst) {
    to_bf16_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, src, (__nv_bfloat16 *)dst);
}
void cuda_from_bf16(cudaStream_t stream, int64_t n, const void *src, float *dst) {
    from_bf16_kernel<<<grid_for(n), THREADS, 0, stream>>>(n, (const __nv_bfloat16 *)src, dst);
}

} /* extern "C" */
