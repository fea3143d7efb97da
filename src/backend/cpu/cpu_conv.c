/* cpu_conv.c — convolutions of the CPU backend through oneDNN (Debian's libdnnl 2.6, the v2 C API).
 *
 * With cpu_fc.c (the FC's sgemm), the only file of ctrain that includes oneDNN. Activations stay in the caller's
 * buffers, in the caller's layout: nChwBc when the plan's block B divides the channel count, else NHWC (backend.h).
 * A plan whose input and output differ in layout (ResNet's stem: 3 channels in, 64 out), or whose blocked
 * primitives would include a kernel that oneDNN's GEMM convolution (offered on NHWC only) beats by far — its
 * reference loops (the weight gradient of a 3x3 convolution on a 2x2 image) or a generic direct kernel on a 1x1
 * convolution (a strided one on an odd size, which the 1x1 kernel refuses) — runs its primitives on NHWC and
 * reorders the blocked side into and out of the workspace. Except the stem when it is the network's first layer
 * (ConvDesc.no_dx): oneDNN's first-layer kernels read an NCHW input and write the blocked output, so that plan
 * reorders only the small input (to NCHW) and has no backward data, for which oneDNN offers only its reference
 * loops there. The weights are the caller's PyTorch OIHW, reordered into the layout each primitive asks for
 * (dnnl_format_tag_any) when the two differ (the bf16 pair layouts of 1x1 weights by weights_pair16 here, where
 * oneDNN's reorder ran at 7-14 GB/s), and diff weights are reordered back to OIHW (from AVX-512's ABcd16b16a by
 * weights_unblock16 here, in under half the time of oneDNN's reorder). Everything is made once per shape in
 * cpu_conv_plan: primitives, reorders and memory objects without buffers. A call only points the memory objects at
 * its arguments (dnnl_memory_set_data_handle) and at the workspace the CpuConv shares between its plans (oneDNN's
 * scratchpads in user mode, and the weights in the primitives' layouts).
 * In bf16 (a plan made with bf16 = true) the three primitives read bf16 inputs — the caller's own where its
 * ConvDesc.t says they are stored bf16, else copies cast into the workspace by oneDNN reorders (round to nearest
 * even); the weights cast by the weight reorders — and accumulate in fp32: y and dx come out in the caller's
 * storage (fp32, or bf16 written by the primitive itself), dw in fp32. Backward data and backward weights read
 * the same bf16 copy of dy: the first casts it, the second reuses it. An fp32 plan refuses bf16 storage.
 * Winograd: an fp32 plan for a 3x3 stride-1 shape that wino_tile picks runs all three passes in winograd.c
 * (no oneDNN objects); a bf16 plan runs the passes that wino16_passes picks in winograd_bf16.c and the others on
 * oneDNN.
 * oneDNN runs on OpenMP here; each entry point sets the OpenMP thread count to the backend's for its
 * duration and restores the caller's afterwards. */
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "backend/cpu/cpu_common.h"
#include "backend/cpu/cpu_conv.h"
#include "backend/cpu/winograd.h"
#include "backend/cpu/winograd_bf16.h"

#define WORK_ALIGN 64

struct CpuConv {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int threads;
    void *work;                 /* [scratch | weights | x16 | dy16], shared by plans; sizes in bytes: */
    size_t scratch_bytes, weights_bytes, x16_bytes, dy16_bytes;
    const void *dy16_of;        /* the dy whose bf16 copy is in the dy16 region, for dy16_plan only; */
    const void *dy16_plan;      /* both NULL when the region holds nothing reusable */
};

/* A primitive and the memory object for its scratchpad (NULL when it needs none). */
typedef struct Prim {
    dnnl_primitive_t prim;
    dnnl_memory_t scratch;
    size_t scratch_bytes;
} Prim;

/* The 1x1 bf16 weight layouts that weights_pair16 writes instead of oneDNN's reorder (which ran at 7-14 GB/s on
 * them): blocks of 16 output (a) and 16 input (b) channels, outer order AB or BA, and within a block the pairs of
 * one dimension side by side, as vdpbf16ps reads them. */
typedef enum WeiPairs {
    WEI_REORDER = 0,
    WEI_AB_8B16A2B,             /* [cout/16][cin/16][8][16 (cout)][2 (cin)]: the forward primitive's */
    WEI_AB_8A16B2A,             /* [cout/16][cin/16][8][16 (cin)][2 (cout)] */
    WEI_BA_8A16B2A,             /* [cin/16][cout/16][8][16 (cin)][2 (cout)]: backward data's */
} WeiPairs;

/* One direction of a convolution: the primitive, its two activation memories, its weights memory in the
 * primitive's layout and, when that is not OIHW, the reorder from/to the caller's OIHW weights. */
typedef struct ConvPass {
    Prim conv;
    Prim reorder;               /* .prim is NULL when the primitive takes OIHW itself */
    dnnl_memory_t act_a, act_b; /* fwd: src, dst; bwd data: diff_dst, diff_src; bwd weights: src, diff_dst */
    dnnl_memory_t wei;          /* weights (or diff weights) in the primitive's layout */
    dnnl_memory_t user_wei;     /* OIHW weights of the caller; only with a reorder */
    size_t wei_bytes;           /* bytes of wei in the workspace; 0 when the primitive takes OIHW */
    bool unblock16;             /* diff weights in ABcd16b16a, back to OIHW by weights_unblock16, not .reorder */
    WeiPairs pairs16;           /* 1x1 bf16 weights written by weights_pair16, not .reorder (WEI_REORDER: not) */
} ConvPass;

/* A oneDNN reorder of an activation between the caller's buffer and its copy in the workspace: to the
 * primitive's type and layout for an input (bf16, or NHWC in a plan on NHWC), back for an output. */
typedef struct ActCast {
    Prim reorder;
    dnnl_memory_t from, to;
    size_t bytes;               /* of the copy in the workspace; 0: the plan needs no such reorder */
} ActCast;

/* The layouts a plan's primitives run on: the caller's; NHWC on both sides; or (a plan without backward data
 * whose input is NHWC and output blocked: ResNet's stem) an NCHW copy of the input and the caller's output. */
typedef enum { ON_CALLERS, ON_NHWC, ON_NCHW_INPUT } PrimLayout;

