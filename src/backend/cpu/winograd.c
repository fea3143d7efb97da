/* winograd.c — 3x3, stride 1, pad 1 convolutions by Winograd's F(2x2, 3x3) (see winograd.h for the maths).
 *
 * Work is split over threads by chunks of output tiles. A thread transforms its chunk's input tiles into
 * V [16][tiles][k] (one matrix per position xi of the 4x4 transformed tile), multiplies each V[xi] by the
 * transformed weights U[xi] [k][n] with an AVX2 register-blocked kernel (MR rows x NR columns) into
 * M [16][tiles][n], and transforms M back into output tiles; a chunk's V and M fit in the core's L2 cache.
 * Forward: k = cin, n = cout. Backward data: the same on dy with the flipped, transposed weights (k = cout,
 * n = cin). Backward weights: each thread sums V[xi]^T Z[xi] over its chunks into its own dU [16][cin][cout]
 * (Z = A dy A^T per tile); the threads' sums are added and transformed back, dw = G^T dU G. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/winograd.h"

#define MR 6                      /* GEMM kernel rows (tiles, or cin in backward weights) */
#define NR 16                     /* GEMM kernel columns: two 8-float vectors */
#define CHUNK_BYTES (448 * 1024)  /* V and M of one chunk */
#define WEIGHTS_CHUNKS 4

static int tiles_h(const ConvDesc *d) { return (d->h + 1) / 2; }
static int tiles_w(const ConvDesc *d) { return (d->w + 1) / 2; }
static int tiles_all(const ConvDesc *d) { return d->n * tiles_h(d) * tiles_w(d); }

/* Tiles per chunk: a multiple of MR whose V and M (k + n floats per tile and position) fit CHUNK_BYTES, or
 * WEIGHTS_CHUNKS times that in backward weights, where each chunk also reads and writes the thread's dU. */
static int chunk_tiles(const ConvDesc *d, bool weights) {
    size_t budget = CHUNK_BYTES * (weights ? WEIGHTS_CHUNKS : 1);
    int t = (int)(budget / (16 * sizeof(float) * (size_t)(d->cin + d->cout))) / MR * MR;
    return t < MR ? MR : t;
}

/* True when d is a convolution this file computes (see winograd.h). */
bool wino_supported(const ConvDesc *d, int bx, int by) {
    return d->k == 3 && d->stride == 1 && d->pad == 1 && d->oh == d->h && d->ow == d->w && d->cin % 16 == 0 &&
           d->cout % 16 == 0 && bx % 8 == 0 && by % 8 == 0 && d->cin % bx == 0 && d->cout % by == 0;
}

/* Floats of one thread's buffers: a chunk's V and M, and a dU for backward weights. */
static size_t thread_floats(const ConvDesc *d) {
    return 16 * ((size_t)chunk_tiles(d, true) * (size_t)(d->cin + d->cout) + (size_t)d->cin * (size_t)d->cout);
}

/* Bytes of workspace the three passes need at most: U, then each thread's buffers. */
size_t wino_work_bytes(const ConvDesc *d, int threads) {
    return sizeof(float) * (16 * (size_t)d->cin * (size_t)d->cout + (size_t)threads * thread_floats(d));
}

/* ---------------------------------------------------------------- transforms */

/* U = G g G^T of one 3x3 kernel g [3][3] into u[xi * xi_stride]. */
static void weight_tile(const float g[9], float *u, size_t xi_stride) {
    float t[4][3];
    for (int j = 0; j < 3; j++) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        u[(i * 4 + 0) * xi_stride] = t[i][0];
        u[(i * 4 + 1) * xi_stride] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[(i * 4 + 2) * xi_stride] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[(i * 4 + 3) * xi_stride] = t[i][2];
    }
}

/* U [16][n/NR][k][NR] from w [cout][cin][3][3]: forward (k = cin, n = cout) or, with data, backward data
 * (k = cout, n = cin, each kernel turned by 180 degrees). */
