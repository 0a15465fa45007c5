/* conv_direct.c: direct conv forward, vectorized over output channels.
 *
 * Why: for strided layers (ResNet's 7x7/2 stem and 3x3/2 and 1x1/2 layers)
 * the packed GEMM spends up to half its time building im2col panels, since
 * a strided input row cannot be copied as one block. Here there is no
 * im2col: the input is padded once per image (so no tap needs a bounds
 * check) and each tap's input value is broadcast straight from it:
 *
 *   acc[px][v] += x[c][oy*sh + i*dh][(ox+px)*sw + j*dw] * wt[tap][v*16..+16)
 *
 * - a tile is DP = 6 consecutive output pixels x DV = 4 zmm (64) output
 *   channels: 24 accumulators + 4 weight vectors + 1 broadcast <= 32 zmm;
 * - weights are transposed once per call to [oc block][tap][64];
 * - the tile is written with scatters (64 channels are 64 output planes).
 * Threads claim items (conv_team.c): weight-transpose tiles, then per group
 * of images, input channels to pad and (image, output-channel block, span
 * of positions) items, image-major, so that with a batch each thread works
 * on its own images.
 */
#include "conv_internal.h"

#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define TS_DIRECT_HAVE 1
#else
#define TS_DIRECT_HAVE 0
#endif

enum {
    DV = 4,        /* zmm of output channels per tile */
    DOC = DV * 16, /* output channels per tile */
    DP = 6,        /* output pixels per tile */
    SPAN = 8 * DP, /* output positions per thread work item */
};

/* Most floats of padded input held at once (8 MiB): a batch-8 ResNet-18
 * 3x3/2 layer (at most 8 x 0.86 MiB) is padded in one phase. */
#define TS_DIRECT_PAD_CAP ((size_t)2 << 20)

typedef struct {
    int64_t hp, wp;    /* padded input plane */
    int64_t nob;       /* output-channel blocks per group */
    size_t pad_floats; /* padded input of one image and group */
    size_t wt_floats;  /* transposed weights of all groups */
    int64_t units;     /* (image, group) pairs padded at once */
} direct_plan;

static direct_plan plan_for(const conv_geom *g, const ts_conv2d_params *p) {
    direct_plan d;
    d.hp = g->h + p->pad_t + p->pad_b;
    d.wp = g->w + p->pad_l + p->pad_r;
    d.nob = (g->mg + DOC - 1) / DOC;
    d.pad_floats = (size_t)(g->cg * d.hp * d.wp);
    d.wt_floats = (size_t)(g->groups * d.nob * DOC * g->k);
    const int64_t all = g->n * g->groups;
    d.units = (int64_t)(TS_DIRECT_PAD_CAP / d.pad_floats);
    d.units = d.units < 1 ? 1 : d.units > all ? all : d.units;
    return d;
}

int ts_conv_direct_usable(const conv_geom *g, const ts_conv2d_params *p) {
    (void)p; /* any stride, padding, dilation and groups */
    /* Scatter offsets (lane * output plane) are int32. */
    return TS_DIRECT_HAVE && 16 * g->p < INT32_MAX && g->k <= (int64_t)1 << 24;
}

size_t ts_conv_direct_workspace_floats(const conv_geom *g, const ts_conv2d_params *p) {
    if (!ts_conv_direct_usable(g, p)) return 0;
    direct_plan d = plan_for(g, p);
    return d.pad_floats * (size_t)d.units + d.wt_floats;
}

/* Measured on the dev machine (min CPU time, --path taps vs packed, 1
 * thread): taps wins on strided k x k layers (AlexNet 11x11/4: 1.9x, ResNet
 * 7x7/2: 1.15x, 3x3/2 at batch 8: 1.05-1.5x) and on 5x5/1 (1.2x), where
 * im2col copies a 25-tap window per output; it loses on 1x1/2 (K too short
 * to hide the scattered stores: 0.7-0.9x) and when the output is too small
 * to amortize transposing the weights once per call (M * K floats; 3x3/2
 * with P = 49 at batch 1: 0.45x), hence the minimum of n * P positions. */
#define TS_DIRECT_MIN_POSITIONS 384
#define TS_DIRECT_MAX_K 2560

int ts_conv_direct_preferred(const conv_geom *g, const ts_conv2d_params *p) {
    if (!ts_conv_direct_usable(g, p)) return 0;
    int strided = p->stride_h > 1 || p->stride_w > 1;
    int window = g->kh * g->kw;
    double fill = (double)g->mg / (double)(((g->mg + DOC - 1) / DOC) * DOC);
    return (strided ? window > 1 : window >= 25) && g->n * g->p >= TS_DIRECT_MIN_POSITIONS &&
           g->k <= TS_DIRECT_MAX_K && fill >= 0.75;
}