typedef struct CpuConvPlan {
    CpuConv *cc;
    ConvDesc d;
    bool bf16;
    PrimLayout on;              /* the layouts its primitives run on */
    int wino_m;                 /* > 0: the plan runs winograd.c with m x m output tiles (see wino_tile), x and dx */
    int wino_bx, wino_by;       /* in blocks of wino_bx channels, y and dy of wino_by; no oneDNN objects then */
    unsigned wino16;            /* bit 1 << pass set: that pass by winograd_bf16.c (see wino16_passes), same blocks */
    ConvPass fwd, bwd_data, bwd_weights;
    ActCast x16, dy16;          /* inputs x and dy as the primitives read them (x16 and dy16 regions) */
    ActCast y_out, dx_out;      /* outputs of a plan on NHWC, written first to the dy16 and x16 regions */
} CpuConvPlan;

/* The memory descriptors and primitive descriptors a plan is made from: user_x/user_y/user_dx/user_dy are the
 * caller's activations (fp32 or bf16 as d->t says); src/dst what the primitives write (dx and y: the caller's
 * layout and type, or as PrimLayout says); src16/dst16/wei16_any what they read (bf16 in a bf16 plan, else
 * fp32). */
typedef struct PlanDescs {
    dnnl_memory_desc_t user_x, user_y, user_dx, user_dy;
    dnnl_memory_desc_t src, dst, wei_any, wei_user;
    dnnl_memory_desc_t src16, dst16, wei16_any;
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t fwd, bwd_data, bwd_weights;
} PlanDescs;

/* ---------------------------------------------------------------- errors and threads */

/* Turns a failed oneDNN status into an Error naming the call and the convolution's shape. */
static int conv_check(dnnl_status_t st, const char *call, const ConvDesc *d, Error *err) {
    if (st == dnnl_success) return 0;
    return error_set(err,
                     "oneDNN %s failed (%s) for convolution x[%d,%d,%d,%d] * w[%d,%d,%d,%d] stride %d pad %d -> "
                     "y[%d,%d,%d,%d]",
                     call, dnnl_status2str(st), d->n, d->h, d->w, d->cin, d->cout, d->cin, d->k, d->k, d->stride,
                     d->pad, d->n, d->oh, d->ow, d->cout);
}

/* TRY(fn, (args)): calls fn, and on failure fills err and returns -1 from the enclosing function. */
#define TRY(fn, args)                                         \
    do {                                                      \
        if (conv_check(fn args, #fn, d, err) != 0) return -1; \
    } while (0)

/* ---------------------------------------------------------------- context */

/* Creates the engine and the stream (see cpu_conv.h). */
int cpu_conv_create(int threads, CpuConv **out, Error *err) {
    *out = NULL;
    CpuConv *cc = calloc(1, sizeof *cc);
    if (!cc) return error_set(err, "out of memory creating the oneDNN context");
    cc->threads = threads > 0 ? threads : 1;
    dnnl_status_t st = dnnl_engine_create(&cc->engine, dnnl_cpu, 0);
    if (st == dnnl_success) st = dnnl_stream_create(&cc->stream, cc->engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        cpu_conv_destroy(cc);
        return error_set(err, "oneDNN could not create a CPU engine and stream (%s)", dnnl_status2str(st));
    }
    *out = cc;
    return 0;
}

/* Frees the context and its workspace. */
void cpu_conv_destroy(CpuConv *cc) {
    if (!cc) return;
    if (cc->stream) dnnl_stream_destroy(cc->stream);
    if (cc->engine) dnnl_engine_destroy(cc->engine);
    free(cc->work);
    free(cc);
}

static size_t align_up(size_t n) { return (n + WORK_ALIGN - 1) / WORK_ALIGN * WORK_ALIGN; }

/* Grows the shared workspace to hold scratch bytes of scratchpad, weights bytes of weights and the bf16 copies
 * of x (x16 bytes) and dy (dy16 bytes). */
static int work_reserve(CpuConv *cc, size_t scratch, size_t weights, size_t x16, size_t dy16, const ConvDesc *d,
                        Error *err) {
    scratch = align_up(scratch);
    weights = align_up(weights);
    x16 = align_up(x16);
    dy16 = align_up(dy16);
    if (scratch <= cc->scratch_bytes && weights <= cc->weights_bytes && x16 <= cc->x16_bytes &&
        dy16 <= cc->dy16_bytes)
        return 0;
    if (scratch < cc->scratch_bytes) scratch = cc->scratch_bytes;
    if (weights < cc->weights_bytes) weights = cc->weights_bytes;
    if (x16 < cc->x16_bytes) x16 = cc->x16_bytes;
    if (dy16 < cc->dy16_bytes) dy16 = cc->dy16_bytes;
    size_t total = scratch + weights + x16 + dy16;
    void *w = aligned_alloc(WORK_ALIGN, total);
    if (!w) { /* the old workspace and its sizes stay as they were */
        error_set(err, "out of memory: %zu MiB of oneDNN workspace for convolution x[%d,%d,%d,%d] k %d", total >> 20,
                  d->n, d->h, d->w, d->cin, d->k);
        return BACKEND_OUT_OF_MEMORY;
    }
    free(cc->work);
    cc->work = w;
    cc->scratch_bytes = scratch;
    cc->weights_bytes = weights;
    cc->x16_bytes = x16;
    cc->dy16_bytes = dy16;
    cc->dy16_of = NULL;
    cc->dy16_plan = NULL;
    return 0;
}

static void *work_scratch(const CpuConv *cc) { return cc->work; }
static void *work_weights(const CpuConv *cc) { return (char *)cc->work + cc->scratch_bytes; }
static void *work_x16(const CpuConv *cc) { return (char *)cc->work + cc->scratch_bytes + cc->weights_bytes; }
static void *work_dy16(const CpuConv *cc) { return (char *)work_x16(cc) + cc->x16_bytes; }

/* ---------------------------------------------------------------- plan construction */

/* oneDNN's tag for an activation with c channels when the caller blocks multiples of block (0: none). */
static dnnl_format_tag_t act_tag(int c, int block) {
    if (block == 0 || c % block != 0) return dnnl_nhwc;
    return block == 16 ? dnnl_nChw16c : dnnl_nChw8c;
}

/* oneDNN's data type for an activation stored as t. */
static dnnl_data_type_t act_dt(ActType t) { return t == ACT_BF16 ? dnnl_bf16 : dnnl_f32; }

/* Fills the memory descriptors: the caller's activations, the primitives' (as on says), OIHW user weights,
 * and "any" weights for the primitives; with bf16, bf16 copies of the activations and weights. */
static int descs_init_memory(PlanDescs *pd, const ConvDesc *d, bool bf16, int block, PrimLayout on, Error *err) {
    dnnl_dims_t src = {d->n, d->cin, d->h, d->w}, dst = {d->n, d->cout, d->oh, d->ow};
    dnnl_dims_t wei = {d->cout, d->cin, d->k, d->k};
    dnnl_data_type_t low = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_format_tag_t user_s = act_tag(d->cin, block), user_d = act_tag(d->cout, block);
    dnnl_format_tag_t ts = on == ON_NHWC ? dnnl_nhwc : on == ON_NCHW_INPUT ? dnnl_nchw : user_s;
    dnnl_format_tag_t td = on == ON_NHWC ? dnnl_nhwc : user_d;
    TRY(dnnl_memory_desc_init_by_tag, (&pd->user_x, 4, src, act_dt(d->t.x), user_s));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->user_dx, 4, src, act_dt(d->t.dx), user_s));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->user_y, 4, dst, act_dt(d->t.y), user_d));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->user_dy, 4, dst, act_dt(d->t.dy), user_d));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->src, 4, src, act_dt(d->t.dx), ts));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->dst, 4, dst, act_dt(d->t.y), td));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->wei_any, 4, wei, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->wei_user, 4, wei, dnnl_f32, dnnl_oihw));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->src16, 4, src, low, ts));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->dst16, 4, dst, low, td));
    TRY(dnnl_memory_desc_init_by_tag, (&pd->wei16_any, 4, wei, low, dnnl_format_tag_any));
    TRY(dnnl_primitive_attr_create, (&pd->attr));
    TRY(dnnl_primitive_attr_set_scratchpad_mode, (pd->attr, dnnl_scratchpad_mode_user));
    return 0;
}