static void weights_transform(const ConvDesc *d, const float *w, bool data, float *u, int threads) {
    int k_all = data ? d->cout : d->cin, n_all = data ? d->cin : d->cout;
    size_t xi_stride = (size_t)k_all * n_all;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int n = 0; n < n_all; n++) {
        for (int k = 0; k < k_all; k++) {
            const float *src = data ? w + ((size_t)k * d->cin + n) * 9 : w + ((size_t)n * d->cin + k) * 9;
            float g[9];
            for (int e = 0; e < 9; e++) g[e] = data ? src[8 - e] : src[e];
            weight_tile(g, u + ((size_t)(n / NR) * k_all + k) * NR + n % NR, xi_stride);
        }
    }
}

/* Where tile t lies: image i and its top-left output pixel (h0, w0). */
static void tile_locate(const ConvDesc *d, int t, int *i, int *h0, int *w0) {
    int per_image = tiles_h(d) * tiles_w(d), r = t % per_image;
    *i = t / per_image;
    *h0 = 2 * (r / tiles_w(d));
    *w0 = 2 * (r % tiles_w(d));
}

/* Walks the 8-channel groups of image i of an activation [n, c/b, h, w, b] at pixel (0, 0): p points at channel
 * c's group, group_next moves it to c + 8 without a division. */
typedef struct GroupWalk {
    const float *p;
    int within, b;
    size_t skip;                  /* floats from the end of a block's last group to the next block's first */
} GroupWalk;

static GroupWalk group_walk(const ConvDesc *d, const float *act, int c_all, int b, int i) {
    size_t plane = (size_t)d->h * d->w * b;
    return (GroupWalk){act + (size_t)i * (c_all / b) * plane, 0, b, plane - (size_t)b};
}

static inline void group_next(GroupWalk *g) {
    g->p += 8;
    g->within += 8;
    if (g->within == g->b) g->within = 0, g->p += g->skip;
}

/* u = r B for one row r of 4 pixels (8 channels each) at p + off[j], zero where !in[j] (checked with edge). */
static inline __attribute__((always_inline)) void tile_row(const float *p, const ptrdiff_t *off, const bool *in,
                                                            bool edge, __m256 u[4]) {
    __m256 r[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) r[j] = !edge || in[j] ? _mm256_loadu_ps(p + off[j]) : _mm256_setzero_ps();
    u[0] = _mm256_sub_ps(r[0], r[2]);
    u[1] = _mm256_add_ps(r[1], r[2]);
    u[2] = _mm256_sub_ps(r[2], r[1]);
    u[3] = _mm256_sub_ps(r[1], r[3]);
}

/* V = B^T x B of the 4x4 input tile at (h0 - 1, w0 - 1) of image i, zero outside, for all channels of x
 * [n, c/b, h, w, b]: v[xi * xi_stride + c]. edge: the tile may reach outside the image (a constant where
 * this is inlined; false lets the loads go unchecked). */
static inline __attribute__((always_inline)) void input_tile_at(const ConvDesc *d, const float *x, int c_all, int b,
                                                                 int i, int h0, int w0, float *v, size_t xi_stride,
                                                                 bool edge) {
    ptrdiff_t off[16];
    bool in[16];
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) {
            int h = h0 - 1 + k, w = w0 - 1 + j;
            in[k * 4 + j] = h >= 0 && h < d->h && w >= 0 && w < d->w;
            off[k * 4 + j] = ((ptrdiff_t)h * d->w + w) * b;
        }
    GroupWalk g = group_walk(d, x, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        /* u_k = (row k of the tile) B, then V's rows: u0 - u2, u1 + u2, u2 - u1, u1 - u3, in an order that
         * keeps at most three u live (twelve registers) */
        __m256 u0[4], u1[4], u2[4];
        float *o = v + c;
        tile_row(g.p, off + 4, in + 4, edge, u1);
        tile_row(g.p, off + 8, in + 8, edge, u2);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_ps(o + (4 + j) * xi_stride, _mm256_add_ps(u1[j], u2[j]));
            _mm256_storeu_ps(o + (8 + j) * xi_stride, _mm256_sub_ps(u2[j], u1[j]));
        }
        tile_row(g.p, off, in, edge, u0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(o + j * xi_stride, _mm256_sub_ps(u0[j], u2[j]));
        tile_row(g.p, off + 12, in + 12, edge, u0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(o + (12 + j) * xi_stride, _mm256_sub_ps(u1[j], u0[j]));
    }
}

