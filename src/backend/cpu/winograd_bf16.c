/* winograd_bf16.c — bf16 F(2x2, 3x3) Winograd convolutions, all three passes (see winograd_bf16.h).
 *
 * Compiled for x86-64-v4 with AVX512_BF16 (CMakeLists.txt sets the flags for this file); cpu_conv.c calls it
 * only on CPUs that have both. The work is winograd.c's F(2x2) product in bf16: each thread takes an equal
 * share of the output tiles and works through it in chunks; for a chunk it transforms the input tiles (16
 * channels per vector, read as fp32 or bf16) into V [16][tiles][k] rounded to bf16, multiplies each V[xi] by
 * the transformed weights U[xi] with a vdpbf16ps kernel (MR tiles x NR output channels, summing pairs of k in
 * fp32) into M [16][tiles][n] in fp32, and transforms M back into output tiles, stored fp32 or rounded to bf16.
 * U is laid out for that kernel: [16][n/NR][k/2][NR][2], the pair (k, k+1) of each output channel together.
 * Forward: k = cin, n = cout; backward data: k = cout, n = cin on the flipped, transposed weights. Backward
 * weights sums V[xi]^T Z[xi] over the tiles with the same kernel, the sum running over pairs of tiles: V and Z
 * are written [16][tiles/2][c][2] (each pair padded: pair_stride), the two tiles of a pair side by side (see
 * wino16_backward_weights). */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/winograd.h"
#include "backend/cpu/winograd_bf16.h"

#define MR 6                      /* kernel rows: tiles */
#define NR 32                     /* kernel columns: output channels, two vectors of 16 */
#define P 16                      /* positions of the 4x4 transformed tile */
#define CHUNK_BYTES (448 * 1024)  /* V (bf16) and M (fp32) of one chunk: the core's L2 */
#define MIN_TILES 48              /* the fewest tiles per chunk: each pass over U serves that many */
#define MIN_TILES_WEIGHTS 96      /* the same in backward weights, for each pass over the thread's dU */
#define GAP 64                    /* bytes after each position's part of V, M and Z: as winograd.c's XI_PAD */

/* G of F(2x2, 3x3) (points 0, 1, -1, infinity): U = G g G^T. */
static const float G2[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};

static int tiles_h(const ConvDesc *d) { return (d->h + 1) / 2; }
static int tiles_w(const ConvDesc *d) { return (d->w + 1) / 2; }
static int tiles_all(const ConvDesc *d) { return d->n * tiles_h(d) * tiles_w(d); }

/* True when d is a convolution this file computes (see winograd_bf16.h). */
bool wino16_supported(const ConvDesc *d, int bx, int by) {
    return d->k == 3 && d->stride == 1 && d->pad == 1 && d->oh == d->h && d->ow == d->w && d->cin % NR == 0 &&
           d->cout % NR == 0 && bx % 16 == 0 && by % 16 == 0 && d->cin % bx == 0 && d->cout % by == 0;
}

/* Tiles per chunk of one thread for forward or backward data (k inputs, n outputs; a tile's V and M take
 * P (2 k + 4 n) bytes), a multiple of MR; or (weights) for backward weights (V and Z, P 2 (cin + cout) bytes), a
 * multiple of 2: as many as fit CHUNK_BYTES, at least MIN_TILES (MIN_TILES_WEIGHTS), no more than a thread's
 * share. */
static int chunk_tiles(const ConvDesc *d, int k, int n, bool weights, int threads) {
    size_t per_tile = weights ? (size_t)P * 2 * (size_t)(k + n) : (size_t)P * (2 * (size_t)k + 4 * (size_t)n);
    int t = (int)(CHUNK_BYTES / per_tile), share = (tiles_all(d) + threads - 1) / threads;
    int least = weights ? MIN_TILES_WEIGHTS : MIN_TILES, mult = weights ? 2 : MR;
    if (t < least) t = least;
    if (t > share) t = share;
    return (t + mult - 1) / mult * mult;
}

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

/* bf16 from one pair of tiles' V (c = cin) or Z (c = cout) [c][2] to the next pair's in backward weights: GAP
 * bytes more than the pair, so that the kernel's walk over pairs (for each row of 6 channels and each pass
 * over the chunk) does not step by 1 or 2 KiB at 256 or 512 channels, which kept it on two sets of the L1
 * cache. */