/* The passes of a convolution, for impl_rank. */
typedef enum { PASS_FORWARD, PASS_BACKWARD_DATA, PASS_BACKWARD_WEIGHTS } PassKind;

/* How a plan ranks oneDNN's implementation impl for pass of d (lower is better; oneDNN's own order breaks
 * ties):
 * 1, slow: a 1x1 convolution on a generic direct kernel ("jit:avx2", "jit:avx512_core"), which oneDNN lists
 *   first when its 1x1 kernel cannot take the shape (a stride that does not divide the input size, e.g.
 *   11x11 -> 6x6 in ResNet-50 at 176 px). On the AVX2 machine it ran at 31-50 GFLOP/s against 63-109 for
 *   oneDNN's GEMM-based convolution, listed next (docs/performance.md).
 *   Also the backward weights of a 7x7 kernel, or of a 3x3 kernel with 256 or more output channels (ResNet's
 *   stem and its last two stages), on the AVX2 direct kernel ("jit:avx2"): there oneDNN's GEMM convolution,
 *   listed next, took 0.67-0.91 of its time on the AVX2 machine (7 interleaved rounds per layer), while with 64
 *   channels it was no faster and with ResNet-20's 16-64 up to 4x slower (docs/performance.md). Measured on
 *   AVX2 only, so the rule names that kernel.
 * 2, reference loops ("ref:any"): oneDNN's last resort, orders of magnitude slower; only when nothing else
 *   takes the shape (the blocked layouts leave oneDNN's GEMM convolution out, so a "slow" rule above may have
 *   no better kernel left).
 * 3, wrong: oneDNN 2.6.3's jit_1x1 backward weights with a stride (its "reduce to unit stride" copy) and
 *   channels padded to the vector block returns wrong sums on AVX2 (n 5, 12x12, cin 4, cout 8, stride 2: off
 *   by 78% of the largest element; test_backend_ops holds the shape). Such layers are tiny, so any layer with
 *   stride > 1 and a channel count that is not a multiple of 16 (the widest block) avoids it.
 * 0 otherwise. */
/* A 1x1 convolution on a generic direct kernel (rank 1 below). */
static bool generic_1x1(const char *impl, const ConvDesc *d) { return d->k == 1 && strncmp(impl, "jit:", 4) == 0; }

static int impl_rank(const char *impl, PassKind pass, const ConvDesc *d) {
    if (strncmp(impl, "ref", 3) == 0) return 2;
    if (pass == PASS_BACKWARD_WEIGHTS && d->k == 1 && d->stride > 1 && (d->cin % 16 != 0 || d->cout % 16 != 0) &&
        strncmp(impl, "jit_1x1", 7) == 0)
        return 3;
    if (generic_1x1(impl, d)) return 1;
    if (pass == PASS_BACKWARD_WEIGHTS && (d->k >= 7 || (d->k > 1 && d->cout >= 256)) && strcmp(impl, "jit:avx2") == 0)
        return 1;
    return 0;
}

/* Creates the primitive descriptor of op (hint: the forward one, for the backward passes): the first that
 * oneDNN lists among those impl_rank ranks best, never a wrong one. */
static int pd_create(dnnl_primitive_desc_t *out, const void *op, const_dnnl_primitive_desc_t hint, PassKind pass,
                     PlanDescs *pd, CpuConv *cc, const ConvDesc *d, Error *err) {
    dnnl_primitive_desc_iterator_t it;
    TRY(dnnl_primitive_desc_iterator_create, (&it, op, pd->attr, cc->engine, hint));
    int best = 3;
    *out = NULL;
    do {
        dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
        if (!cand) continue;
        const char *impl = "";
        dnnl_primitive_desc_query(cand, dnnl_query_impl_info_str, 0, &impl);
        int rank = impl_rank(impl, pass, d);
        if (rank < best) {
            if (*out) dnnl_primitive_desc_destroy(*out);
            *out = cand;
            best = rank;
        } else {
            dnnl_primitive_desc_destroy(cand);
        }
    } while (best > 0 && dnnl_primitive_desc_iterator_next(it) == dnnl_success);
    dnnl_primitive_desc_iterator_destroy(it);
    if (!*out) return conv_check(dnnl_unimplemented, "dnnl_primitive_desc_iterator_fetch", d, err);
    return 0;
}

/* Creates the three convolution primitive descriptors (the forward one is the hint of the backward ones):
 * forward reads src16 and wei16 and writes dst (y); backward data reads dst16 (dy) and wei16 and writes src
 * (dx); backward weights reads src16 and dst16 and writes fp32 weights (dw). */
