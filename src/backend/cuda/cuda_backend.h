/* cuda_backend.h — the CUDA backend: cuDNN convolutions (NHWC), cuBLAS for the FC layer, ctrain's own kernels
 * for everything else (cuda_kernels.cu). Built only when CMake finds nvcc, cuDNN and cuBLAS (CTRAIN_CUDA). */
#ifndef CTRAIN_BACKEND_CUDA_H
#define CTRAIN_BACKEND_CUDA_H

#include "backend/backend.h"

/* Creates the CUDA backend on the current device (CUDA_VISIBLE_DEVICES picks it); threads is for host work.
 * Fails with a one-line message when no GPU or driver is present. */
int cuda_backend_create(int threads, Backend **out, Error *err);
/* Frees it (NULL is fine). */
void cuda_backend_destroy(Backend *be);

#endif
