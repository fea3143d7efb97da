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