static int descs_init_conv(PlanDescs *pd, CpuConv *cc, const ConvDesc *d, Error *err) {
    dnnl_dims_t strides = {d->stride, d->stride}, pad = {d->pad, d->pad};
    dnnl_convolution_desc_t fwd, bwd_data, bwd_weights;
    TRY(dnnl_convolution_forward_desc_init, (&fwd, dnnl_forward_training, dnnl_convolution_direct, &pd->src16,
                                             &pd->wei16_any, NULL, &pd->dst, strides, pad, pad));
    if (pd_create(&pd->fwd, &fwd, NULL, PASS_FORWARD, pd, cc, d, err) != 0) return -1;
    if (!d->no_dx) {
        TRY(dnnl_convolution_backward_data_desc_init, (&bwd_data, dnnl_convolution_direct, &pd->src,
                                                       &pd->wei16_any, &pd->dst16, strides, pad, pad));
        if (pd_create(&pd->bwd_data, &bwd_data, pd->fwd, PASS_BACKWARD_DATA, pd, cc, d, err) != 0) return -1;
    }
    TRY(dnnl_convolution_backward_weights_desc_init, (&bwd_weights, dnnl_convolution_direct, &pd->src16,
                                                      &pd->wei_any, NULL, &pd->dst16, strides, pad, pad));
    return pd_create(&pd->bwd_weights, &bwd_weights, pd->fwd, PASS_BACKWARD_WEIGHTS, pd, cc, d, err);
}

static void descs_free(PlanDescs *pd) {
    if (pd->fwd) dnnl_primitive_desc_destroy(pd->fwd);
    if (pd->bwd_data) dnnl_primitive_desc_destroy(pd->bwd_data);
    if (pd->bwd_weights) dnnl_primitive_desc_destroy(pd->bwd_weights);
    if (pd->attr) dnnl_primitive_attr_destroy(pd->attr);
}

/* Makes a memory object without a buffer (the handle is set per call). */
static int memory_make(dnnl_memory_t *m, const dnnl_memory_desc_t *md, CpuConv *cc, const ConvDesc *d,
                       Error *err) {
    TRY(dnnl_memory_create, (m, md, cc->engine, DNNL_MEMORY_NONE));
    return 0;
}

/* Makes the primitive of pd and the memory object for its scratchpad. */
static int prim_make(Prim *p, const_dnnl_primitive_desc_t pd, CpuConv *cc, const ConvDesc *d, Error *err) {
    TRY(dnnl_primitive_create, (&p->prim, pd));
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (p->scratch_bytes > 0 && memory_make(&p->scratch, smd, cc, d, err) != 0) return -1;
    return 0;
}

/* Makes a pass of the primitive described by pd: weights_query names its weights (weights or diff weights),
 * to_user says whether they flow out to the caller (diff weights) rather than in. */
static int pass_make(ConvPass *ps, const_dnnl_primitive_desc_t pd, dnnl_query_t weights_query, bool to_user,
                     dnnl_query_t act_a_query, dnnl_query_t act_b_query, PlanDescs *descs, CpuConv *cc,
                     const ConvDesc *d, Error *err) {
    if (prim_make(&ps->conv, pd, cc, d, err) != 0) return -1;
    if (memory_make(&ps->act_a, dnnl_primitive_desc_query_md(pd, act_a_query, 0), cc, d, err) != 0) return -1;
    if (memory_make(&ps->act_b, dnnl_primitive_desc_query_md(pd, act_b_query, 0), cc, d, err) != 0) return -1;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, weights_query, 0);
    if (!wmd) return conv_check(dnnl_runtime_error, "dnnl_primitive_desc_query_md(weights)", d, err);
    if (memory_make(&ps->wei, wmd, cc, d, err) != 0) return -1;
    if (dnnl_memory_desc_equal(wmd, &descs->wei_user)) return 0;

    ps->wei_bytes = dnnl_memory_desc_get_size(wmd);
    if (!to_user && d->k == 1 && d->cout % 16 == 0 && d->cin % 16 == 0) {
        static const dnnl_format_tag_t tags[4] = {0, dnnl_ABcd8b16a2b, dnnl_ABcd8a16b2a, dnnl_BAcd8a16b2a};
        dnnl_dims_t dims = {d->cout, d->cin, 1, 1};
        for (int t = 1; t < 4 && !ps->pairs16; t++) {
            dnnl_memory_desc_t md;
            TRY(dnnl_memory_desc_init_by_tag, (&md, 4, dims, dnnl_bf16, tags[t]));
            if (dnnl_memory_desc_equal(wmd, &md)) ps->pairs16 = (WeiPairs)t;
        }
        if (ps->pairs16) return 0;
    }
    if (to_user && d->cout % 16 == 0 && d->cin % 16 == 0) {
        dnnl_memory_desc_t b16;
        dnnl_dims_t dims = {d->cout, d->cin, d->k, d->k};
        TRY(dnnl_memory_desc_init_by_tag, (&b16, 4, dims, dnnl_f32, dnnl_ABcd16b16a));
        ps->unblock16 = dnnl_memory_desc_equal(wmd, &b16);
        if (ps->unblock16) return 0;
    }
    if (memory_make(&ps->user_wei, &descs->wei_user, cc, d, err) != 0) return -1;
    dnnl_primitive_desc_t rpd = NULL;
    const dnnl_memory_desc_t *from = to_user ? wmd : &descs->wei_user, *to = to_user ? &descs->wei_user : wmd;
    TRY(dnnl_reorder_primitive_desc_create, (&rpd, from, cc->engine, to, cc->engine, descs->attr));
    int rc = prim_make(&ps->reorder, rpd, cc, d, err);
    dnnl_primitive_desc_destroy(rpd);
    return rc;
}

static void prim_free(Prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->scratch) dnnl_memory_destroy(p->scratch);
}

/* Makes the reorder of an activation described by from to the layout and type described by to, when the two
 * differ; out says the copy in the workspace is from (an output), not to (an input). */
static int cast_make(ActCast *c, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, bool out,
                     PlanDescs *descs, CpuConv *cc, const ConvDesc *d, Error *err) {
    if (dnnl_memory_desc_equal(from, to)) return 0;
    if (memory_make(&c->from, from, cc, d, err) != 0 || memory_make(&c->to, to, cc, d, err) != 0) return -1;
    c->bytes = dnnl_memory_desc_get_size(out ? from : to);
    dnnl_primitive_desc_t rpd = NULL;
    TRY(dnnl_reorder_primitive_desc_create, (&rpd, from, cc->engine, to, cc->engine, descs->attr));
    int rc = prim_make(&c->reorder, rpd, cc, d, err);
    dnnl_primitive_desc_destroy(rpd);
    return rc;
}