/* input_tile_at, with the bounds checks only for a tile that reaches outside the image. */
static void input_tile(const ConvDesc *d, const float *x, int c_all, int b, int i, int h0, int w0, float *v,
                       size_t xi_stride) {
    if (h0 >= 1 && h0 + 2 < d->h && w0 >= 1 && w0 + 2 < d->w)
        input_tile_at(d, x, c_all, b, i, h0, w0, v, xi_stride, false);
    else
        input_tile_at(d, x, c_all, b, i, h0, w0, v, xi_stride, true);
}

/* Z = A dy A^T of the 2x2 tile of dy [n, c/b, h, w, b] at (h0, w0) of image i, zero outside:
 * z[xi * xi_stride + c]. */
static void grad_tile(const ConvDesc *d, const float *dy, int c_all, int b, int i, int h0, int w0, float *z,
                      size_t xi_stride) {
    bool in[4];
    ptrdiff_t off[4];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 2; j++) {
            in[k * 2 + j] = h0 + k < d->h && w0 + j < d->w;
            off[k * 2 + j] = ((ptrdiff_t)(h0 + k) * d->w + w0 + j) * b;
        }
    __m256 zero = _mm256_setzero_ps();
    GroupWalk g = group_walk(d, dy, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        __m256 r[4], t[4][2];
#pragma GCC unroll 4
        for (int e = 0; e < 4; e++) r[e] = in[e] ? _mm256_loadu_ps(g.p + off[e]) : zero;
#pragma GCC unroll 2
        for (int j = 0; j < 2; j++) {
            t[0][j] = r[j];
            t[1][j] = _mm256_add_ps(r[j], r[2 + j]);
            t[2][j] = _mm256_sub_ps(r[j], r[2 + j]);
            t[3][j] = _mm256_sub_ps(zero, r[2 + j]);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            float *o = z + (size_t)k * 4 * xi_stride + c;
            _mm256_storeu_ps(o, t[k][0]);
            _mm256_storeu_ps(o + xi_stride, _mm256_add_ps(t[k][0], t[k][1]));
            _mm256_storeu_ps(o + 2 * xi_stride, _mm256_sub_ps(t[k][0], t[k][1]));
            _mm256_storeu_ps(o + 3 * xi_stride, _mm256_sub_ps(zero, t[k][1]));
        }
    }
}

/* y = A^T M A of one tile, m[xi * xi_stride + c], into the 2x2 output pixels at (h0, w0) of image i of
 * y [n, c/b, h, w, b] that lie inside the image. */
static void output_tile(const ConvDesc *d, const float *m, size_t xi_stride, int c_all, int b, int i, int h0,
                        int w0, float *y) {
    bool in[4];
    ptrdiff_t off[4];
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 2; j++) {
            in[k * 2 + j] = h0 + k < d->h && w0 + j < d->w;
            off[k * 2 + j] = ((ptrdiff_t)(h0 + k) * d->w + w0 + j) * b;
        }
    GroupWalk g = group_walk(d, y, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        __m256 s[2][4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const float *p = m + (size_t)j * xi_stride + c;
            __m256 m0 = _mm256_loadu_ps(p), m1 = _mm256_loadu_ps(p + 4 * xi_stride);
            __m256 m2 = _mm256_loadu_ps(p + 8 * xi_stride), m3 = _mm256_loadu_ps(p + 12 * xi_stride);
            s[0][j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
            s[1][j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
        }
        float *out = (float *)g.p;
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m256 o0 = _mm256_add_ps(_mm256_add_ps(s[k][0], s[k][1]), s[k][2]);
            __m256 o1 = _mm256_sub_ps(_mm256_sub_ps(s[k][1], s[k][2]), s[k][3]);
            if (in[k * 2]) _mm256_storeu_ps(out + off[k * 2], o0);
            if (in[k * 2 + 1]) _mm256_storeu_ps(out + off[k * 2 + 1], o1);
        }
    }
}