static size_t pair_stride(int c) { return 2 * (size_t)c + GAP / 2; }

/* Bytes of one thread's chunk buffers: the larger of forward's and backward data's, or (weights) backward
 * weights', with a GAP after each position's part of the two buffers. */
static size_t slot_bytes(const ConvDesc *d, bool weights, int threads) {
    if (weights)
        return align64((size_t)chunk_tiles(d, d->cin, d->cout, true, threads) / 2 * P * 2 *
                           (pair_stride(d->cin) + pair_stride(d->cout)) + 2 * P * GAP);
    size_t f = (size_t)chunk_tiles(d, d->cin, d->cout, false, threads) * P * (2 * (size_t)d->cin + 4 * (size_t)d->cout);
    size_t b = (size_t)chunk_tiles(d, d->cout, d->cin, false, threads) * P * (2 * (size_t)d->cout + 4 * (size_t)d->cin);
    return align64((f > b ? f : b) + 2 * P * GAP);
}

/* Floats of one dU [16][cin][cout] (a multiple of 16: cin and cout are of 32); bytes of U [16][cin][cout]
 * (bf16) and of dU, multiples of 64. */
static size_t du_floats(const ConvDesc *d) { return (size_t)P * d->cin * d->cout; }
static size_t u_bytes(const ConvDesc *d) { return align64(du_floats(d) * 2); }
static size_t du_bytes(const ConvDesc *d) { return align64(du_floats(d) * sizeof(float)); }

/* Bytes of workspace. Forward and backward data: U, then each thread's chunk buffers; backward weights: thread
 * 0's dU, each thread's chunk buffers, then the dU of threads 1 to threads - 1. */
size_t wino16_work_bytes(const ConvDesc *d, bool weights, int threads) {
    size_t fd = u_bytes(d) + (size_t)threads * slot_bytes(d, false, threads);
    size_t w = du_bytes(d) + (size_t)threads * slot_bytes(d, true, threads) + (size_t)(threads - 1) * du_bytes(d);
    return weights && w > fd ? w : fd;
}

/* ---------------------------------------------------------------- conversions */

/* 16 values from element off of an activation stored as bf16 (uint16) or fp32. */
static inline __m512 load16(const void *act, size_t off, bool bf16) {
    if (!bf16) return _mm512_loadu_ps((const float *)act + off);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)act + off));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* v rounded to bf16 (nearest, ties to even), 16 values. */
static inline __m256i round16(__m512 v) { return (__m256i)_mm512_cvtneps_pbh(v); }

/* Stores 16 values at element off of an activation stored as bf16 (rounded) or fp32. */
static inline void store16(void *act, size_t off, __m512 v, bool bf16) {
    if (bf16) _mm256_storeu_si256((__m256i *)((uint16_t *)act + off), round16(v));
    else _mm512_storeu_ps((float *)act + off, v);
}

/* ---------------------------------------------------------------- weight transform */

/* U [16][n/NR][k/2][NR][2] (bf16) from w [cout][cin][3][3]: forward (k = cin, n = cout) or, with data, backward
 * data (k = cout, n = cin, each kernel turned by 180 degrees). Each step transforms the kernels of 16
 * consecutive n for the pair k, k + 1, and writes the pairs of those 16 output channels at every position. */