static void cast_free(ActCast *c) {
    prim_free(&c->reorder);
    if (c->from) dnnl_memory_destroy(c->from);
    if (c->to) dnnl_memory_destroy(c->to);
}

static void pass_free(ConvPass *ps) {
    prim_free(&ps->conv);
    prim_free(&ps->reorder);
    if (ps->act_a) dnnl_memory_destroy(ps->act_a);
    if (ps->act_b) dnnl_memory_destroy(ps->act_b);
    if (ps->wei) dnnl_memory_destroy(ps->wei);
    if (ps->user_wei) dnnl_memory_destroy(ps->user_wei);
}

static size_t size_max(size_t a, size_t b) { return a > b ? a : b; }

/* Scratchpad bytes the passes of p need at most (one primitive runs at a time). */
static size_t plan_scratch_bytes(const CpuConvPlan *p) {
    const ConvPass *ps[3] = {&p->fwd, &p->bwd_data, &p->bwd_weights};
    size_t s = 0;
    for (int i = 0; i < 3; i++) s = size_max(s, size_max(ps[i]->conv.scratch_bytes, ps[i]->reorder.scratch_bytes));
    s = size_max(s, size_max(p->x16.reorder.scratch_bytes, p->dy16.reorder.scratch_bytes));
    return size_max(s, size_max(p->y_out.reorder.scratch_bytes, p->dx_out.reorder.scratch_bytes));
}

/* The layouts plan's oneDNN primitives run on (see cpu_conv.h). */
const char *cpu_conv_layouts(const void *plan) {
    const CpuConvPlan *p = plan;
    return p->on == ON_NHWC ? "NHWC" : p->on == ON_NCHW_INPUT ? "NCHW input" : "caller's";
}

/* oneDNN's name of the implementation a pass of plan runs, or winograd.c's. */
const char *cpu_conv_impl(const void *plan, int pass) {
    const CpuConvPlan *p = plan;
    if (p->wino_m) return p->wino_m == 4 ? "winograd_f4x4_3x3:avx2" : "winograd_f2x2_3x3:avx2";
    if (p->wino16 & (1u << pass)) return "winograd_f2x2_3x3_bf16:avx512";
    const ConvPass *ps = pass == 0 ? &p->fwd : pass == 1 ? &p->bwd_data : &p->bwd_weights;
    const_dnnl_primitive_desc_t pd = NULL;
    const char *impl = "";
    if (dnnl_primitive_get_primitive_desc(ps->conv.prim, &pd) == dnnl_success)
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return impl;
}

/* Makes all primitives and memory objects of the plan p for p->d (no backward data with d->no_dx), the
 * primitives on the layouts on says; the workspace grows in plan_build. */
static int plan_make(CpuConvPlan *p, int block, PrimLayout on, Error *err) {
    const ConvDesc *d = &p->d;
    PlanDescs descs = {0};
    int rc = descs_init_memory(&descs, d, p->bf16, block, on, err);
    if (rc == 0) rc = descs_init_conv(&descs, p->cc, d, err);
    if (rc == 0) rc = cast_make(&p->x16, &descs.user_x, &descs.src16, false, &descs, p->cc, d, err);
    if (rc == 0) rc = cast_make(&p->dy16, &descs.user_dy, &descs.dst16, false, &descs, p->cc, d, err);
    if (rc == 0) rc = cast_make(&p->y_out, &descs.dst, &descs.user_y, true, &descs, p->cc, d, err);
    if (rc == 0 && !d->no_dx) rc = cast_make(&p->dx_out, &descs.src, &descs.user_dx, true, &descs, p->cc, d, err);
    if (rc == 0)
        rc = pass_make(&p->fwd, descs.fwd, dnnl_query_weights_md, false, dnnl_query_src_md, dnnl_query_dst_md,
                       &descs, p->cc, d, err);
    if (rc == 0 && !d->no_dx)
        rc = pass_make(&p->bwd_data, descs.bwd_data, dnnl_query_weights_md, false, dnnl_query_diff_dst_md,
                       dnnl_query_diff_src_md, &descs, p->cc, d, err);
    if (rc == 0)
        rc = pass_make(&p->bwd_weights, descs.bwd_weights, dnnl_query_diff_weights_md, true, dnnl_query_src_md,
                       dnnl_query_diff_dst_md, &descs, p->cc, d, err);
    descs_free(&descs);
    return rc;
}

/* Frees what plan_make made, leaving p's descriptor for another try. */
static void plan_release(CpuConvPlan *p) {
    ConvPass *ps[3] = {&p->fwd, &p->bwd_data, &p->bwd_weights};
    ActCast *cs[4] = {&p->x16, &p->dy16, &p->y_out, &p->dx_out};
    for (int i = 0; i < 3; i++) pass_free(ps[i]), *ps[i] = (ConvPass){0};
    for (int i = 0; i < 4; i++) cast_free(cs[i]), *cs[i] = (ActCast){0};
    if (p->cc->dy16_plan == p) p->cc->dy16_plan = NULL;
}

/* Makes the plan (see the top of the file for the layouts its primitives run on) and grows the shared
 * workspace. */
static int plan_build(CpuConvPlan *p, int block, Error *err) {
    const ConvDesc *d = &p->d;
    bool mixed = act_tag(d->cin, block) != act_tag(d->cout, block);
    PrimLayout on = !mixed ? ON_CALLERS : d->no_dx ? ON_NCHW_INPUT : ON_NHWC;
    int rc = plan_make(p, block, on, err);
    bool slow = false; /* ResNet-50's 11x11 -> 6x6 shortcut at 176 px: 198 ms per step blocked, 138 on NHWC */
    for (int pass = 0; rc == 0 && pass < 3; pass++) {
        if (pass == 1 && d->no_dx) continue;
        const char *impl = cpu_conv_impl(p, pass);
        slow |= strncmp(impl, "ref", 3) == 0 || generic_1x1(impl, d);
    }
    if ((slow || (rc != 0 && on == ON_NCHW_INPUT)) && on != ON_NHWC) {
        plan_release(p);
        rc = plan_make(p, block, on = ON_NHWC, err);
    }
    p->on = on;
    if (rc != 0) return rc;
    size_t wbytes = size_max(p->fwd.wei_bytes, size_max(p->bwd_data.wei_bytes, p->bwd_weights.wei_bytes));
    return work_reserve(p->cc, plan_scratch_bytes(p), wbytes, size_max(p->x16.bytes, p->dx_out.bytes),
                        size_max(p->dy16.bytes, p->y_out.bytes), d, err);
}