#if TS_DIRECT_HAVE

static inline __mmask16 lane_mask(int64_t n) { /* lanes [0, n) of 16 */
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u);
}

/* One tile: np consecutive output positions p0.. (flattened over rows, so
 * narrow outputs such as 7x7 still fill whole tiles) of the 64 output
 * channels of block wt (DOC floats per tap); writes y with scatters
 * (channel lanes beyond `live` masked). */
static inline __attribute__((always_inline)) void
direct_tile(const int np, const conv_geom *g, const ts_conv2d_params *p, const direct_plan *d,
            const float *xpad, const float *wt, int64_t p0, const float *bias, int64_t live,
            float *yb) {
    __m512 acc[DP][DV];
    const float *base[DP]; /* input of tap (0, 0, 0) for each pixel */
#pragma GCC unroll 6
    for (int px = 0; px < np; px++) {
        int64_t oy = (p0 + px) / g->ow, ox = (p0 + px) % g->ow;
        base[px] = xpad + oy * p->stride_h * d->wp + ox * p->stride_w;
#pragma GCC unroll 4
        for (int v = 0; v < DV; v++)
            acc[px][v] = _mm512_setzero_ps();
    }
    for (int64_t c = 0; c < g->cg; c++) {
        for (int64_t i = 0; i < g->kh; i++) {
            const int64_t row = (c * d->hp + i * p->dil_h) * d->wp;
            for (int64_t j = 0; j < g->kw; j++, wt += DOC) {
                const int64_t off = row + j * p->dil_w;
                __m512 w0 = _mm512_loadu_ps(wt), w1 = _mm512_loadu_ps(wt + 16);
                __m512 w2 = _mm512_loadu_ps(wt + 32), w3 = _mm512_loadu_ps(wt + 48);
#pragma GCC unroll 6
                for (int px = 0; px < np; px++) {
                    __m512 xb = _mm512_set1_ps(base[px][off]);
                    acc[px][0] = _mm512_fmadd_ps(xb, w0, acc[px][0]);
                    acc[px][1] = _mm512_fmadd_ps(xb, w1, acc[px][1]);
                    acc[px][2] = _mm512_fmadd_ps(xb, w2, acc[px][2]);
                    acc[px][3] = _mm512_fmadd_ps(xb, w3, acc[px][3]);
                }
            }
        }
    }
    /* Lane l of vector v is output channel v*16 + l: plane stride P. */
    const __m512i plane =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)g->p));
#pragma GCC unroll 4
    for (int v = 0; v < DV; v++) {
        __mmask16 m = lane_mask(live - v * 16);
        if (!m) break;
        __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + v * 16) : _mm512_setzero_ps();
        float *yv = yb + (int64_t)v * 16 * g->p + p0;
#pragma GCC unroll 6
        for (int px = 0; px < np; px++)
            _mm512_mask_i32scatter_ps(yv + px, m, plane, _mm512_add_ps(acc[px][v], bv), 4);
    }
}

#define DIRECT_CASE(N)                                                                             \
    case N: direct_tile(N, g, p, d, xpad, wt, q, bias, live, yb); break;

/* Output positions [p_lo, p_hi) of one output-channel block, in tiles of
 * nearly equal size (49 positions: 5,5,5,5,5,6,6,6,6 rather than 8 x 6 + 1;
 * a 1-position tile runs at 1/6 of the FMA rate). */
static void direct_span(const conv_geom *g, const ts_conv2d_params *p, const direct_plan *d,
                        const float *xpad, const float *wt, int64_t p_lo, int64_t p_hi,
                        const float *bias, int64_t live, float *yb) {
    const int64_t len = p_hi - p_lo, ntiles = (len + DP - 1) / DP;
    for (int64_t i = 0; i < ntiles; i++) {
        int64_t q = p_lo + len * i / ntiles;
        int np = (int)(p_lo + len * (i + 1) / ntiles - q);
        switch (np) {
            DIRECT_CASE(6)
            DIRECT_CASE(5)
            DIRECT_CASE(4)
            DIRECT_CASE(3)
            DIRECT_CASE(2)
            DIRECT_CASE(1)
        default: break;
        }
    }
}

typedef struct {
    const conv_geom *g;
    const ts_conv2d_params *p;
    direct_plan d;
    const float *x, *w, *b;
    float *y, *xpad, *wt;
} direct_job;