static void weights_transform(const ConvDesc *d, const float *w, bool data, uint16_t *u, int threads) {
    int k_all = data ? d->cout : d->cin, n_all = data ? d->cin : d->cout;
    size_t xi_stride = (size_t)k_all * n_all; /* bf16 per position */
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int n0 = 0; n0 < n_all; n0 += 16) {
        for (int k0 = 0; k0 < k_all; k0 += 2) {
            __m256i h[2][P];
            for (int half = 0; half < 2; half++) {
                int k = k0 + half;
                float lanes[9][16];
                for (int l = 0; l < 16; l++) {
                    int n = n0 + l;
                    const float *src = data ? w + ((size_t)k * d->cin + n) * 9 : w + ((size_t)n * d->cin + k) * 9;
                    for (int e = 0; e < 9; e++) lanes[e][l] = data ? src[8 - e] : src[e];
                }
                __m512 g[9], t[4][3];
                for (int e = 0; e < 9; e++) g[e] = _mm512_loadu_ps(lanes[e]);
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 3; j++)
                        t[i][j] = _mm512_fmadd_ps(_mm512_set1_ps(G2[i][0]), g[j],
                                                  _mm512_fmadd_ps(_mm512_set1_ps(G2[i][1]), g[3 + j],
                                                                  _mm512_mul_ps(_mm512_set1_ps(G2[i][2]), g[6 + j])));
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++)
                        h[half][i * 4 + j] = round16(_mm512_fmadd_ps(
                            t[i][0], _mm512_set1_ps(G2[j][0]),
                            _mm512_fmadd_ps(t[i][1], _mm512_set1_ps(G2[j][1]),
                                            _mm512_mul_ps(t[i][2], _mm512_set1_ps(G2[j][2])))));
            }
            /* 32-bit lane l: k's bf16 of channel n0 + l below, k + 1's above */
            uint16_t *o = u + ((size_t)(n0 / NR) * (k_all / 2) + k0 / 2) * NR * 2 + (size_t)(n0 % NR) * 2;
            for (int xi = 0; xi < P; xi++) {
                __m512i pair = _mm512_or_si512(_mm512_cvtepu16_epi32(h[0][xi]),
                                               _mm512_slli_epi32(_mm512_cvtepu16_epi32(h[1][xi]), 16));
                _mm512_storeu_si512(o + xi * xi_stride, pair);
            }
        }
    }
}

/* ---------------------------------------------------------------- activation transforms */

/* An activation [n, c/b, h, w, b] and its storage. */
typedef struct Act {
    const void *p;
    int c, b;
    bool bf16;
} Act;

/* Where a tile's rows x cols pixels lie: image i, the pixels (winograd.h) and whether all lie inside. */
typedef struct TileAt {
    int i;
    bool inside;
    WinoPixels px;
} TileAt;

/* The rows x cols pixels from (h, w) of image i of an activation with block b. */
static TileAt tile_at(const ConvDesc *d, int b, int i, int h, int w, int rows, int cols) {
    return (TileAt){.i = i, .inside = h >= 0 && h + rows <= d->h && w >= 0 && w + cols <= d->w,
                    .px = wino_pixels(d, b, h, w)};
}

/* Whether pixel (k, j) of tile ta lies inside the image. */
static inline bool tile_in(const TileAt *ta, int k, int j) { return wino_pixel_in(&ta->px, k, j); }

/* Element offset of pixel (k, j) of tile ta (inside the image) from the channel group at element g. */
static inline size_t tile_off(const TileAt *ta, size_t g, int k, int j) {
    return (size_t)((ptrdiff_t)g + wino_pixel_off(&ta->px, k, j));
}

/* Walks the 16-channel groups of image i of an activation at pixel (0, 0): at is the element offset of channel
 * c's group, groups_next moves it to c + 16 without a division. */
typedef struct Groups {
    size_t at, skip;            /* skip: from past a block's last group to the next block's first */
    int within, b;
} Groups;

static Groups groups_of(const ConvDesc *d, const Act *a, int i) {
    size_t plane = (size_t)d->h * d->w * a->b;
    return (Groups){(size_t)i * (a->c / a->b) * plane, plane - (size_t)a->b, 0, a->b};
}

static inline void groups_next(Groups *g) {
    g->at += 16;
    g->within += 16;
    if (g->within == g->b) g->within = 0, g->at += g->skip;
}

/* Where tile t lies: image i and its top-left output pixel (h0, w0). */
static void tile_locate(const ConvDesc *d, int t, int *i, int *h0, int *w0) {
    int per_image = tiles_h(d) * tiles_w(d), r = t % per_image;
    *i = t / per_image;
    *h0 = 2 * (r / tiles_w(d));
    *w0 = 2 * (r % tiles_w(d));
}

/* The 4x4 input pixels of tile t (from (h0 - 1, w0 - 1)) or its 2x2 output pixels (from (h0, w0)). */
static TileAt tile_input(const ConvDesc *d, int b, int t) {
    int i, h0, w0;
    tile_locate(d, t, &i, &h0, &w0);
    return tile_at(d, b, i, h0 - 1, w0 - 1, 4, 4);
}
static TileAt tile_output(const ConvDesc *d, int b, int t) {
    int i, h0, w0;
    tile_locate(d, t, &i, &h0, &w0);
    return tile_at(d, b, i, h0, w0, 2, 2);
}