/* The channel block of oneDNN's blocked layout its kernels prefer on this CPU (see cpu_conv.h). */
int cpu_conv_vector_block(void) {
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core ? 16 : 8;
}

/* True when oneDNN finds native bf16 dot products (AVX512_BF16 or AMX) on this CPU. */
bool cpu_conv_bf16_native(void) {
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

/* True when oneDNN runs bf16 convolutions on AMX tiles on this CPU. */
bool cpu_conv_amx(void) {
    return (dnnl_get_effective_cpu_isa() & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx;
}

/* The block of an activation with c channels: block when it divides c, else c (NHWC). */
static int block_of(int c, int block) { return block > 0 && c % block == 0 ? block : c; }

/* The most channels of an fp32 Winograd plan (see cpu_conv.h). On AVX-512 the rule was measured on two CPUs
 * (docs/performance.md, "Winograd convolutions" and "An Intel Xeon"): on AMD's Zen 4, whose AVX-512 runs on
 * 256-bit units, F(4x4) beat oneDNN 2.6.3's kernels up to 512 channels; on an Intel Xeon with two 512-bit FMA
 * units oneDNN's direct kernels run near the GEMM rate, and F(4x4) won up to 128 channels (the three passes in
 * 0.72-0.90 of oneDNN's time), was level or behind at 256 (1.01-1.08) and lost at 512 (1.11 at 14x14, 1.47 at
 * 7x7, 1.98 at 6x6). Other x86 CPUs take Zen 4's rule; on AVX2 the rule is 512. */
int cpu_conv_wino_widest(void) {
    return cpu_conv_vector_block() == 16 && __builtin_cpu_is("intel") ? 128 : 512;
}

/* The output tile side m when a plan for d runs winograd.c, else 0: fp32, a shape it computes, 32 to
 * cpu_conv_wino_widest() channels in and out. Measured per machine (docs/performance.md, "Winograd
 * convolutions"), against oneDNN 2.6.3's kernels for that machine:
 * - AVX2 (2026-12-03): with 32 to 512 channels the three passes ran faster than oneDNN's AVX2 direct kernels;
 *   with 16 they were level (the transforms outweigh the short GEMMs). F(4x4) beat F(2x2) up to 256 channels;
 *   with 512 the two were level, so the smaller rounding error of F(2x2) decides.
 * - AVX-512, Zen 4 (2026-12-07): F(4x4) beat F(2x2) and oneDNN's AVX-512 kernels up to 512 channels where
 *   the output has at least 2x2 tiles per image (7x7 included); with a single 4x4 tile per image (ResNet-50's
 *   last stage at 128 px) oneDNN's kernels won two of the three passes, so those layers stay on oneDNN.
 * - AVX-512, Intel Xeon (2026-12-08): as cpu_conv_wino_widest says. */
static int wino_tile(const ConvDesc *d, bool bf16, int block) {
    bool avx512 = cpu_conv_vector_block() == 16;
    int m = avx512 || (d->cin <= 256 && d->cout <= 256) ? 4 : 2, widest = cpu_conv_wino_widest();
    bool ok = !bf16 && wino_supported(d, m, block_of(d->cin, block), block_of(d->cout, block)) && d->cin >= 32 &&
              d->cout >= 32 && d->cin <= widest && d->cout <= widest;
    if (avx512 && ((d->oh + m - 1) / m) * ((d->ow + m - 1) / m) < 4) ok = false;
    return ok ? m : 0;
}

/* The passes of a bf16 plan for d that run in winograd_bf16.c, as bits 1 << pass (0 forward, 1 backward data,
 * 2 backward weights). It needs a CPU with AVX512_BF16, a shape it computes and at least 4x4 output tiles per
 * image; forward and backward data from 64 channels in and out, backward weights from 32 up to 256. Measured on
 * Zen 4 against oneDNN 2.6.3's bf16 kernels (docs/performance.md, "bf16 Winograd" and "A per-layer profile"):
 * forward and backward data 0.54-0.67 of their time from 14x14 pixels with 128 to 256 channels and from 56x56
 * with 64, 0.74-0.90 at 7x7 with 512, level at 7x7 with 64 and at 14x14 with 32, 1.25 on 4x4 images (2x2
 * tiles); backward weights 0.61-0.78 from 64 up to 256 channels, 0.70 at 14x14 with 32 (0.86 in ResNet-20's
 * step), 1.38 at 7x7 with 512 (each thread's fp32 sums then outgrow the caches). Not on a CPU with AMX: its tile
 * multiplies give oneDNN's bf16 kernels about 16x AVX512_BF16's products per cycle, against the 2.25x fewer
 * products of F(2x2) (not measured: no AMX CPU was at hand). */
static unsigned wino16_passes(const ConvDesc *d, int block) {
    if (!cpu_conv_bf16_native() || cpu_conv_amx() ||
        !wino16_supported(d, block_of(d->cin, block), block_of(d->cout, block)) ||
        ((d->oh + 1) / 2) * ((d->ow + 1) / 2) < 16)
        return 0;
    int narrow = d->cin < d->cout ? d->cin : d->cout, wide = d->cin > d->cout ? d->cin : d->cout;
    return (narrow >= 64 ? 3u : 0u) | (wide <= 256 ? 4u : 0u);
}

/* Builds a plan on the backend's threads; on failure nothing is left allocated. */
int cpu_conv_plan(CpuConv *cc, const ConvDesc *d, bool bf16, int block, bool winograd, void **plan, Error *err) {
    *plan = NULL;
    if (!bf16 && conv_desc_check_f32(d, "an fp32 convolution plan of the cpu backend", err)) return -1;
    CpuConvPlan *p = calloc(1, sizeof *p);
    if (!p) return error_set(err, "out of memory planning a convolution");
    p->cc = cc;
    p->d = *d;
    p->bf16 = bf16;
    int saved = cpu_threads_enter(cc->threads);
    int rc;
    if (winograd && wino_tile(d, bf16, block)) {
        p->wino_m = wino_tile(d, bf16, block);
        p->wino_bx = block_of(d->cin, block);
        p->wino_by = block_of(d->cout, block);
        rc = work_reserve(cc, wino_work_bytes(d, p->wino_m, cc->threads), 0, 0, 0, d, err);
    } else {
        rc = plan_build(p, block, err);
        p->wino16 = rc == 0 && bf16 && winograd ? wino16_passes(d, block) : 0;
        if (p->wino16) {
            p->wino_bx = block_of(d->cin, block);
            p->wino_by = block_of(d->cout, block);
            rc = work_reserve(cc, wino16_work_bytes(d, (p->wino16 & 4u) != 0, cc->threads), 0, 0, 0, d, err);
        }
    }
    cpu_threads_leave(cc->threads, saved);
    if (rc != 0) {
        cpu_conv_plan_free(p);
        return rc;
    }
    *plan = p;
    return 0;
}

/* Frees the primitives and memory objects of a plan (the shared workspace stays). */
void cpu_conv_plan_free(void *plan) {
    CpuConvPlan *p = plan;
    if (!p) return;
    plan_release(p);
    free(p);
}

/* ---------------------------------------------------------------- execution */

/* Runs prim with args plus its scratchpad (in the shared workspace). */
static int prim_run(const Prim *pr, CpuConv *cc, int nargs, dnnl_exec_arg_t *args, const ConvDesc *d,
                    Error *err) {
    if (pr->scratch) {
        TRY(dnnl_memory_set_data_handle, (pr->scratch, work_scratch(cc)));
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pr->scratch};
    }
    TRY(dnnl_primitive_execute, (pr->prim, cc->stream, nargs, args));
    return 0;
}

/* Points the pass's weights memory at user (OIHW) or, when they differ, at the workspace. */
static int pass_bind_weights(ConvPass *ps, CpuConv *cc, const float *user, const ConvDesc *d, Error *err) {
    if (!ps->wei_bytes) {
        TRY(dnnl_memory_set_data_handle, (ps->wei, (void *)user));
        return 0;
    }
    if (ps->user_wei) TRY(dnnl_memory_set_data_handle, (ps->user_wei, (void *)user));
    TRY(dnnl_memory_set_data_handle, (ps->wei, work_weights(cc)));
    return 0;
}

/* dw [cout, cin, k, k] (OIHW) from diff weights blk in oneDNN's ABcd16b16a, [cout/16, cin/16, k, k, 16 (cin),
 * 16 (cout)]: per pair of 16-channel blocks, each output channel's 16 x k x k weights are one contiguous run of
 * dw, gathered from the pair's k x k x 16 x 16 block (in L1). oneDNN's reorder took about twice a copy's time
 * for this (docs/performance.md). */
static void weights_unblock16(const ConvDesc *d, const float *blk, float *dw, int threads) {
    int ob_n = d->cout / 16, ib_n = d->cin / 16, kk = d->k * d->k;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int ob = 0; ob < ob_n; ob++)
        for (int ib = 0; ib < ib_n; ib++) {
            const float *src = blk + ((size_t)ob * ib_n + ib) * (size_t)kk * 256;
            for (int s = 0; s < kk; s++)
                for (int o = 0; o < 16; o++) {
                    const float *t = src + s * 256 + o; /* (cin i, cout o) at t[16 * i] */
                    float *dst = dw + ((size_t)(ob * 16 + o) * d->cin + (size_t)ib * 16) * kk + s;
#pragma GCC unroll 16
                    for (int i = 0; i < 16; i++) dst[i * kk] = t[16 * i];
                }
        }
}

