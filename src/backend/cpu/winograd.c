/* winograd.c — 3x3, stride 1, pad 1 convolutions by Winograd's F(2x2, 3x3) and F(4x4, 3x3) (see winograd.h).
 *
 * Each thread takes an equal share of the output tiles and works through it in chunks. For a chunk it
 * transforms the input tiles into V [P][tiles][k] (one matrix per position xi of the a x a transformed tile,
 * P = a * a, a = m + 2 for m x m output tiles), multiplies each V[xi] by the transformed weights U[xi] [k][n]
 * with an AVX2 register-blocked kernel (MR rows x NR columns) into M [P][tiles][n], and transforms M back into
 * output tiles; a chunk's V and M fit in the core's L2 cache where the layer allows. Forward: k = cin,
 * n = cout. Backward data: the same on dy with the flipped, transposed weights (k = cout, n = cin). Backward
 * weights: each thread sums V[xi]^T Z[xi] over its chunks into its own dU [P][cin][cout] (Z = A dy A^T per
 * tile) and the threads' sums are added — or, where the tiles are few, each thread sums its share of the
 * positions xi over all tiles into one shared dU — and dU is transformed back, dw = G^T dU G. The activation
 * transforms are written out per tile size (their coefficients are small integers); the weight transforms, a
 * few operations per weight, run from the G matrices below, 8 kernels per vector. */
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/winograd.h"

#define MR 6                      /* GEMM kernel rows (tiles, or cin in backward weights) */
#define NR 16                     /* GEMM kernel columns: two 8-float vectors */
#define CHUNK_BYTES (448 * 1024)  /* V and M of one chunk */
#define MIN_TILES 48              /* the fewest tiles per chunk (see chunk_tiles) */
#define XI_PAD 16                 /* floats after each position's part of a chunk buffer (see thread_floats) */
#define MIN_TILES_WEIGHTS 96
#define A_MAX 6                   /* the largest transformed tile side */

/* G of F(2x2, 3x3) (points 0, 1, -1, infinity) and of F(4x4, 3x3) (0, 1, -1, 2, -2, infinity): U = G g G^T. */
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

/* The transformed tile's side a = m + 2 and its P = a * a positions for output tiles of m x m (2 or 4). */
static int side(int m) { return m + 2; }
static int positions(int m) { return side(m) * side(m); }

static int tiles_h(const ConvDesc *d, int m) { return (d->h + m - 1) / m; }
static int tiles_w(const ConvDesc *d, int m) { return (d->w + m - 1) / m; }
static int tiles_all(const ConvDesc *d, int m) { return d->n * tiles_h(d, m) * tiles_w(d, m); }

/* Tiles per chunk, a multiple of MR: as many as let V and M (k + n floats per tile and position) fit
 * CHUNK_BYTES (the core's L2), but at least MIN_TILES (MIN_TILES_WEIGHTS in backward weights) so that each pass
 * over U (or over the thread's dU) serves that many tiles, then V and M spill to L3; and no more than a
 * thread's share of all tiles. */
static int chunk_tiles(const ConvDesc *d, int m, bool weights, int threads) {
    int t = (int)(CHUNK_BYTES / ((size_t)positions(m) * sizeof(float) * (size_t)(d->cin + d->cout)));
    int least = weights ? MIN_TILES_WEIGHTS : MIN_TILES, share = (tiles_all(d, m) + threads - 1) / threads;
    if (t < least) t = least;
    if (t > share) t = share;
    return (t + MR - 1) / MR * MR;
}

/* The tiles [*lo, *hi) of the calling OpenMP thread: an equal share of all, in order (see winograd.h). */
void wino_thread_tiles(int tiles, int *lo, int *hi) {
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    *lo = (int)((long long)tiles * me / nt);
    *hi = (int)((long long)tiles * (me + 1) / nt);
}

/* True when d is a convolution this file computes (see winograd.h). */
bool wino_supported(const ConvDesc *d, int m, int bx, int by) {
    return (m == 2 || m == 4) && d->k == 3 && d->stride == 1 && d->pad == 1 && d->oh == d->h && d->ow == d->w &&
           d->cin % 16 == 0 && d->cout % 16 == 0 && bx % 8 == 0 && by % 8 == 0 && d->cin % bx == 0 &&
           d->cout % by == 0;
}