/* u = B^T r for 4 values r; B^T rows (1 0 -1 0) (0 1 1 0) (0 -1 1 0) (0 1 0 -1). */
static inline __attribute__((always_inline)) void bt4(const __m512 r[4], __m512 u[4]) {
    u[0] = _mm512_sub_ps(r[0], r[2]);
    u[1] = _mm512_add_ps(r[1], r[2]);
    u[2] = _mm512_sub_ps(r[2], r[1]);
    u[3] = _mm512_sub_ps(r[1], r[3]);
}

/* V = B^T x B of the 4x4 input pixels ta of the 16 channels whose group is at element g, zero outside, rounded
 * to bf16: h[xi]. edge and bf16 are constants where this is inlined (edge: the tile may reach outside the
 * image). */
static inline __attribute__((always_inline)) void v_group(const Act *x, const TileAt *ta, size_t g, bool edge,
                                                           bool bf16, __m256i h[P]) {
    __m512 r[4], u[4][4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            r[j] = !edge || tile_in(ta, k, j) ? load16(x->p, tile_off(ta, g, k, j), bf16) : _mm512_setzero_ps();
        bt4(r, u[k]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512 col[4] = {u[0][j], u[1][j], u[2][j], u[3][j]}, t[4];
        bt4(col, t);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) h[k * 4 + j] = round16(t[k]);
    }
}

/* v_group with edge and x's storage known only at run time. */
static inline __attribute__((always_inline)) void v_group_any(const Act *x, const TileAt *ta, size_t g, bool edge,
                                                               __m256i h[P]) {
    if (x->bf16) {
        if (edge) v_group(x, ta, g, true, true, h);
        else v_group(x, ta, g, false, true, h);
    } else {
        if (edge) v_group(x, ta, g, true, false, h);
        else v_group(x, ta, g, false, false, h);
    }
}

/* Z = A dy A^T of the 2x2 pixels ta of dy's 16 channels whose group is at element g, zero outside, rounded to
 * bf16: h[xi]. A's rows
 * (1 0) (1 1) (1 -1) (0 -1). */
static inline __attribute__((always_inline)) void z_group(const Act *dy, const TileAt *ta, size_t g, bool bf16,
                                                           __m256i h[P]) {
    __m512 r[4], t[4][2], zero = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++)
        r[e] = tile_in(ta, e / 2, e % 2) ? load16(dy->p, tile_off(ta, g, e / 2, e % 2), bf16) : zero;
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++) {
        t[0][j] = r[j];
        t[1][j] = _mm512_add_ps(r[j], r[2 + j]);
        t[2][j] = _mm512_sub_ps(r[j], r[2 + j]);
        t[3][j] = _mm512_sub_ps(zero, r[2 + j]);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        h[k * 4] = round16(t[k][0]);
        h[k * 4 + 1] = round16(_mm512_add_ps(t[k][0], t[k][1]));
        h[k * 4 + 2] = round16(_mm512_sub_ps(t[k][0], t[k][1]));
        h[k * 4 + 3] = round16(_mm512_sub_ps(zero, t[k][1]));
    }
}

/* V of one tile, all channels of x: v[xi * xi_stride + c] (bounds checks only where the tile reaches outside). */
static inline __attribute__((always_inline)) void input_tile_as(const ConvDesc *d, const Act *x, const TileAt *ta,
                                                                 uint16_t *v, size_t xi_stride, bool edge,
                                                                 bool bf16) {
    Groups g = groups_of(d, x, ta->i);
    for (int c = 0; c < x->c; c += 16, groups_next(&g)) {
        __m256i h[P];
        v_group(x, ta, g.at, edge, bf16, h);
#pragma GCC unroll 16
        for (int xi = 0; xi < P; xi++) _mm256_storeu_si256((__m256i *)(v + xi * xi_stride + c), h[xi]);
    }
}

static void input_tile(const ConvDesc *d, const Act *x, int t, uint16_t *v, size_t xi_stride) {
    TileAt ta = tile_input(d, x->b, t);
    if (x->bf16) {
        if (ta.inside) input_tile_as(d, x, &ta, v, xi_stride, false, true);
        else input_tile_as(d, x, &ta, v, xi_stride, true, true);
    } else {
        if (ta.inside) input_tile_as(d, x, &ta, v, xi_stride, false, false);
        else input_tile_as(d, x, &ta, v, xi_stride, true, false);
    }
}