/* dw [cout][cin][3][3] = G^T dU G from dU [16][cin][cout]. */
static void weights_untransform(const ConvDesc *d, const float *du, float *dw, int threads) {
    size_t xi_stride = (size_t)d->cin * d->cout;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int co = 0; co < d->cout; co++) {
        for (int ci = 0; ci < d->cin; ci++) {
            const float *x = du + (size_t)ci * d->cout + co;
            float s[3][4];
            for (int j = 0; j < 4; j++) {
                float x0 = x[j * xi_stride], x1 = x[(4 + j) * xi_stride];
                float x2 = x[(8 + j) * xi_stride], x3 = x[(12 + j) * xi_stride];
                s[0][j] = x0 + 0.5f * (x1 + x2);
                s[1][j] = 0.5f * (x1 - x2);
                s[2][j] = 0.5f * (x1 + x2) + x3;
            }
            float *o = dw + ((size_t)co * d->cin + ci) * 9;
            for (int r = 0; r < 3; r++) {
                o[r * 3 + 0] = s[r][0] + 0.5f * (s[r][1] + s[r][2]);
                o[r * 3 + 1] = 0.5f * (s[r][1] - s[r][2]);
                o[r * 3 + 2] = 0.5f * (s[r][1] + s[r][2]) + s[r][3];
            }
        }
    }
}

/* ---------------------------------------------------------------- GEMM kernel */

/* c [rows][NR] (row stride c_rs) = (acc ? c : 0) + a [rows][kn] b [kn][NR]; a's element (r, k) at
 * a[r * a_rs + k * a_ks], b's row k at b[k * b_ks]. rows <= MR is a constant where this is inlined. */