/* Taps per weight-transpose item: one item is a block's taps [k, k + TK),
 * so the transpose (M * K floats per call) splits evenly between threads;
 * as one item per block, one thread took all 8 blocks of ResNet's 3x3/2
 * 256->512 (measured: 1.9 ms on one thread while the other padded in
 * 0.04 ms). */
enum { TK = 64 };

/* In-register transpose of a 16x16 tile: lane j of r[i] <-> lane i of r[j]
 * (unpack pairs, then 64-bit pairs, then 128-bit lanes twice). */
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

/* wt[gi][ob][tap][lane] = w[gi*mg + ob*DOC + lane][tap] for taps [k_lo,
 * k_hi), 0 past mg. By 16x16 tiles transposed in registers. ResNet 3x3/2
 * 256->512 at batch 8, 1 thread (rdtsc-instrumented throwaway build): the
 * scalar loop it replaces took 0.83 ms a call, this 0.46-0.68 ms; the
 * rest is moving 4.7 MB of weights through the caches. */
static void transpose_weights(const direct_job *j, int64_t gi, int64_t ob, int64_t k_lo,
                              int64_t k_hi) {
    const conv_geom *g = j->g;
    float *dst = j->wt + (gi * j->d.nob + ob) * DOC * g->k;
    for (int64_t l0 = 0; l0 < DOC; l0 += 16) {
        const int64_t m0 = ob * DOC + l0, rows = g->mg - m0 < 16 ? g->mg - m0 : 16;
        const float *src = j->w + (gi * g->mg + m0) * g->k;
        for (int64_t k0 = k_lo; k0 < k_hi; k0 += 16) {
            const int64_t nk = k_hi - k0 < 16 ? k_hi - k0 : 16;
            const __mmask16 km = lane_mask(nk);
            __m512 r[16];
            for (int i = 0; i < 16; i++)
                r[i] =
                    i < rows ? _mm512_maskz_loadu_ps(km, src + i * g->k + k0) : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < nk; i++)
                _mm512_storeu_ps(dst + (k0 + i) * DOC + l0, r[i]);
        }
    }
}

static inline void zero_floats(float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_setzero_ps());
    if (i < n) _mm512_mask_storeu_ps(dst + i, lane_mask(n - i), _mm512_setzero_ps());
}

static inline void copy_floats(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
    if (i < n) {
        const __mmask16 m = lane_mask(n - i);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
    }
}

/* Padded copy of channel c of one image and group (xg) into slot `unit` of
 * xpad. Vector stores rather than memset/memcpy: a row of 3x3/2 layers is
 * 14-56 floats, too short to amortize three library calls. Padding all
 * images of a group up front costs about what padding each one just before
 * use did (instrumented as above: 0.31-0.47 ms against 0.32 ms of a 6.5 ms
 * call), presumably because 2 MB are written instead of 0.26 MB kept in L2. */
static void pad_channel(const direct_job *j, const float *xg, int64_t unit, int64_t c) {
    const conv_geom *g = j->g;
    const ts_conv2d_params *p = j->p;
    const direct_plan *d = &j->d;
    float *dst = j->xpad + (size_t)unit * d->pad_floats + c * d->hp * d->wp;
    zero_floats(dst, p->pad_t * d->wp);
    for (int64_t r = 0; r < g->h; r++) {
        float *row = dst + (p->pad_t + r) * d->wp;
        zero_floats(row, p->pad_l);
        copy_floats(row + p->pad_l, xg + (c * g->h + r) * g->w, g->w);
        zero_floats(row + p->pad_l + g->w, p->pad_r);
    }
    zero_floats(dst + (p->pad_t + g->h) * d->wp, p->pad_b * d->wp);
}

static void transpose_phase(const direct_job *j, ts_conv_team *team, ts_conv_work *w) {
    const conv_geom *g = j->g;
    const int64_t kchunks = (g->k + TK - 1) / TK;
    int64_t lo, hi;
    ts_conv_work_phase(team, w, g->groups * j->d.nob * kchunks);
    while (ts_conv_work_claim(team, w, &lo, &hi))
        for (int64_t it = lo; it < hi; it++) {
            const int64_t blk = it / kchunks, kc = it % kchunks;
            const int64_t k_hi = (kc + 1) * TK < g->k ? (kc + 1) * TK : g->k;
            transpose_weights(j, blk / j->d.nob, blk % j->d.nob, kc * TK, k_hi);
        }
}

