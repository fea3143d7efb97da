/* ref_backend.c — the reference implementation of every backend operation.
 *
 * Plain loops that follow the textbook / PyTorch definitions one to one, single-threaded, accumulating in
 * double. Never optimize this file: it is the oracle the fast backends are tested against, and it is itself
 * tested by finite differences and against PyTorch-written fixtures. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ref/ref_backend.h"

/* ---------------------------------------------------------------- memory */

static void *ref_alloc(Backend *be, size_t bytes) {
    (void)be;
    size_t sz = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, sz ? sz : 64);
    if (p) memset(p, 0, sz ? sz : 64);
    return p;
}
static void ref_free(Backend *be, void *p) { (void)be; free(p); }
static void ref_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
}
static void ref_zero(Backend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes) memset(p, 0, bytes);
}
static int ref_sync(Backend *be, Error *err) { (void)be; (void)err; return 0; }

/* ---------------------------------------------------------------- convolution */

static int ref_conv_plan(Backend *be, const ConvDesc *d, void **plan, Error *err) {
    if (conv_desc_check_f32(d, "the ref backend", err)) return -1;
    ConvDesc *p = malloc(sizeof *p);
    if (!p) return error_set(err, "out of memory");
    *p = *d;
    *plan = p;
    return 0;
}
static void ref_conv_plan_free(Backend *be, void *plan) { free(plan); }

static int ref_conv_forward(Backend *be, void *plan, const void *xv, const float *w, void *yv, Error *err) {
    const ConvDesc *d = plan;
    const float *x = xv;
    float *y = yv;
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int co = 0; co < d->cout; co++) {
                    double s = 0;
                    for (int ky = 0; ky < d->k; ky++) {
                        int iy = oy * d->stride - d->pad + ky;
                        if (iy < 0 || iy >= d->h) continue;
                        for (int kx = 0; kx < d->k; kx++) {
                            int ix = ox * d->stride - d->pad + kx;
                            if (ix < 0 || ix >= d->w) continue;
                            const float *xp = x + (((size_t)n * d->h + iy) * d->w + ix) * d->cin;
                            for (int ci = 0; ci < d->cin; ci++)
                                s += (double)xp[ci] * w[(((size_t)co * d->cin + ci) * d->k + ky) * d->k + kx];
                        }
                    }
                    y[(((size_t)n * d->oh + oy) * d->ow + ox) * d->cout + co] = (float)s;
                }
    return 0;
}

static int ref_conv_backward_data(Backend *be, void *plan, const void *dyv, const float *w, void *dxv,
                                  Error *err) {
    const ConvDesc *d = plan;
    const float *dy = dyv;
    float *dx = dxv;
    size_t nx = (size_t)d->n * d->h * d->w * d->cin;
    double *acc = calloc(nx, sizeof *acc);
    if (!acc) return error_set(err, "out of memory");
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int co = 0; co < d->cout; co++) {
                    double g = dy[(((size_t)n * d->oh + oy) * d->ow + ox) * d->cout + co];
                    for (int ky = 0; ky < d->k; ky++) {
                        int iy = oy * d->stride - d->pad + ky;
                        if (iy < 0 || iy >= d->h) continue;
                        for (int kx = 0; kx < d->k; kx++) {
                            int ix = ox * d->stride - d->pad + kx;
                            if (ix < 0 || ix >= d->w) continue;
                            double *ap = acc + (((size_t)n * d->h + iy) * d->w + ix) * d->cin;
                            for (int ci = 0; ci < d->cin; ci++)
                                ap[ci] += g * w[(((size_t)co * d->cin + ci) * d->k + ky) * d->k + kx];
                        }
                    }
                }
    for (size_t i = 0; i < nx; i++) dx[i] = (float)acc[i];
    free(acc);
    return 0;
}

static int ref_conv_backward_weights(Backend *be, void *plan, const void *xv, const void *dyv, float *dw,
                                     Error *err) {
    const ConvDesc *d = plan;
    const float *x = xv, *dy = dyv;
    for (int co = 0; co < d->cout; co++)
        for (int ci = 0; ci < d->cin; ci++)
            for (int ky = 0; ky < d->k; ky++)
                for (int kx = 0; kx < d->k; kx++) {
                    double s = 0;
                    for (int n = 0; n < d->n; n++)
                        for (int oy = 0; oy < d->oh; oy++) {
                            int iy = oy * d->stride - d->pad + ky;
                            if (iy < 0 || iy >= d->h) continue;
                            for (int ox = 0; ox < d->ow; ox++) {
                                int ix = ox * d->stride - d->pad + kx;
                                if (ix < 0 || ix >= d->w) continue;
                                s += (double)x[(((size_t)n * d->h + iy) * d->w + ix) * d->cin + ci] *
                                     dy[(((size_t)n * d->oh + oy) * d->ow + ox) * d->cout + co];
                            }
                        }
                    dw[(((size_t)co * d->cin + ci) * d->k + ky) * d->k + kx] = (float)s;
                }
    return 0;
}