static inline __attribute__((always_inline)) void gemm_tile(int rows, int kn, const float *a, ptrdiff_t a_rs,
                                                            ptrdiff_t a_ks, const float *b, ptrdiff_t b_ks,
                                                            float *c, ptrdiff_t c_rs, bool acc) {
    __m256 s[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
        s[r][0] = acc ? _mm256_loadu_ps(c + r * c_rs) : _mm256_setzero_ps();
        s[r][1] = acc ? _mm256_loadu_ps(c + r * c_rs + 8) : _mm256_setzero_ps();
    }
    for (int k = 0; k < kn; k++) {
        __m256 b0 = _mm256_loadu_ps(b + k * b_ks), b1 = _mm256_loadu_ps(b + k * b_ks + 8);
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) {
            __m256 av = _mm256_broadcast_ss(a + r * a_rs + k * a_ks);
            s[r][0] = _mm256_fmadd_ps(av, b0, s[r][0]);
            s[r][1] = _mm256_fmadd_ps(av, b1, s[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
        _mm256_storeu_ps(c + r * c_rs, s[r][0]);
        _mm256_storeu_ps(c + r * c_rs + 8, s[r][1]);
    }
}

/* gemm_tile with a run-time rows (1..MR), each case a specialized copy. */
static void gemm_rows(int rows, int kn, const float *a, ptrdiff_t a_rs, ptrdiff_t a_ks, const float *b,
                      ptrdiff_t b_ks, float *c, ptrdiff_t c_rs, bool acc) {
    switch (rows) {
    case 6: gemm_tile(6, kn, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 5: gemm_tile(5, kn, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 4: gemm_tile(4, kn, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 3: gemm_tile(3, kn, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 2: gemm_tile(2, kn, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    default: gemm_tile(1, kn, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    }
}

/* ---------------------------------------------------------------- passes */

/* out = conv(in) for forward (data false: in x, out y) or backward data (in dy, out dx) with U in work. */
static void wino_product(const ConvDesc *d, int b_in, int b_out, const float *in, float *out, bool data,
                         float *work, int threads) {
    int k_all = data ? d->cout : d->cin, n_all = data ? d->cin : d->cout;
    int tiles = tiles_all(d), chunk = chunk_tiles(d, false);
    int chunks = (tiles + chunk - 1) / chunk;
    const float *u = work;
    size_t u_xi = (size_t)k_all * n_all;
#pragma omp parallel num_threads(threads)
    {
        float *v = work + 16 * u_xi + (size_t)omp_get_thread_num() * thread_floats(d);
        float *m = v + 16 * (size_t)chunk * k_all;
        size_t v_xi = (size_t)chunk * k_all, m_xi = (size_t)chunk * n_all;
#pragma omp for schedule(static)
        for (int q = 0; q < chunks; q++) {
            int t0 = q * chunk, cnt = tiles - t0 < chunk ? tiles - t0 : chunk;
            for (int t = 0; t < cnt; t++) {
                int i, h0, w0;
                tile_locate(d, t0 + t, &i, &h0, &w0);
                input_tile(d, in, k_all, b_in, i, h0, w0, v + (size_t)t * k_all, v_xi);
            }
            for (int xi = 0; xi < 16; xi++)
                for (int nb = 0; nb < n_all / NR; nb++) {
                    const float *bp = u + xi * u_xi + (size_t)nb * k_all * NR;
                    for (int r = 0; r < cnt; r += MR)
                        gemm_rows(cnt - r < MR ? cnt - r : MR, k_all, v + xi * v_xi + (size_t)r * k_all, k_all, 1,
                                  bp, NR, m + xi * m_xi + (size_t)r * n_all + nb * NR, n_all, false);
                }
            for (int t = 0; t < cnt; t++) {
                int i, h0, w0;
                tile_locate(d, t0 + t, &i, &h0, &w0);
                output_tile(d, m + (size_t)t * n_all, m_xi, n_all, b_out, i, h0, w0, out);
            }
        }
    }
}

/* y [n, h, w, cout] = conv(x [n, h, w, cin], w [cout, cin, 3, 3]) */
void wino_forward(const ConvDesc *d, int bx, int by, const float *x, const float *w, float *y, void *work,
                  int threads) {
    weights_transform(d, w, false, work, threads);
    wino_product(d, bx, by, x, y, false, work, threads);
}

/* dx [n, h, w, cin] from dy [n, h, w, cout] and w [cout, cin, 3, 3] */
void wino_backward_data(const ConvDesc *d, int bx, int by, const float *dy, const float *w, float *dx,
                        void *work, int threads) {
    weights_transform(d, w, true, work, threads);
    wino_product(d, by, bx, dy, dx, true, work, threads);
}

/* dw [cout, cin, 3, 3] from x [n, h, w, cin] and dy [n, h, w, cout] */
void wino_backward_weights(const ConvDesc *d, int bx, int by, const float *x, const float *dy, float *dw,
                           void *work, int threads) {
    int tiles = tiles_all(d), chunk = chunk_tiles(d, true);
    int chunks = (tiles + chunk - 1) / chunk;
    size_t u_xi = (size_t)d->cin * d->cout, v_xi = (size_t)chunk * d->cin, z_xi = (size_t)chunk * d->cout;
    float *base = (float *)work + 16 * u_xi;
#pragma omp parallel num_threads(threads)
    {
        float *v = base + (size_t)omp_get_thread_num() * thread_floats(d);
        float *z = v + 16 * v_xi, *du = z + 16 * z_xi;
        memset(du, 0, 16 * u_xi * sizeof(float));
#pragma omp for schedule(static)
        for (int q = 0; q < chunks; q++) {
            int t0 = q * chunk, cnt = tiles - t0 < chunk ? tiles - t0 : chunk;
            for (int t = 0; t < cnt; t++) {
                int i, h0, w0;
                tile_locate(d, t0 + t, &i, &h0, &w0);
                input_tile(d, x, d->cin, bx, i, h0, w0, v + (size_t)t * d->cin, v_xi);
                grad_tile(d, dy, d->cout, by, i, h0, w0, z + (size_t)t * d->cout, z_xi);
            }
            for (int xi = 0; xi < 16; xi++)
                for (int nb = 0; nb < d->cout / NR; nb++)
                    for (int r = 0; r < d->cin; r += MR)
                        gemm_rows(d->cin - r < MR ? d->cin - r : MR, cnt, v + xi * v_xi + r, 1, d->cin,
                                  z + xi * z_xi + nb * NR, d->cout, du + xi * u_xi + (size_t)r * d->cout + nb * NR,
                                  d->cout, true);
        }
        /* dU of thread 0 += the others' (each thread adds its share of the rows) */
#pragma omp barrier
        size_t all = 16 * u_xi;
        int nt = omp_get_num_threads(), me = omp_get_thread_num();
        size_t lo = all * me / nt, hi = all * (me + 1) / nt;
        float *du0 = base + 16 * v_xi + 16 * z_xi;
        for (int o = 1; o < nt; o++) {
            const float *dun = du0 + (size_t)o * thread_floats(d);
            for (size_t e = lo; e < hi; e++) du0[e] += dun[e];
        }
    }
    weights_untransform(d, base + 16 * v_xi + 16 * z_xi, dw, threads);
}