/* The pairs of h[xi] and g[xi]: 32-bit lane l holds h's bf16 l below, g's above. */
static inline __m512i pair16(__m256i h, __m256i g) {
    return _mm512_or_si512(_mm512_cvtepu16_epi32(h), _mm512_slli_epi32(_mm512_cvtepu16_epi32(g), 16));
}

/* V of tiles t and t + 1 (zero for a t + 1 past the thread's last tile hi) and Z of their dy, interleaved for the
 * backward-weights products: v[xi * v_stride + 2 c + (0 or 1)], z[xi * z_stride + 2 c + (0 or 1)]. */
static void tile_pair(const ConvDesc *d, const Act *x, const Act *dy, int t, int hi, uint16_t *v, size_t v_stride,
                      uint16_t *z, size_t z_stride) {
    bool two = t + 1 < hi;
    TileAt xa = tile_input(d, x->b, t), xb = two ? tile_input(d, x->b, t + 1) : xa;
    TileAt ya = tile_output(d, dy->b, t), yb = two ? tile_output(d, dy->b, t + 1) : ya;
    __m256i ha[P], hb[P], zero = _mm256_setzero_si256();
    bool edge = !xa.inside || !xb.inside;
    Groups ga = groups_of(d, x, xa.i), gb = groups_of(d, x, xb.i);
    for (int c = 0; c < x->c; c += 16, groups_next(&ga), groups_next(&gb)) {
        v_group_any(x, &xa, ga.at, edge, ha);
        if (two) v_group_any(x, &xb, gb.at, edge, hb);
        else
            for (int xi = 0; xi < P; xi++) hb[xi] = zero;
        for (int xi = 0; xi < P; xi++) _mm512_storeu_si512(v + xi * v_stride + 2 * c, pair16(ha[xi], hb[xi]));
    }
    ga = groups_of(d, dy, ya.i), gb = groups_of(d, dy, yb.i);
    for (int c = 0; c < dy->c; c += 16, groups_next(&ga), groups_next(&gb)) {
        if (dy->bf16) z_group(dy, &ya, ga.at, true, ha);
        else z_group(dy, &ya, ga.at, false, ha);
        if (!two)
            for (int xi = 0; xi < P; xi++) hb[xi] = zero;
        else if (dy->bf16) z_group(dy, &yb, gb.at, true, hb);
        else z_group(dy, &yb, gb.at, false, hb);
        for (int xi = 0; xi < P; xi++) _mm512_storeu_si512(z + xi * z_stride + 2 * c, pair16(ha[xi], hb[xi]));
    }
}

/* y = A^T M A of one tile, m[xi * xi_stride + c], into its 2x2 output pixels ta of y that lie inside the image
 * (checked only with edge: the tile may reach outside); A^T rows (1 1 1 0) (0 1 -1 -1). */