/* ---------------------------------------------------------------- batch norm */

static void ref_bn_forward_train(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                                 const float *beta, float *y, float *save_mean, float *save_invstd,
                                 float *running_mean, float *running_var, float momentum, float eps) {
    int64_t rows = (int64_t)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int64_t r = 0; r < rows; r++) s += x[r * c + ch];
        double mean = s / (double)rows;
        double v = 0;
        for (int64_t r = 0; r < rows; r++) {
            double t = x[r * c + ch] - mean;
            v += t * t;
        }
        double var = v / (double)rows;
        double invstd = 1.0 / sqrt(var + eps);
        for (int64_t r = 0; r < rows; r++)
            y[r * c + ch] = (float)((x[r * c + ch] - mean) * invstd * gamma[ch] + beta[ch]);
        save_mean[ch] = (float)mean;
        save_invstd[ch] = (float)invstd;
        double unbiased = rows > 1 ? v / (double)(rows - 1) : var;
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * mean);
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
}

static void ref_bn_forward_eval(Backend *be, int n, int64_t hw, int c, const float *x, const float *gamma,
                                const float *beta, const float *running_mean, const float *running_var,
                                float eps, float *y) {
    int64_t rows = (int64_t)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double invstd = 1.0 / sqrt((double)running_var[ch] + eps);
        for (int64_t r = 0; r < rows; r++)
            y[r * c + ch] = (float)((x[r * c + ch] - (double)running_mean[ch]) * invstd * gamma[ch] + beta[ch]);
    }
}

static void ref_bn_backward(Backend *be, int n, int64_t hw, int c, const float *x, const float *dy,
                            const float *gamma, const float *save_mean, const float *save_invstd, float *dx,
                            float *dgamma, float *dbeta) {
    int64_t rows = (int64_t)n * hw;
    for (int ch = 0; ch < c; ch++) {
        double mean = save_mean[ch], invstd = save_invstd[ch];
        double sdy = 0, sdyx = 0;
        for (int64_t r = 0; r < rows; r++) {
            double g = dy[r * c + ch];
            sdy += g;
            sdyx += g * (x[r * c + ch] - mean) * invstd;
        }
        dgamma[ch] = (float)sdyx;
        dbeta[ch] = (float)sdy;
        double k = gamma[ch] * invstd / (double)rows;
        for (int64_t r = 0; r < rows; r++) {
            double xhat = (x[r * c + ch] - mean) * invstd;
            dx[r * c + ch] = (float)(k * ((double)rows * dy[r * c + ch] - sdy - xhat * sdyx));
        }
    }
}

/* ---------------------------------------------------------------- elementwise */

static void ref_relu_forward(Backend *be, int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
}
static void ref_relu_backward(Backend *be, int64_t n, const float *y, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}
static void ref_relu_backward_add(Backend *be, int64_t n, ActType yt, const void *y, const float *dy,
                                  const float *dy2, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float d = dy[i] + dy2[i];
        float v = yt == ACT_BF16 ? bf16_widen(((const uint16_t *)y)[i]) : ((const float *)y)[i];
        dx[i] = v > 0 ? d : 0.0f;
    }
}
static void ref_add(Backend *be, int64_t n, const float *a, const float *b, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
static void ref_axpy(Backend *be, int64_t n, float alpha, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

/* ---------------------------------------------------------------- pooling */

static void ref_maxpool_forward(Backend *be, const PoolDesc *d, const float *x, float *y, int32_t *argmax) {
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int ch = 0; ch < d->c; ch++) {
                    float best = -INFINITY;
                    int32_t at = -1;
                    for (int ky = 0; ky < d->k; ky++) {
                        int iy = oy * d->stride - d->pad + ky;
                        if (iy < 0 || iy >= d->h) continue;
                        for (int kx = 0; kx < d->k; kx++) {
                            int ix = ox * d->stride - d->pad + kx;
                            if (ix < 0 || ix >= d->w) continue;
                            float v = x[(((size_t)n * d->h + iy) * d->w + ix) * d->c + ch];
                            if (at < 0 || v > best || isnan(v)) {
                                best = v;
                                at = iy * d->w + ix;
                                if (isnan(v)) goto done;
                            }
                        }
                    }
                done:;
                    size_t o = (((size_t)n * d->oh + oy) * d->ow + ox) * d->c + ch;
                    y[o] = best;
                    argmax[o] = at;
                }
}

static void ref_maxpool_backward(Backend *be, const PoolDesc *d, const float *dy, const int32_t *argmax,
                                 float *dx) {
    memset(dx, 0, (size_t)d->n * d->h * d->w * d->c * sizeof *dx);
    for (int n = 0; n < d->n; n++)
        for (int o = 0; o < d->oh * d->ow; o++)
            for (int ch = 0; ch < d->c; ch++) {
                size_t oi = ((size_t)n * d->oh * d->ow + o) * d->c + ch;
                dx[((size_t)n * d->h * d->w + argmax[oi]) * d->c + ch] += dy[oi];
            }
}

static void ref_avgpool_forward(Backend *be, int n, int hw, int c, const float *x, float *y) {
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            double s = 0;
            for (int p = 0; p < hw; p++) s += x[((size_t)i * hw + p) * c + ch];
            y[(size_t)i * c + ch] = (float)(s / hw);
        }
}

