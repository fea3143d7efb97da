/* cpu_fc.h — the fully connected layer of the cpu backend (cpu_fc.c): its products on oneDNN's sgemm. */
#ifndef CTRAIN_BACKEND_CPU_FC_H
#define CTRAIN_BACKEND_CPU_FC_H

#include "backend/backend.h"

/* y [n, cout] = x [n, cin] w^T + b [cout] (b may be NULL), on threads threads, through yt [cout, n] (scratch). */
int cpu_fc_forward(int threads, int n, int cin, int cout, const float *x, const float *w, const float *b, float *yt,
                   float *y, Error *err);
/* dx [n, cin] = dy [n, cout] w [cout, cin] (skipped when NULL), dw [cout, cin] = dy^T x, db [cout] = the column
 * sums of dy (skipped when NULL), on threads threads. */
int cpu_fc_backward(int threads, int n, int cin, int cout, const float *x, const float *w, const float *dy,
                    float *dx, float *dw, float *db, Error *err);

#endif