static inline __attribute__((always_inline)) void output_tile_as(const ConvDesc *d, const float *m,
                                                                  size_t xi_stride, const Act *y, const TileAt *ta,
                                                                  bool edge, bool bf16) {
    Groups gw = groups_of(d, y, ta->i);
    for (int c = 0; c < y->c; c += 16, groups_next(&gw)) {
        size_t g = gw.at;
        __m512 s[2][4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            const float *p = m + (size_t)j * xi_stride + c;
            __m512 m0 = _mm512_loadu_ps(p), m1 = _mm512_loadu_ps(p + 4 * xi_stride);
            __m512 m2 = _mm512_loadu_ps(p + 8 * xi_stride), m3 = _mm512_loadu_ps(p + 12 * xi_stride);
            s[0][j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
            s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
        }
#pragma GCC unroll 2
        for (int k = 0; k < 2; k++) {
            __m512 o0 = _mm512_add_ps(_mm512_add_ps(s[k][0], s[k][1]), s[k][2]);
            __m512 o1 = _mm512_sub_ps(_mm512_sub_ps(s[k][1], s[k][2]), s[k][3]);
            if (!edge || tile_in(ta, k, 0)) store16((void *)y->p, tile_off(ta, g, k, 0), o0, bf16);
            if (!edge || tile_in(ta, k, 1)) store16((void *)y->p, tile_off(ta, g, k, 1), o1, bf16);
        }
    }
}

static void output_tile(const ConvDesc *d, const float *m, size_t xi_stride, const Act *y, int t) {
    TileAt ta = tile_output(d, y->b, t);
    if (y->bf16) {
        if (ta.inside) output_tile_as(d, m, xi_stride, y, &ta, false, true);
        else output_tile_as(d, m, xi_stride, y, &ta, true, true);
    } else {
        if (ta.inside) output_tile_as(d, m, xi_stride, y, &ta, false, false);
        else output_tile_as(d, m, xi_stride, y, &ta, true, false);
    }
}

/* ---------------------------------------------------------------- GEMM kernel */

/* c [rows][NR] (row stride c_rs) = (acc ? c : 0) + a [rows][2 kp] b [2 kp][NR], summed in fp32 over kp pairs of
 * bf16 products: row r's pair k of a (two bf16) at a[r * a_rs + k * a_ks], pair k of b at b[k * b_ks], [NR][2] (the
 * pairs of each column). rows <= MR is a constant where this is inlined. */
static inline __attribute__((always_inline)) void gemm_tile(int rows, int kp, const uint16_t *a, ptrdiff_t a_rs,
                                                            ptrdiff_t a_ks, const uint16_t *b, ptrdiff_t b_ks,
                                                            float *c, ptrdiff_t c_rs, bool acc) {
    __m512 s[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
        s[r][0] = acc ? _mm512_loadu_ps(c + r * c_rs) : _mm512_setzero_ps();
        s[r][1] = acc ? _mm512_loadu_ps(c + r * c_rs + 16) : _mm512_setzero_ps();
    }
    for (int k = 0; k < kp; k++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + k * b_ks);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + k * b_ks + NR);
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) {
            int32_t pair;
            memcpy(&pair, a + r * a_rs + k * a_ks, sizeof pair);
            __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
            s[r][0] = _mm512_dpbf16_ps(s[r][0], av, b0);
            s[r][1] = _mm512_dpbf16_ps(s[r][1], av, b1);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
        _mm512_storeu_ps(c + r * c_rs, s[r][0]);
        _mm512_storeu_ps(c + r * c_rs + 16, s[r][1]);
    }
}