static void ref_avgpool_backward(Backend *be, int n, int hw, int c, const float *dy, float *dx) {
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++) dx[((size_t)i * hw + p) * c + ch] = dy[(size_t)i * c + ch] / (float)hw;
}

/* ---------------------------------------------------------------- model surgery */

/* Composer's BlurPool filter [1,2,1] x [1,2,1] / 16, one factor per axis (each /4). */
static const double BLUR_TAP[3] = {0.25, 0.5, 0.25};

static void ref_blur_forward(Backend *be, const PoolDesc *d, const float *x, float *y) {
    for (int n = 0; n < d->n; n++)
        for (int oy = 0; oy < d->oh; oy++)
            for (int ox = 0; ox < d->ow; ox++)
                for (int ch = 0; ch < d->c; ch++) {
                    double s = 0;
                    for (int ky = 0; ky < 3; ky++) {
                        int iy = oy * d->stride - 1 + ky;
                        if (iy < 0 || iy >= d->h) continue;
                        for (int kx = 0; kx < 3; kx++) {
                            int ix = ox * d->stride - 1 + kx;
                            if (ix < 0 || ix >= d->w) continue;
                            s += BLUR_TAP[ky] * BLUR_TAP[kx] * x[(((size_t)n * d->h + iy) * d->w + ix) * d->c + ch];
                        }
                    }
                    y[(((size_t)n * d->oh + oy) * d->ow + ox) * d->c + ch] = (float)s;
                }
}

/* Gathers, for every input pixel, the outputs whose window covered it: dx = sum tap * dy. */
static void ref_blur_backward(Backend *be, const PoolDesc *d, const float *dy, float *dx) {
    for (int n = 0; n < d->n; n++)
        for (int iy = 0; iy < d->h; iy++)
            for (int ix = 0; ix < d->w; ix++)
                for (int ch = 0; ch < d->c; ch++) {
                    double s = 0;
                    for (int ky = 0; ky < 3; ky++) {
                        int ty = iy + 1 - ky; /* = oy * stride */
                        if (ty < 0 || ty % d->stride || ty / d->stride >= d->oh) continue;
                        for (int kx = 0; kx < 3; kx++) {
                            int tx = ix + 1 - kx;
                            if (tx < 0 || tx % d->stride || tx / d->stride >= d->ow) continue;
                            s += BLUR_TAP[ky] * BLUR_TAP[kx] *
                                 dy[(((size_t)n * d->oh + ty / d->stride) * d->ow + tx / d->stride) * d->c + ch];
                        }
                    }
                    dx[(((size_t)n * d->h + iy) * d->w + ix) * d->c + ch] = (float)s;
                }
}

static void ref_sigmoid_forward(Backend *be, int64_t n, const float *x, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
}

static void ref_sigmoid_backward(Backend *be, int64_t n, const float *y, const float *dy, float *dx) {
    for (int64_t i = 0; i < n; i++) dx[i] = (float)((double)dy[i] * y[i] * (1.0 - (double)y[i]));
}

static void ref_channel_scale_forward(Backend *be, int n, int hw, int c, const float *x, const float *s, float *y) {
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++) {
                size_t at = ((size_t)i * hw + p) * c + ch;
                y[at] = x[at] * s[(size_t)i * c + ch];
            }
}

static void ref_channel_scale_backward(Backend *be, int n, int hw, int c, const float *x, const float *s,
                                       const float *dy, float *dx, float *ds) {
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            double acc = 0;
            for (int p = 0; p < hw; p++) {
                size_t at = ((size_t)i * hw + p) * c + ch;
                if (dx) dx[at] = dy[at] * s[(size_t)i * c + ch];
                acc += (double)dy[at] * x[at];
            }
            if (ds) ds[(size_t)i * c + ch] = (float)acc;
        }
}

static void ref_sample_scale(Backend *be, int n, int64_t inner, const float *s, const float *x, float *y) {
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < inner; j++) y[(size_t)i * inner + j] = x[(size_t)i * inner + j] * s[i];
}