/* Floats of one thread's chunk buffers: a chunk's V and M (V and Z in backward weights), each position's part
 * XI_PAD floats (a cache line) longer than its tiles need. Without that gap the parts of V, M and Z lay a multiple
 * of 4 KiB apart at the common chunk sizes (48 tiles of 64 or 128 channels), so a tile's transform wrote (or read)
 * its values for every position at addresses with the same low 12 bits: one L1 set, and loads held up by 4K
 * aliasing. The gap made F(4x4) passes up to 31% faster at 64 channels (docs/performance.md). */
static size_t thread_floats(const ConvDesc *d, int m, int threads) {
    size_t per_position = (size_t)chunk_tiles(d, m, true, threads) * (size_t)(d->cin + d->cout) + 2 * XI_PAD;
    return (size_t)positions(m) * per_position;
}

/* Whether backward weights splits dU's positions between the threads, each summing its positions over all tiles
 * (and so transforming every tile), rather than splitting the tiles, each thread summing its share into a dU of
 * its own: where a thread's share of the tiles is one chunk or less (the deep layers at low resolution, e.g.
 * 8x8x256 and 7x7x512 at batch 32), zeroing, writing and adding up the threads' dU cost more than transforming
 * the other threads' tiles (0.87-0.88 of the layer's time there; docs/performance.md). Each element of dU is
 * then one chain of products over all tiles in order, the same on any number of threads. */
static bool weights_by_position(const ConvDesc *d, int m, int threads) {
    return threads > 1 && (tiles_all(d, m) + threads - 1) / threads <= MIN_TILES_WEIGHTS;
}

/* Bytes of workspace the three passes need at most: U (in backward weights the shared dU, or thread 0's), each
 * thread's chunk buffers, then in backward weights split by tiles the dU of threads 1 to threads - 1. */
size_t wino_work_bytes(const ConvDesc *d, int m, int threads) {
    size_t du_copies = weights_by_position(d, m, threads) ? 1 : (size_t)threads;
    return sizeof(float) * (du_copies * (size_t)positions(m) * (size_t)d->cin * (size_t)d->cout +
                            (size_t)threads * thread_floats(d, m, threads));
}

/* ---------------------------------------------------------------- weight transforms */

/* U = G g G^T for 8 kernels at once (lane l of g[e] holds element e of kernel l): u[xi] for xi < a * a. */
static inline void weight_tile8(const __m256 g[9], int a, const double (*G)[3], __m256 *u) {
    __m256 t[A_MAX][3];
    for (int i = 0; i < a; i++) {
        __m256 g0 = _mm256_set1_ps((float)G[i][0]), g1 = _mm256_set1_ps((float)G[i][1]);
        __m256 g2 = _mm256_set1_ps((float)G[i][2]);
        for (int j = 0; j < 3; j++)
            t[i][j] = _mm256_fmadd_ps(g0, g[j], _mm256_fmadd_ps(g1, g[3 + j], _mm256_mul_ps(g2, g[6 + j])));
    }
    for (int j = 0; j < a; j++) {
        __m256 g0 = _mm256_set1_ps((float)G[j][0]), g1 = _mm256_set1_ps((float)G[j][1]);
        __m256 g2 = _mm256_set1_ps((float)G[j][2]);
        for (int i = 0; i < a; i++)
            u[i * a + j] = _mm256_fmadd_ps(t[i][0], g0, _mm256_fmadd_ps(t[i][1], g1, _mm256_mul_ps(t[i][2], g2)));
    }
}

/* U [P][n/NR][k][NR] from w [cout][cin][3][3]: forward (k = cin, n = cout) or, with data, backward data
 * (k = cout, n = cin, each kernel turned by 180 degrees). Each step transforms the kernels of 8 consecutive n
 * for one k and writes 8 consecutive floats of every position. */