/* x rounded to bf16 (nearest, ties to even) as vcvtneps2bf16 rounds, which oneDNN's reorders use on AVX512_BF16:
 * denormal inputs become zeros of their sign, NaNs stay (quiet) NaNs. Branch-free, so loops vectorize. */
static inline uint16_t bf16_of(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    r = (u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r;
    r = (u & 0x7f800000u) == 0 ? (u >> 16) & 0x8000u : r;
    return (uint16_t)r;
}

/* The bf16 weights blk of a 1x1 convolution in layout lay (see WeiPairs) from w [cout, cin, 1, 1] (OIHW): each
 * 16 x 16 block is rounded row by row into an L1 buffer (rows of w are contiguous), then its pairs are placed. */
static void weights_pair16(const ConvDesc *d, const float *w, uint16_t *blk, WeiPairs lay, int threads) {
    int ob_n = d->cout / 16, ib_n = d->cin / 16;
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads)
    for (int ob = 0; ob < ob_n; ob++)
        for (int ib = 0; ib < ib_n; ib++) {
            uint16_t t[16][16]; /* (cout o, cin i) of the block */
            const float *src = w + (size_t)ob * 16 * d->cin + (size_t)ib * 16;
            for (int o = 0; o < 16; o++)
                for (int i = 0; i < 16; i++) t[o][i] = bf16_of(src[(size_t)o * d->cin + i]);
            size_t at = lay == WEI_BA_8A16B2A ? (size_t)ib * ob_n + ob : (size_t)ob * ib_n + ib;
            uint16_t *dst = blk + at * 256;
            for (int q = 0; q < 8; q++)
                for (int c = 0; c < 16; c++)
                    for (int r = 0; r < 2; r++)
                        dst[q * 32 + c * 2 + r] = lay == WEI_AB_8B16A2B ? t[c][2 * q + r] : t[2 * q + r][c];
        }
}

/* Runs the weights reorder of ps (user -> primitive layout, or back for diff weights), if it has one. */
static int pass_reorder(ConvPass *ps, CpuConv *cc, bool to_user, const ConvDesc *d, Error *err) {
    if (!ps->reorder.prim) return 0;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, to_user ? ps->wei : ps->user_wei},
                               {DNNL_ARG_TO, to_user ? ps->user_wei : ps->wei}};
    return prim_run(&ps->reorder, cc, 2, args, d, err);
}

/* Runs one pass: a, b are the activations (in the order of ConvPass.act_a/act_b), w the caller's OIHW
 * weights or diff weights; arg_* are the oneDNN argument kinds. */