/* gemm_tile with a run-time rows (1..MR), each case a specialized copy. */
static void gemm_rows(int rows, int kp, const uint16_t *a, ptrdiff_t a_rs, ptrdiff_t a_ks, const uint16_t *b,
                      ptrdiff_t b_ks, float *c, ptrdiff_t c_rs, bool acc) {
    switch (rows) {
    case 6: gemm_tile(6, kp, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 5: gemm_tile(5, kp, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 4: gemm_tile(4, kp, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 3: gemm_tile(3, kp, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    case 2: gemm_tile(2, kp, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    default: gemm_tile(1, kp, a, a_rs, a_ks, b, b_ks, c, c_rs, acc); break;
    }
}

/* ---------------------------------------------------------------- passes */

/* out = conv(in) for forward (in x, out y) or backward data (in dy, out dx), U in work. */
static void product(const ConvDesc *d, const Act *in, const Act *out, void *work, int threads) {
    int k = in->c, n = out->c, tiles = tiles_all(d), chunk = chunk_tiles(d, k, n, false, threads);
    const uint16_t *u = work;
    size_t u_xi = (size_t)k * n, v_xi = (size_t)chunk * k + GAP / 2, m_xi = (size_t)chunk * n + GAP / 4;
    size_t per_thread = slot_bytes(d, false, threads);
#pragma omp parallel num_threads(threads)
    {
        uint16_t *v = (uint16_t *)((char *)work + u_bytes(d) + (size_t)omp_get_thread_num() * per_thread);
        float *mm = (float *)(v + P * v_xi);
        int lo, hi;
        wino_thread_tiles(tiles, &lo, &hi);
        for (int t0 = lo; t0 < hi; t0 += chunk) {
            int cnt = hi - t0 < chunk ? hi - t0 : chunk;
            for (int t = 0; t < cnt; t++) input_tile(d, in, t0 + t, v + (size_t)t * k, v_xi);
            for (int xi = 0; xi < P; xi++)
                for (int nb = 0; nb < n / NR; nb++) {
                    const uint16_t *bp = u + xi * u_xi + (size_t)nb * k * NR;
                    for (int r = 0; r < cnt; r += MR)
                        gemm_rows(cnt - r < MR ? cnt - r : MR, k / 2, v + xi * v_xi + (size_t)r * k, k, 2, bp,
                                  2 * NR, mm + xi * m_xi + (size_t)r * n + nb * NR, n, false);
                }
            for (int t = 0; t < cnt; t++) output_tile(d, mm + (size_t)t * n, m_xi, out, t0 + t);
        }
    }
}

/* y [n, h, w, cout] = conv(x [n, h, w, cin], w [cout, cin, 3, 3]) */
void wino16_forward(const ConvDesc *d, int bx, int by, const void *x, const float *w, void *y, void *work,
                    int threads) {
    Act in = {x, d->cin, bx, d->t.x == ACT_BF16}, out = {y, d->cout, by, d->t.y == ACT_BF16};
    weights_transform(d, w, false, work, threads);
    product(d, &in, &out, work, threads);
}

/* dx [n, h, w, cin] from dy [n, h, w, cout] and w [cout, cin, 3, 3] */
void wino16_backward_data(const ConvDesc *d, int bx, int by, const void *dy, const float *w, void *dx, void *work,
                          int threads) {
    Act in = {dy, d->cout, by, d->t.dy == ACT_BF16}, out = {dx, d->cin, bx, d->t.dx == ACT_BF16};
    weights_transform(d, w, true, work, threads);
    product(d, &in, &out, work, threads);
}

/* dw [cout, cin, 3, 3] from x [n, h, w, cin] and dy [n, h, w, cout]: each thread sums V[xi]^T Z[xi] over its tiles,
 * two tiles per bf16 pair, into its own dU [16][cin][cout] (thread 0's at the start of work, the others' after the
 * chunk buffers); the sums are added and transformed back by winograd.c. (Threads sharing one chunk and one dU,
 * each adding to its own part of dU, saves the adding but was slower up to 128 channels: docs/performance.md.) */
void wino16_backward_weights(const ConvDesc *d, int bx, int by, const void *x, const void *dy, float *dw,
                             void *work, int threads) {
    Act xa = {x, d->cin, bx, d->t.x == ACT_BF16}, ya = {dy, d->cout, by, d->t.dy == ACT_BF16};
    int tiles = tiles_all(d), chunk = chunk_tiles(d, d->cin, d->cout, true, threads);
    size_t vp = pair_stride(d->cin), zp = pair_stride(d->cout), u_xi = (size_t)d->cin * d->cout;
    size_t v_xi = (size_t)chunk / 2 * vp + GAP / 2, z_xi = (size_t)chunk / 2 * zp + GAP / 2;
    size_t per_thread = slot_bytes(d, true, threads);
    float *du0 = work, *du_rest = (float *)((char *)work + du_bytes(d) + (size_t)threads * per_thread);
#pragma omp parallel num_threads(threads)
    {
        int me = omp_get_thread_num();
        uint16_t *v = (uint16_t *)((char *)work + du_bytes(d) + (size_t)me * per_thread), *z = v + P * v_xi;
        float *du = me == 0 ? du0 : du_rest + (size_t)(me - 1) * du_floats(d);
        memset(du, 0, du_floats(d) * sizeof(float));
        int lo, hi;
        wino_thread_tiles(tiles, &lo, &hi);
        for (int t0 = lo; t0 < hi; t0 += chunk) {
            int cnt = hi - t0 < chunk ? hi - t0 : chunk; /* (cnt + 1) / 2 pairs, the last maybe with a zero tile */
            for (int t = 0; t < cnt; t += 2)
                tile_pair(d, &xa, &ya, t0 + t, hi, v + (size_t)t / 2 * vp, v_xi, z + (size_t)t / 2 * zp, z_xi);
            for (int xi = 0; xi < P; xi++)
                for (int nb = 0; nb < d->cout / NR; nb++)
                    for (int r = 0; r < d->cin; r += MR)
                        gemm_rows(d->cin - r < MR ? d->cin - r : MR, (cnt + 1) / 2, v + xi * v_xi + 2 * r, 2,
                                  (ptrdiff_t)vp, z + xi * z_xi + 2 * nb * NR, (ptrdiff_t)zp,
                                  du + xi * u_xi + (size_t)r * d->cout + nb * NR, d->cout, true);
        }
#pragma omp barrier
        wino_sum_threads(du0, du_rest, du_floats(d));
    }
    wino_weights_untransform(d, 2, du0, dw, threads);
}