static void weights_transform(const ConvDesc *d, int m, const float *w, bool data, float *u, int threads) {
    int k_all = data ? d->cout : d->cin, n_all = data ? d->cin : d->cout, a = side(m);
    size_t xi_stride = (size_t)k_all * n_all;
    const double(*G)[3] = m == 4 ? G4 : G2;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int n0 = 0; n0 < n_all; n0 += 8) {
        for (int k = 0; k < k_all; k++) {
            float lanes[9][8];
            for (int l = 0; l < 8; l++) {
                int n = n0 + l;
                const float *src = data ? w + ((size_t)k * d->cin + n) * 9 : w + ((size_t)n * d->cin + k) * 9;
                for (int e = 0; e < 9; e++) lanes[e][l] = data ? src[8 - e] : src[e];
            }
            __m256 g[9], t[A_MAX * A_MAX];
            for (int e = 0; e < 9; e++) g[e] = _mm256_loadu_ps(lanes[e]);
            weight_tile8(g, a, G, t);
            float *o = u + ((size_t)(n0 / NR) * k_all + k) * NR + n0 % NR;
            for (int xi = 0; xi < a * a; xi++) _mm256_storeu_ps(o + xi * xi_stride, t[xi]);
        }
    }
}

/* dw [cout][cin][3][3] = G^T dU G from dU [P][cin][cout], 8 consecutive cout at a time (see winograd.h). */
void wino_weights_untransform(const ConvDesc *d, int m, const float *du, float *dw, int threads) {
    size_t xi_stride = (size_t)d->cin * d->cout;
    int a = side(m);
    const double(*G)[3] = m == 4 ? G4 : G2;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int co0 = 0; co0 < d->cout; co0 += 8) {
        for (int ci = 0; ci < d->cin; ci++) {
            const float *x = du + (size_t)ci * d->cout + co0;
            __m256 s[3][A_MAX];
            for (int r = 0; r < 3; r++)
                for (int j = 0; j < a; j++) s[r][j] = _mm256_setzero_ps();
            for (int i = 0; i < a; i++) {
                __m256 g[3] = {_mm256_set1_ps((float)G[i][0]), _mm256_set1_ps((float)G[i][1]),
                               _mm256_set1_ps((float)G[i][2])};
                for (int j = 0; j < a; j++) {
                    __m256 v = _mm256_loadu_ps(x + (size_t)(i * a + j) * xi_stride);
                    for (int r = 0; r < 3; r++) s[r][j] = _mm256_fmadd_ps(g[r], v, s[r][j]);
                }
            }
            float lanes[9][8];
            for (int r = 0; r < 3; r++)
                for (int c = 0; c < 3; c++) {
                    __m256 acc = _mm256_setzero_ps();
                    for (int j = 0; j < a; j++) acc = _mm256_fmadd_ps(s[r][j], _mm256_set1_ps((float)G[j][c]), acc);
                    _mm256_storeu_ps(lanes[r * 3 + c], acc);
                }
            for (int l = 0; l < 8; l++) {
                float *o = dw + ((size_t)(co0 + l) * d->cin + ci) * 9;
                for (int e = 0; e < 9; e++) o[e] = lanes[e][l];
            }
        }
    }
}

/* ---------------------------------------------------------------- activation transforms */

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

/* Pixel (k, j) of px from the group at p, zero outside the image (checked only with edge). */
static inline __m256 load_or_zero(const float *p, const WinoPixels *px, int k, int j, bool edge) {
    return !edge || wino_pixel_in(px, k, j) ? _mm256_loadu_ps(p + wino_pixel_off(px, k, j)) : _mm256_setzero_ps();
}

/* ---- F(2x2, 3x3): B^T rows (1 0 -1 0) (0 1 1 0) (0 -1 1 0) (0 1 0 -1); A^T rows (1 1 1 0) (0 1 -1 -1) */

/* u = B^T r for 4 values r (8 channels each). */
static inline __attribute__((always_inline)) void bt4(const __m256 r[4], __m256 u[4]) {
    u[0] = _mm256_sub_ps(r[0], r[2]);
    u[1] = _mm256_add_ps(r[1], r[2]);
    u[2] = _mm256_sub_ps(r[2], r[1]);
    u[3] = _mm256_sub_ps(r[1], r[3]);
}

/* V = B^T x B of the 4x4 input tile at (h0 - 1, w0 - 1) of image i, zero outside, for all channels of x
 * [n, c/b, h, w, b]: v[xi * xi_stride + c]. edge: the tile may reach outside the image (a constant where
 * this is inlined; false lets the loads go unchecked). */