/* ---------------------------------------------------------------- fully connected */

static int ref_fc_forward(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *b,
                          float *y, Error *err) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < cout; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < cin; k++) s += (double)x[(size_t)i * cin + k] * w[(size_t)o * cin + k];
            y[(size_t)i * cout + o] = (float)s;
        }
    return 0;
}

static int ref_fc_backward(Backend *be, int n, int cin, int cout, const float *x, const float *w, const float *dy,
                           float *dx, float *dw, float *db, Error *err) {
    if (dx)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < cin; k++) {
                double s = 0;
                for (int o = 0; o < cout; o++) s += (double)dy[(size_t)i * cout + o] * w[(size_t)o * cin + k];
                dx[(size_t)i * cin + k] = (float)s;
            }
    for (int o = 0; o < cout; o++) {
        for (int k = 0; k < cin; k++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (double)dy[(size_t)i * cout + o] * x[(size_t)i * cin + k];
            dw[(size_t)o * cin + k] = (float)s;
        }
        if (db) {
            double s = 0;
            for (int i = 0; i < n; i++) s += dy[(size_t)i * cout + o];
            db[o] = (float)s;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- loss */

static void ref_loss_forward_backward(Backend *be, LossKind kind, int n, int c, const float *logits,
                                      const float *target, float grad_scale, float *loss, float *dlogits) {
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * c, *t = target + (size_t)i * c;
        float *dz = dlogits ? dlogits + (size_t)i * c : NULL;
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
}

/* ---------------------------------------------------------------- optimizer */

static void ref_sgd_step(Backend *be, const SgdStep *s, int64_t n, float *p, const float *g, float *buf) {
    const float mom = (float)s->momentum, damp1 = (float)(1.0 - s->dampening), wd = (float)s->weight_decay;
    const float neg_lr = (float)-s->lr, decay = (float)(1.0 - s->decay_factor * s->weight_decay);
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (!s->decoupled && wd != 0) d = d + wd * p[i];
        if (mom != 0) {
            buf[i] = s->first_step ? d : buf[i] * mom + damp1 * d;
            d = s->nesterov ? d + mom * buf[i] : buf[i];
        }
        if (s->decoupled && wd != 0) p[i] = p[i] * decay;
        p[i] = p[i] + neg_lr * d;
    }
}

/* ---------------------------------------------------------------- whole-vector helpers */

static void ref_scale(Backend *be, int64_t n, float alpha, float *x) {
    for (int64_t i = 0; i < n; i++) x[i] = x[i] * alpha;
}

static double ref_sum_squares(Backend *be, int64_t n, const float *x) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

/* ---------------------------------------------------------------- table */

static const BackendOps REF_OPS = {
    .name = "ref",
    .alloc = ref_alloc,
    .free = ref_free,
    .upload = ref_copy,
    .download = ref_copy,
    .copy = ref_copy,
    .zero = ref_zero,
    .sync = ref_sync,
    .conv_plan = ref_conv_plan,
    .conv_plan_free = ref_conv_plan_free,
    .conv_forward = ref_conv_forward,
    .conv_backward_data = ref_conv_backward_data,
    .conv_backward_weights = ref_conv_backward_weights,
    .bn_forward_train = ref_bn_forward_train,
    .bn_forward_eval = ref_bn_forward_eval,
    .bn_backward = ref_bn_backward,
    .relu_forward = ref_relu_forward,
    .relu_backward = ref_relu_backward,
    .relu_backward_add = ref_relu_backward_add,
    .add = ref_add,
    .axpy = ref_axpy,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .avgpool_forward = ref_avgpool_forward,
    .avgpool_backward = ref_avgpool_backward,
    .blur_forward = ref_blur_forward,
    .blur_backward = ref_blur_backward,
    .sigmoid_forward = ref_sigmoid_forward,
    .sigmoid_backward = ref_sigmoid_backward,
    .channel_scale_forward = ref_channel_scale_forward,
    .channel_scale_backward = ref_channel_scale_backward,
    .sample_scale = ref_sample_scale,
    .fc_forward = ref_fc_forward,
    .fc_backward = ref_fc_backward,
    .loss_forward_backward = ref_loss_forward_backward,
    .sgd_step = ref_sgd_step,
    .scale = ref_scale,
    .sum_squares = ref_sum_squares,
};

const BackendOps *ref_backend_ops(void) { return &REF_OPS; }

int ref_backend_create(int threads, Backend **out, Error *err) {
    Backend *be = calloc(1, sizeof *be);
    if (!be) return error_set(err, "out of memory");
    be->ops = &REF_OPS;
    be->threads = threads;
    *out = be;
    return 0;
}

void ref_backend_destroy(Backend *be) { free(be); }
