/* backend.c — the backend registry and the shape helpers shared by all backends. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/ref/ref_backend.h"
#ifdef CTRAIN_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

int backend_create(const char *name, int threads, Backend **out, Error *err) {
    *out = NULL;
    if (threads <= 0) threads = omp_get_num_procs();
    if (strcmp(name, "cpu") == 0) return cpu_backend_create(threads, out, err);
    if (strcmp(name, "ref") == 0) return ref_backend_create(threads, out, err);
#ifdef CTRAIN_CUDA
    if (strcmp(name, "cuda") == 0 || strcmp(name, "gpu") == 0) return cuda_backend_create(threads, out, err);
#else
    if (strcmp(name, "cuda") == 0 || strcmp(name, "gpu") == 0)
        return error_set(err, "device '%s': this ctrain was built without CUDA support; use --device cpu", name);
#endif
    return error_set(err, "unknown device '%s' (choose one of: %s)", name, backend_names());
}

void backend_destroy(Backend *be) {
    if (!be) return;
    if (strcmp(be->ops->name, "cpu") == 0) cpu_backend_destroy(be);
#ifdef CTRAIN_CUDA
    else if (strcmp(be->ops->name, "cuda") == 0) cuda_backend_destroy(be);
#endif
    else ref_backend_destroy(be);
}

#ifdef CTRAIN_CUDA
const char *backend_names(void) { return "cpu, ref, cuda (alias gpu)"; }
bool backend_has_cuda(void) { return true; }
#else
const char *backend_names(void) { return "cpu, ref"; }
bool backend_has_cuda(void) { return false; }
#endif

int act_block_of(const Backend *be, int c) {
    return be->act_block > 0 && c % be->act_block == 0 ? be->act_block : 0;
}

/* Moves between NHWC [n, hw, c] and nChwBc [n, c/B, hw, B]: to_blocked picks the direction. */
static void act_layout_move(int b, int n, int64_t hw, int c, const float *src, float *dst, bool to_blocked) {
    for (int i = 0; i < n; i++)
        for (int64_t p = 0; p < hw; p++)
            for (int ch = 0; ch < c; ch++) {
                size_t plain = ((size_t)i * hw + p) * c + ch;
                size_t blocked = (((size_t)i * (c / b) + ch / b) * hw + p) * b + ch % b;
                if (to_blocked) dst[blocked] = src[plain];
                else dst[plain] = src[blocked];
            }
}

void act_layout_pack(const Backend *be, int n, int64_t hw, int c, const float *src, float *dst) {
    int b = act_block_of(be, c);
    if (b) act_layout_move(b, n, hw, c, src, dst, true);
    else memcpy(dst, src, (size_t)n * hw * c * sizeof *dst);
}

void act_layout_unpack(const Backend *be, int n, int64_t hw, int c, const float *src, float *dst) {
    int b = act_block_of(be, c);
    if (b) act_layout_move(b, n, hw, c, src, dst, false);
    else memcpy(dst, src, (size_t)n * hw * c * sizeof *dst);
}

int act_upload(Backend *be, float *dst, const float *src, int n, int64_t hw, int c, Error *err) {
    size_t bytes = (size_t)n * hw * c * sizeof *src;
    if (!act_block_of(be, c)) {
        be->ops->upload(be, dst, src, bytes);
        return 0;
    }
    float *tmp = malloc(bytes ? bytes : 1);
    if (!tmp) return error_set(err, "out of memory: %zu MiB to lay out an input batch", bytes >> 20);
    act_layout_pack(be, n, hw, c, src, tmp);
    be->ops->upload(be, dst, tmp, bytes);
    free(tmp);
    return 0;
}

int conv_desc_init(ConvDesc *d, int n, int h, int w, int cin, int cout, int k, int stride, int pad, Error *err) {
    *d = (ConvDesc){.n = n, .h = h, .w = w, .cin = cin, .cout = cout, .k = k, .stride = stride, .pad = pad};
    if (n <= 0 || h <= 0 || w <= 0 || cin <= 0 || cout <= 0 || k <= 0 || stride <= 0 || pad < 0)
        return error_set(err, "convolution %dx%d/%d pad %d on a [%d, %d, %d, %d] input: invalid geometry", k, k,
                         stride, pad, n, h, w, cin);
    if (h + 2 * pad < k || w + 2 * pad < k)
        return error_set(err, "convolution %dx%d/%d on a %dx%d input gives an empty output (input too small)",
                         k, k, stride, h, w);
    d->oh = (h + 2 * pad - k) / stride + 1;
    d->ow = (w + 2 * pad - k) / stride + 1;
    return 0;
}

int conv_desc_check_f32(const ConvDesc *d, const char *who, Error *err) {
    if (d->t.x == ACT_F32 && d->t.y == ACT_F32 && d->t.dx == ACT_F32 && d->t.dy == ACT_F32) return 0;
    return error_set(err, "%s keeps activations in fp32 only (a convolution asked for bf16 storage)", who);
}

int pool_desc_init(PoolDesc *d, int n, int h, int w, int c, int k, int stride, int pad, Error *err) {
    *d = (PoolDesc){.n = n, .h = h, .w = w, .c = c, .k = k, .stride = stride, .pad = pad};
    if (n <= 0 || h <= 0 || w <= 0 || c <= 0 || k <= 0 || stride <= 0 || pad < 0 || pad * 2 > k)
        return error_set(err, "max pool %dx%d/%d pad %d on a [%d, %d, %d, %d] input: invalid geometry", k, k, stride,
                         pad, n, h, w, c);
    if (h + 2 * pad < k || w + 2 * pad < k)
        return error_set(err, "max pool %dx%d/%d on a %dx%d input gives an empty output (input too small)",
                         k, k, stride, h, w);
    d->oh = (h + 2 * pad - k) / stride + 1;
    d->ow = (w + 2 * pad - k) / stride + 1;
    return 0;
}