/* Units [u0, u0 + nu) ((image, group) pairs, image-major) into slots 0.. */
static void pad_phase(const direct_job *j, ts_conv_team *team, ts_conv_work *w, int64_t u0,
                      int64_t nu) {
    const conv_geom *g = j->g;
    int64_t lo, hi;
    ts_conv_work_phase(team, w, nu * g->cg);
    while (ts_conv_work_claim(team, w, &lo, &hi))
        for (int64_t it = lo; it < hi; it++) {
            const int64_t u = u0 + it / g->cg, n = u / g->groups, gi = u % g->groups;
            pad_channel(j, j->x + (n * g->c + gi * g->cg) * g->h * g->w, it / g->cg, it % g->cg);
        }
}

/* Items: unit x output-channel block x one of `spans` even spans of the
 * output positions (about SPAN each), unit-major: member t's range is whole
 * images when there are at least T of them, so each member pads, reads and
 * writes its own images, with two phases per call instead of two per
 * image (bench_conv -n resnet18 -t 2 -b 8, p50: ResNet 3x3/2 256->512 4.16
 * -> 3.60 ms, 128->256 3.85 -> 2.78, 64->128 3.87 -> 3.01). Within a unit, block-major keeps one
 * block's weights in L2 across its spans; position-major when a unit is shared and has fewer than
 * two blocks per thread, so that no thread is tied to one block (measured at 2 threads, 3x3/2
 * 64->128 at batch 8, one image per phase: 4.7-5.2 ms instead of 5.8-6.8 ms). */
static void compute_phase(const direct_job *j, ts_conv_team *team, ts_conv_work *w, int64_t u0,
                          int64_t nu, int T) {
    const conv_geom *g = j->g;
    const direct_plan *d = &j->d;
    const int64_t spans = (g->p + SPAN - 1) / SPAN, per = d->nob * spans;
    const int by_position = d->nob < 2 * T && nu < 2 * T;
    int64_t lo, hi;
    ts_conv_work_phase(team, w, nu * per);
    while (ts_conv_work_claim(team, w, &lo, &hi))
        for (int64_t it = lo; it < hi; it++) {
            const int64_t slot = it / per, r = it % per, u = u0 + slot;
            const int64_t n = u / g->groups, gi = u % g->groups;
            const int64_t ob = by_position ? r % d->nob : r / spans;
            const int64_t sp = by_position ? r / d->nob : r % spans;
            const int64_t p_lo = g->p * sp / spans, p_hi = g->p * (sp + 1) / spans;
            const int64_t live = g->mg - ob * DOC < DOC ? g->mg - ob * DOC : DOC;
            const float *bias = j->b ? j->b + gi * g->mg + ob * DOC : NULL;
            float *yb = j->y + (n * g->m + gi * g->mg + ob * DOC) * g->p;
            direct_span(g, j->p, d, j->xpad + (size_t)slot * d->pad_floats,
                        j->wt + (gi * d->nob + ob) * DOC * g->k, p_lo, p_hi, bias, live, yb);
        }
}

/* Phases: transpose the weights; then per group of d.units (image, group)
 * pairs, pad them, then compute them. */
static void direct_member(void *ctx, int t, int T, ts_conv_team *team) {
    const direct_job *j = ctx;
    const int64_t all = j->g->n * j->g->groups;
    ts_conv_work w = {.tid = t};
    transpose_phase(j, team, &w);
    for (int64_t u0 = 0; u0 < all; u0 += j->d.units) {
        const int64_t nu = all - u0 < j->d.units ? all - u0 : j->d.units;
        pad_phase(j, team, &w, u0, nu);
        compute_phase(j, team, &w, u0, nu, T);
    }
}

void ts_conv_direct_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                            const float *w, const float *b, float *y, float *ws, int threads) {
    TS_ASSERT(ts_conv_direct_usable(g, p));
    direct_job j = {.g = g, .p = p, .d = plan_for(g, p), .x = x, .w = w, .b = b, .y = y};
    j.xpad = ws;
    j.wt = ws + j.d.pad_floats * (size_t)j.d.units;
    double flops = 2.0 * (double)g->n * (double)g->m * (double)g->p * (double)g->k;
    ts_conv_team_run(ts_conv_team_size(threads, flops), direct_member, &j);
}

#else /* !TS_DIRECT_HAVE */

void ts_conv_direct_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                            const float *w, const float *b, float *y, float *ws, int threads) {
    (void)g, (void)p, (void)x, (void)w, (void)b, (void)y, (void)ws, (void)threads;
    TS_ASSERT(!"conv_direct_forward called without AVX-512 support");
}

#endif
