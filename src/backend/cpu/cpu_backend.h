/* cpu_backend.h — the CPU backend: oneDNN (libdnnl 2.6) convolutions, C + OpenMP for everything else. */
#ifndef CTRAIN_BACKEND_CPU_H
#define CTRAIN_BACKEND_CPU_H

#include "backend/backend.h"

/* Creates the CPU backend using threads OpenMP threads. */
int cpu_backend_create(int threads, Backend **out, Error *err);
/* Frees it. */
void cpu_backend_destroy(Backend *be);

#endif