static inline __attribute__((always_inline)) void input_tile2_at(const ConvDesc *d, const float *x, int c_all,
                                                                  int b, int i, int h0, int w0, float *v,
                                                                  size_t xi_stride, bool edge) {
    WinoPixels px = wino_pixels(d, b, h0 - 1, w0 - 1);
    GroupWalk g = group_walk(d, x, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        /* u_k = B^T (row k of the tile), then V's rows: u0 - u2, u1 + u2, u2 - u1, u1 - u3, in an order that
         * keeps at most three u live (twelve registers) */
        __m256 r[4], u0[4], u1[4], u2[4];
        float *o = v + c;
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) r[j] = load_or_zero(g.p, &px, 1, j, edge);
        bt4(r, u1);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) r[j] = load_or_zero(g.p, &px, 2, j, edge);
        bt4(r, u2);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            _mm256_storeu_ps(o + (4 + j) * xi_stride, _mm256_add_ps(u1[j], u2[j]));
            _mm256_storeu_ps(o + (8 + j) * xi_stride, _mm256_sub_ps(u2[j], u1[j]));
        }
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) r[j] = load_or_zero(g.p, &px, 0, j, edge);
        bt4(r, u0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(o + j * xi_stride, _mm256_sub_ps(u0[j], u2[j]));
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) r[j] = load_or_zero(g.p, &px, 3, j, edge);
        bt4(r, u0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) _mm256_storeu_ps(o + (12 + j) * xi_stride, _mm256_sub_ps(u1[j], u0[j]));
    }
}

/* Z = A dy A^T of the 2x2 tile of dy [n, c/b, h, w, b] at (h0, w0) of image i, zero outside:
 * z[xi * xi_stride + c]. */
static void grad_tile2(const ConvDesc *d, const float *dy, int c_all, int b, int i, int h0, int w0, float *z,
                       size_t xi_stride) {
    WinoPixels px = wino_pixels(d, b, h0, w0);
    __m256 zero = _mm256_setzero_ps();
    GroupWalk g = group_walk(d, dy, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        __m256 r[4], t[4][2];
#pragma GCC unroll 4
        for (int e = 0; e < 4; e++) r[e] = load_or_zero(g.p, &px, e / 2, e % 2, true);
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
static void output_tile2(const ConvDesc *d, const float *m, size_t xi_stride, int c_all, int b, int i, int h0,
                         int w0, float *y) {
    WinoPixels px = wino_pixels(d, b, h0, w0);
    bool edge = h0 + 2 > d->h || w0 + 2 > d->w;
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
            if (!edge || wino_pixel_in(&px, k, 0)) _mm256_storeu_ps(out + wino_pixel_off(&px, k, 0), o0);
            if (!edge || wino_pixel_in(&px, k, 1)) _mm256_storeu_ps(out + wino_pixel_off(&px, k, 1), o1);
        }
    }
}

/* ---- F(4x4, 3x3): B^T rows (4 0 -5 0 1 0) (0 -4 -4 1 1 0) (0 4 -4 -1 1 0) (0 -2 -1 2 1 0) (0 2 -1 -2 1 0)
 * (0 4 0 -5 0 1); A^T rows (1 1 1 1 1 0) (0 1 -1 2 -2 0) (0 1 1 4 4 0) (0 1 -1 8 -8 1); A^T's transpose A
 * maps a 4-vector y to (y0, y0+y1+y2+y3, y0-y1+y2-y3, y0+2y1+4y2+8y3, y0-2y1+4y2-8y3, y3). */

/* u = B^T r for 6 values r. */
static inline __attribute__((always_inline)) void bt6(const __m256 r[6], __m256 u[6]) {
    const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    __m256 t1 = _mm256_fnmadd_ps(four, r[2], r[4]), t2 = _mm256_fnmadd_ps(four, r[1], r[3]);
    __m256 t3 = _mm256_sub_ps(r[4], r[2]), t4 = _mm256_mul_ps(two, _mm256_sub_ps(r[3], r[1]));
    u[0] = _mm256_fmadd_ps(four, r[0], _mm256_fnmadd_ps(five, r[2], r[4]));
    u[1] = _mm256_add_ps(t1, t2);
    u[2] = _mm256_sub_ps(t1, t2);
    u[3] = _mm256_add_ps(t3, t4);
    u[4] = _mm256_sub_ps(t3, t4);
    u[5] = _mm256_fmadd_ps(four, r[1], _mm256_fnmadd_ps(five, r[3], r[5]));
}

