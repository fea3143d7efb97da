/* ref_backend.h — the plain-C reference backend: naive loops, one thread, the oracle for tests. */
#ifndef CTRAIN_BACKEND_REF_H
#define CTRAIN_BACKEND_REF_H

#include "backend/backend.h"

/* Creates the reference backend (threads is recorded but not used). */
int ref_backend_create(int threads, Backend **out, Error *err);
/* Frees it. */
void ref_backend_destroy(Backend *be);
/* The reference operation table, for backends that reuse single operations of it. */
const BackendOps *ref_backend_ops(void);

#endif