static int pass_run(CpuConvPlan *p, ConvPass *ps, int arg_a, const void *a, int arg_b, const void *b,
                    int arg_w, const float *w, bool w_out, Error *err) {
    const ConvDesc *d = &p->d;
    CpuConv *cc = p->cc;
    if (pass_bind_weights(ps, cc, w, d, err) != 0) return -1;
    if (ps->pairs16) weights_pair16(d, w, work_weights(cc), ps->pairs16, cc->threads);
    else if (!w_out && pass_reorder(ps, cc, false, d, err) != 0) return -1;
    TRY(dnnl_memory_set_data_handle, (ps->act_a, (void *)a));
    TRY(dnnl_memory_set_data_handle, (ps->act_b, (void *)b));
    dnnl_exec_arg_t args[4] = {{arg_a, ps->act_a}, {arg_b, ps->act_b}, {arg_w, ps->wei}};
    if (prim_run(&ps->conv, cc, 3, args, d, err) != 0) return -1;
    if (w_out && pass_reorder(ps, cc, true, d, err) != 0) return -1;
    TRY(dnnl_stream_wait, (cc->stream));
    if (w_out && ps->unblock16) weights_unblock16(d, work_weights(cc), (float *)w, cc->threads);
    return 0;
}

/* Reorders the activation at from into to (a oneDNN reorder on the plan's stream) and waits for it. */
static int cast_run(CpuConvPlan *p, ActCast *c, const void *from, void *to, Error *err) {
    const ConvDesc *d = &p->d;
    TRY(dnnl_memory_set_data_handle, (c->from, (void *)from));
    TRY(dnnl_memory_set_data_handle, (c->to, to));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, c->from}, {DNNL_ARG_TO, c->to}};
    if (prim_run(&c->reorder, p->cc, 2, args, d, err) != 0) return -1;
    TRY(dnnl_stream_wait, (p->cc->stream));
    return 0;
}

/* The input a conv primitive of p reads for the activation x: x itself, or its copy in the primitive's type
 * and layout. */
static int input_x(CpuConvPlan *p, const void *x, const void **out, Error *err) {
    *out = x;
    if (!p->x16.bytes) return 0;
    *out = work_x16(p->cc);
    return cast_run(p, &p->x16, x, work_x16(p->cc), err);
}

/* Same for dy; the cast made by backward data is reused by backward weights of the same plan and dy. */
static int input_dy(CpuConvPlan *p, const void *dy, bool keep, const void **out, Error *err) {
    CpuConv *cc = p->cc;
    *out = dy;
    if (!p->dy16.bytes) return 0;
    *out = work_dy16(cc);
    bool have = cc->dy16_plan == p && cc->dy16_of == dy;
    cc->dy16_plan = NULL;
    cc->dy16_of = NULL;
    if (!have && cast_run(p, &p->dy16, dy, work_dy16(cc), err) != 0) return -1;
    if (keep) {
        cc->dy16_plan = p;
        cc->dy16_of = dy;
    }
    return 0;
}

/* y [n, oh, ow, cout] = conv(x [n, h, w, cin], w [cout, cin, k, k]) */
int cpu_conv_forward(void *plan, const void *x, const float *w, void *y, Error *err) {
    CpuConvPlan *p = plan;
    if (p->wino_m) {
        wino_forward(&p->d, p->wino_m, p->wino_bx, p->wino_by, x, w, y, work_scratch(p->cc), p->cc->threads);
        return 0;
    }
    if (p->wino16 & 1u) {
        wino16_forward(&p->d, p->wino_bx, p->wino_by, x, w, y, work_scratch(p->cc), p->cc->threads);
        return 0;
    }
    int saved = cpu_threads_enter(p->cc->threads);
    const void *a;
    p->cc->dy16_plan = NULL;
    int rc = input_x(p, x, &a, err);
    void *to = p->y_out.bytes ? work_dy16(p->cc) : y;
    if (rc == 0) rc = pass_run(p, &p->fwd, DNNL_ARG_SRC, a, DNNL_ARG_DST, to, DNNL_ARG_WEIGHTS, w, false, err);
    if (rc == 0 && p->y_out.bytes) rc = cast_run(p, &p->y_out, to, y, err);
    cpu_threads_leave(p->cc->threads, saved);
    return rc;
}

/* dx [n, h, w, cin] from dy [n, oh, ow, cout] and w [cout, cin, k, k] */
int cpu_conv_backward_data(void *plan, const void *dy, const float *w, void *dx, Error *err) {
    CpuConvPlan *p = plan;
    if (p->d.no_dx)
        return error_set(err, "convolution backward data: the plan was made without it (ConvDesc.no_dx: the "
                              "network's first layer)");
    if (p->wino_m) {
        wino_backward_data(&p->d, p->wino_m, p->wino_bx, p->wino_by, dy, w, dx, work_scratch(p->cc),
                           p->cc->threads);
        return 0;
    }
    if (p->wino16 & 2u) {
        wino16_backward_data(&p->d, p->wino_bx, p->wino_by, dy, w, dx, work_scratch(p->cc), p->cc->threads);
        return 0;
    }
    int saved = cpu_threads_enter(p->cc->threads);
    const void *a;
    int rc = input_dy(p, dy, true, &a, err);
    void *to = p->dx_out.bytes ? work_x16(p->cc) : dx;
    if (rc == 0)
        rc = pass_run(p, &p->bwd_data, DNNL_ARG_DIFF_DST, a, DNNL_ARG_DIFF_SRC, to, DNNL_ARG_WEIGHTS, w, false,
                      err);
    if (rc == 0 && p->dx_out.bytes) rc = cast_run(p, &p->dx_out, to, dx, err);
    cpu_threads_leave(p->cc->threads, saved);
    return rc;
}

/* dw [cout, cin, k, k] from x [n, h, w, cin] and dy [n, oh, ow, cout] */
int cpu_conv_backward_weights(void *plan, const void *x, const void *dy, float *dw, Error *err) {
    CpuConvPlan *p = plan;
    if (p->wino_m) {
        wino_backward_weights(&p->d, p->wino_m, p->wino_bx, p->wino_by, x, dy, dw, work_scratch(p->cc),
                              p->cc->threads);
        return 0;
    }
    if (p->wino16 & 4u) {
        wino16_backward_weights(&p->d, p->wino_bx, p->wino_by, x, dy, dw, work_scratch(p->cc), p->cc->threads);
        return 0;
    }
    int saved = cpu_threads_enter(p->cc->threads);
    const void *a, *b;
    int rc = input_dy(p, dy, false, &b, err);
    if (rc == 0) rc = input_x(p, x, &a, err);
    if (rc == 0)
        rc = pass_run(p, &p->bwd_weights, DNNL_ARG_SRC, a, DNNL_ARG_DIFF_DST, b, DNNL_ARG_DIFF_WEIGHTS, dw, true,
                      err);
    cpu_threads_leave(p->cc->threads, saved);
    return rc;
}