/* o = A^T s for 6 values s. */
static inline __attribute__((always_inline)) void at6(const __m256 s[6], __m256 o[4]) {
    const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
    __m256 s12 = _mm256_add_ps(s[1], s[2]), d12 = _mm256_sub_ps(s[1], s[2]);
    __m256 s34 = _mm256_add_ps(s[3], s[4]), d34 = _mm256_sub_ps(s[3], s[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(s[0], s12), s34);
    o[1] = _mm256_fmadd_ps(two, d34, d12);
    o[2] = _mm256_fmadd_ps(four, s34, s12);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d34, d12), s[5]);
}

/* z = A y for 4 values y. */
static inline __attribute__((always_inline)) void a6(const __m256 y[4], __m256 z[6]) {
    const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f), eight = _mm256_set1_ps(8.0f);
    __m256 e = _mm256_add_ps(y[0], y[2]), o = _mm256_add_ps(y[1], y[3]);
    __m256 e2 = _mm256_fmadd_ps(four, y[2], y[0]), o2 = _mm256_fmadd_ps(eight, y[3], _mm256_mul_ps(two, y[1]));
    z[0] = y[0];
    z[1] = _mm256_add_ps(e, o);
    z[2] = _mm256_sub_ps(e, o);
    z[3] = _mm256_add_ps(e2, o2);
    z[4] = _mm256_sub_ps(e2, o2);
    z[5] = y[3];
}

/* input_tile2_at for F(4x4, 3x3): the 6x6 input tile at (h0 - 1, w0 - 1). The row transforms go through a
 * 36-vector array on the stack (L1), the column transforms read it back. */
static inline __attribute__((always_inline)) void input_tile4_at(const ConvDesc *d, const float *x, int c_all,
                                                                  int b, int i, int h0, int w0, float *v,
                                                                  size_t xi_stride, bool edge) {
    WinoPixels px = wino_pixels(d, b, h0 - 1, w0 - 1);
    GroupWalk g = group_walk(d, x, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        __m256 u[6][6], r[6], col[6];
#pragma GCC unroll 6
        for (int k = 0; k < 6; k++) {
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++) r[j] = load_or_zero(g.p, &px, k, j, edge);
            bt6(r, u[k]);
        }
        float *o = v + c;
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
#pragma GCC unroll 6
            for (int k = 0; k < 6; k++) col[k] = u[k][j];
            bt6(col, r);
#pragma GCC unroll 6
            for (int k = 0; k < 6; k++) _mm256_storeu_ps(o + (size_t)(k * 6 + j) * xi_stride, r[k]);
        }
    }
}

/* grad_tile2 for F(4x4, 3x3): Z = A dy A^T of the 4x4 tile of dy at (h0, w0). */
static void grad_tile4(const ConvDesc *d, const float *dy, int c_all, int b, int i, int h0, int w0, float *z,
                       size_t xi_stride) {
    WinoPixels px = wino_pixels(d, b, h0, w0);
    GroupWalk g = group_walk(d, dy, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        __m256 t[6][4], y[4], zz[6];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) y[k] = load_or_zero(g.p, &px, k, j, true);
            a6(y, zz);
#pragma GCC unroll 6
            for (int k = 0; k < 6; k++) t[k][j] = zz[k];
        }
        float *o = z + c;
#pragma GCC unroll 6
        for (int k = 0; k < 6; k++) {
            a6(t[k], zz);
#pragma GCC unroll 6
            for (int j = 0; j < 6; j++) _mm256_storeu_ps(o + (size_t)(k * 6 + j) * xi_stride, zz[j]);
        }
    }
}

/* output_tile2 for F(4x4, 3x3): the 4x4 output pixels at (h0, w0) from the 6x6 M. */
static void output_tile4(const ConvDesc *d, const float *m, size_t xi_stride, int c_all, int b, int i, int h0,
                         int w0, float *y) {
    WinoPixels px = wino_pixels(d, b, h0, w0);
    bool edge = h0 + 4 > d->h || w0 + 4 > d->w;
    GroupWalk g = group_walk(d, y, c_all, b, i);
    for (int c = 0; c < c_all; c += 8, group_next(&g)) {
        __m256 s[4][6], col[6], o4[4];
#pragma GCC unroll 6
        for (int j = 0; j < 6; j++) {
#pragma GCC unroll 6
            for (int k = 0; k < 6; k++) col[k] = _mm256_loadu_ps(m + (size_t)(k * 6 + j) * xi_stride + c);
            at6(col, o4);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) s[k][j] = o4[k];
        }
        float *out = (float *)g.p;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            at6(s[k], o4);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                if (!edge || wino_pixel_in(&px, k, j)) _mm256_storeu_ps(out + wino_pixel_off(&px, k, j), o4[j]);
        }
    }
}

/* ---- per tile, either size */

/* The input transform of one tile (bounds checks only where the tile reaches outside the image). */
static void input_tile(const ConvDesc *d, int m, const float *x, int c_all, int b, int i, int h0, int w0,
                       float *v, size_t xi_stride) {
    bool inside = h0 >= 1 && h0 + m + 1 <= d->h && w0 >= 1 && w0 + m + 1 <= d->w;
    if (m == 4) {
        if (inside) input_tile4_at(d, x, c_all, b, i, h0, w0, v, xi_stride, false);
        else input_tile4_at(d, x, c_all, b, i, h0, w0, v, xi_stride, true);
    } else {
        if (inside) input_tile2_at(d, x, c_all, b, i, h0, w0, v, xi_stride, false);
        else input_tile2_at(d, x, c_all, b, i, h0, w0, v, xi_stride, true);
    }
}

/* Where tile t lies: image i and its top-left output pixel (h0, w0). */
static void tile_locate(const ConvDesc *d, int m, int t, int *i, int *h0, int *w0) {
    int per_image = tiles_h(d, m) * tiles_w(d, m), r = t % per_image;
    *i = t / per_image;
    *h0 = m * (r / tiles_w(d, m));
    *w0 = m * (r % tiles_w(d, m));
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

/* du0 [n] += the other threads' sums rest [threads - 1][n], each calling thread adding its share of the elements
 * (see winograd.h). */
void wino_sum_threads(float *du0, const float *rest, size_t n) {
    int nt = omp_get_num_threads(), me = omp_get_thread_num();
    size_t e0 = n * me / nt, e1 = n * (me + 1) / nt;
    for (int o = 1; o < nt; o++) {
        const float *other = rest + (size_t)(o - 1) * n;
        for (size_t e = e0; e < e1; e++) du0[e] += other[e];
    }
}

/* out = conv(in) for forward (data false: in x, out y) or backward data (in dy, out dx) with U in work. */
static void wino_product(const ConvDesc *d, int m, int b_in, int b_out, const float *in, float *out, bool data,
                         float *work, int threads) {
    int k_all = data ? d->cout : d->cin, n_all = data ? d->cin : d->cout, P = positions(m);
    int tiles = tiles_all(d, m), chunk = chunk_tiles(d, m, false, threads);
    const float *u = work;
    size_t u_xi = (size_t)k_all * n_all;
#pragma omp parallel num_threads(threads)
    {
        float *v = work + P * u_xi + (size_t)omp_get_thread_num() * thread_floats(d, m, threads);
        float *mm = v + P * ((size_t)chunk * k_all + XI_PAD);
        size_t v_xi = (size_t)chunk * k_all + XI_PAD, m_xi = (size_t)chunk * n_all + XI_PAD;
        int lo, hi;
        wino_thread_tiles(tiles, &lo, &hi);
        for (int t0 = lo; t0 < hi; t0 += chunk) {
            int cnt = hi - t0 < chunk ? hi - t0 : chunk;
            for (int t = 0; t < cnt; t++) {
                int i, h0, w0;
                tile_locate(d, m, t0 + t, &i, &h0, &w0);
                input_tile(d, m, in, k_all, b_in, i, h0, w0, v + (size_t)t * k_all, v_xi);
            }
            for (int xi = 0; xi < P; xi++)
                for (int nb = 0; nb < n_all / NR; nb++) {
                    const float *bp = u + xi * u_xi + (size_t)nb * k_all * NR;
                    for (int r = 0; r < cnt; r += MR)
                        gemm_rows(cnt - r < MR ? cnt - r : MR, k_all, v + xi * v_xi + (size_t)r * k_all, k_all, 1,
                                  bp, NR, mm + xi * m_xi + (size_t)r * n_all + nb * NR, n_all, false);
                }
            for (int t = 0; t < cnt; t++) {
                int i, h0, w0;
                tile_locate(d, m, t0 + t, &i, &h0, &w0);
                if (m == 4) output_tile4(d, mm + (size_t)t * n_all, m_xi, n_all, b_out, i, h0, w0, out);
                else output_tile2(d, mm + (size_t)t * n_all, m_xi, n_all, b_out, i, h0, w0, out);
            }
        }
    }
}

/* y [n, h, w, cout] = conv(x [n, h, w, cin], w [cout, cin, 3, 3]) */
void wino_forward(const ConvDesc *d, int m, int bx, int by, const float *x, const float *w, float *y, void *work,
                  int threads) {
    weights_transform(d, m, w, false, work, threads);
    wino_product(d, m, bx, by, x, y, false, work, threads);
}

/* dx [n, h, w, cin] from dy [n, h, w, cout] and w [cout, cin, 3, 3] */
void wino_backward_data(const ConvDesc *d, int m, int bx, int by, const float *dy, const float *w, float *dx,
                        void *work, int threads) {
    weights_transform(d, m, w, true, work, threads);
    wino_product(d, m, by, bx, dy, dx, true, work, threads);
}

/* dw [cout, cin, 3, 3] from x [n, h, w, cin] and dy [n, h, w, cout]. Each thread either sums its share of the
 * tiles into a dU of its own, and the threads' dU are added, or (weights_by_position) sums its share of dU's
 * positions over all tiles. Each chunk's first product writes dU, the next ones add to it (no zeroing). */
void wino_backward_weights(const ConvDesc *d, int m, int bx, int by, const float *x, const float *dy, float *dw,
                           void *work, int threads) {
    int tiles = tiles_all(d, m), chunk = chunk_tiles(d, m, true, threads), P = positions(m);
    bool by_position = weights_by_position(d, m, threads);
    size_t u_xi = (size_t)d->cin * d->cout, v_xi = (size_t)chunk * d->cin + XI_PAD;
    size_t z_xi = (size_t)chunk * d->cout + XI_PAD;
    /* dU of thread 0 (or the shared dU) where U is in the other passes, of the others after every thread's chunk
     * buffers */
    float *du0 = work, *bufs = du0 + P * u_xi, *du_rest = bufs + (size_t)threads * thread_floats(d, m, threads);
#pragma omp parallel num_threads(threads)
    {
        int me = omp_get_thread_num(), nt = omp_get_num_threads();
        float *v = bufs + (size_t)me * thread_floats(d, m, threads), *z = v + P * v_xi, *du = du0;
        int lo = 0, hi = tiles, x0 = 0, x1 = P;
        if (by_position) {
            x0 = P * me / nt;
            x1 = P * (me + 1) / nt;
        } else {
            wino_thread_tiles(tiles, &lo, &hi);
            if (me > 0) du = du_rest + (size_t)(me - 1) * P * u_xi;
            if (lo >= hi) memset(du, 0, P * u_xi * sizeof(float));
        }
        for (int t0 = lo; t0 < hi && x0 < x1; t0 += chunk) {
            int cnt = hi - t0 < chunk ? hi - t0 : chunk;
            for (int t = 0; t < cnt; t++) {
                int i, h0, w0;
                tile_locate(d, m, t0 + t, &i, &h0, &w0);
                input_tile(d, m, x, d->cin, bx, i, h0, w0, v + (size_t)t * d->cin, v_xi);
                if (m == 4) grad_tile4(d, dy, d->cout, by, i, h0, w0, z + (size_t)t * d->cout, z_xi);
                else grad_tile2(d, dy, d->cout, by, i, h0, w0, z + (size_t)t * d->cout, z_xi);
            }
            for (int xi = x0; xi < x1; xi++)
                for (int nb = 0; nb < d->cout / NR; nb++)
                    for (int r = 0; r < d->cin; r += MR)
                        gemm_rows(d->cin - r < MR ? d->cin - r : MR, cnt, v + xi * v_xi + r, 1, d->cin,
                                  z + xi * z_xi + nb * NR, d->cout, du + xi * u_xi + (size_t)r * d->cout + nb * NR,
                                  d->cout, t0 > lo);
        }
        if (!by_position) {
#pragma omp barrier
            wino_sum_threads(du0, du_rest, P * u_xi);
        }
    }
    wino_weights_untransform(d, m, du0, dw, threads);
}
