/* conv_winograd.c: 3x3 stride-1 conv forward by Winograd F(4x4, 3x3).
 *
 * Why: a 4x4 block of outputs of a 3x3 conv costs 16 * 9 = 144 multiplies
 * per (input, output) channel pair directly, but 36 in the Winograd domain
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"):
 *
 *   Y = A^T [ (G g G^T) (.) (B^T d B) ] A      per 6x6 input tile d
 *
 * and the sum over input channels of the element-wise products is, for
 * each of the 36 positions, a GEMM  M_pos[M, tiles] = U_pos[M, C] *
 * V_pos[C, tiles]. That is 4x fewer GEMM flops than im2col for the same
 * outputs (less when the output is not a multiple of 4). F(4x4) rather than
 * F(2x2) (2.25x): the VGG/ResNet layers are GEMM bound, and with the
 * points 0, +-1, +-2, +-1/2 its float32 error measures ~1e-5 of the output
 * scale for C up to 512 (tests/test_ops.c holds it to 1e-4 against a
 * double-precision reference).
 *
 * Layout (per call, in the caller's workspace):
 * - Tiles of all images are numbered in one sequence and processed in
 *   groups of up to WG_MAX_PANELS * NR tiles (fewer when C is large, so V
 *   stays near 10 MiB). For a group, V holds [36][panels][C][NR] (the B
 *   operand, one NR-tile panel at a time) and Mb holds the GEMM results
 *   [36][M][tiles of the group].
 * - U (the transformed filters, the A operand) is rebuilt per tile group,
 *   MR output channels and KC input channels at a time, into a per-thread
 *   L2-sized slot, and used at once by the 36 GEMMs of that block. Storing
 *   U for the call would be 36 * M * C floats (38 MB at 512x512) streamed
 *   through DRAM twice; rebuilding costs about 950 multiply-adds' time per
 *   filter and group against 36 per filter and tile for the GEMMs (~10%
 *   for a group of 256 tiles; the cost model charges it).
 *   The op has no state to cache U across calls.
 * - Per group: input transform (threads split (half-panel, channel) items)
 *   -> per MR-block of output channels (threads split the blocks): filter
 *   transform, 36 GEMMs with the micro-kernel, output transform + bias.
 *   The transforms run 16 tiles (or 16 filters) per zmm register, reading
 *   inputs with masked gathers (padding = masked-off lanes) and writing
 *   outputs with masked scatters, so borders need no special case.
 * - ts_conv_winograd_preferred's cost model decides against the packed
 *   GEMM per layer (small images at batch 1 with 512 channels lose).
 */
#include "conv_internal.h"

#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define TS_WINO_HAVE 1
#else
#define TS_WINO_HAVE 0
#endif

enum {
    WA = 6,  /* input tile side (alpha = 4 + 3 - 1) */
    WO = 4,  /* output tile side */
    WP = 36, /* positions in the Winograd domain */
    MR = TS_CONV_MR,
    NR = TS_CONV_NR,
    KC = 256,          /* K (channel) block of the GEMMs: B panel 32 KiB in L1 */
    WG_MAX_PANELS = 8, /* tiles per group <= 256 */
};

/* V of one tile group (36 * C * tiles floats) stays below ~4 MiB so it is
 * served from L2/L3 while the 36 GEMMs sweep it. */
#define TS_WINO_V_TARGET_FLOATS (2560 * 1024)

typedef struct {
    int64_t th, tw;   /* tile grid of one image */
    int64_t tiles;    /* th * tw */
    int64_t total;    /* tiles of all images */
    int64_t npan;     /* NR-tile panels per group */
    size_t v_floats;  /* per tile group */
    size_t mb_floats; /* per tile group */
} wino_plan;

static wino_plan plan_for(const conv_geom *g) {
    wino_plan w;
    w.th = (g->oh + WO - 1) / WO;
    w.tw = (g->ow + WO - 1) / WO;
    w.tiles = w.th * w.tw;
    w.total = w.tiles * g->n;
    int64_t need = (w.total + NR - 1) / NR;
    w.npan = TS_WINO_V_TARGET_FLOATS / ((int64_t)WP * g->cg * NR);
    if (w.npan > WG_MAX_PANELS) w.npan = WG_MAX_PANELS;
    if (w.npan > need) w.npan = need;
    if (w.npan < 1) w.npan = 1;
    w.v_floats = (size_t)(WP * w.npan * g->cg * NR);
    w.mb_floats = (size_t)(WP * g->mg * w.npan * NR);
    return w;
}

int ts_conv_winograd_usable(const conv_geom *g, const ts_conv2d_params *p) {
    /* Gather/scatter indices are int32 offsets within x and y. */
    int fits = g->n * g->c * g->h * g->w < INT32_MAX && g->n * g->m * g->p < INT32_MAX;
    return TS_WINO_HAVE && fits && g->kh == 3 && g->kw == 3 && p->stride_h == 1 &&
           p->stride_w == 1 && p->dil_h == 1 && p->dil_w == 1;
}

/* Cost model, in units of one GEMM flop pair (multiply-add) per (output,
 * input) channel pair; constants measured with bench_conv on the dev
 * machine (AMD Zen 5, AVX-512):
 * - im2col GEMM: 9 per output pixel;
 * - Winograd GEMM: 36 per tile, tiles padded to whole NR-tile panels;
 * - rebuilding U once per tile group: ~950 (the 9 stride-9 gathers and 36
 *   stores per 16 filters cost about as much as 950 multiply-adds);
 * - input / output transforms: ~200 / ~150 per tile and input / output
 *   channel, spread over the other channel count.
 * Winograd is taken only when the model predicts at most 0.8x the time, so
 * that model error does not pick the slower kernel in close cases. */
#define TS_WINO_U_COST 950.0
#define TS_WINO_IN_COST 200.0
#define TS_WINO_OUT_COST 150.0
#define TS_WINO_MARGIN 0.8

int ts_conv_winograd_preferred(const conv_geom *g, const ts_conv2d_params *p) {
    if (!ts_conv_winograd_usable(g, p)) return 0;
    /* Few channels: K = C is too short for the micro-kernel to pay off its
     * accumulator loads and stores. */
    if (g->cg < 16 || g->mg < 16) return 0;
    wino_plan w = plan_for(g);
    int64_t tg = w.npan * NR;
    double groups = (double)((w.total + tg - 1) / tg);
    double padded = (double)((w.total + NR - 1) / NR * NR);
    double gemm = 9.0 * (double)g->p * (double)g->n;
    double wino = 36.0 * padded + TS_WINO_U_COST * groups +
                  TS_WINO_IN_COST * padded / (double)g->mg +
                  TS_WINO_OUT_COST * padded / (double)g->cg;
    return wino <= TS_WINO_MARGIN * gemm;
}

size_t ts_conv_winograd_workspace_floats(const conv_geom *g, const ts_conv2d_params *p) {
    if (!ts_conv_winograd_usable(g, p)) return 0;
    wino_plan w = plan_for(g);
    return w.v_floats + w.mb_floats + (size_t)TS_CONV_MAX_THREADS * WP * MR * KC;
}

#if TS_WINO_HAVE

/* ---- the three transforms, 16 lanes at a time --------------------------- */

/* o = B^T d for one column of a 6x6 tile. */
static inline void bt6(const __m512 d[WA], __m512 o[WA]) {
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    const __m512 five = _mm512_set1_ps(5.0f);
    o[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    o[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
    o[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
    o[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), _mm512_sub_ps(d[4], d[2]));
    o[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), _mm512_sub_ps(d[4], d[2]));
    o[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

/* o = A^T x (6 -> 4). */
static inline void at6(const __m512 x[WA], __m512 o[WO]) {
    const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    const __m512 eight = _mm512_set1_ps(8.0f);
    __m512 s12 = _mm512_add_ps(x[1], x[2]), d12 = _mm512_sub_ps(x[1], x[2]);
    __m512 s34 = _mm512_add_ps(x[3], x[4]), d34 = _mm512_sub_ps(x[3], x[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(x[0], s12), s34);
    o[1] = _mm512_fmadd_ps(two, d34, d12);
    o[2] = _mm512_fmadd_ps(four, s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(eight, d34, d12), x[5]);
}

/* o = G g (3 -> 6). */
static inline void g3(const __m512 g[3], __m512 o[WA]) {
    const __m512 q = _mm512_set1_ps(0.25f), s = _mm512_set1_ps(1.0f / 6.0f);
    const __m512 t24 = _mm512_set1_ps(1.0f / 24.0f), t12 = _mm512_set1_ps(1.0f / 12.0f);
    __m512 g02 = _mm512_add_ps(g[0], g[2]);
    o[0] = _mm512_mul_ps(q, g[0]);
    o[1] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6.0f), _mm512_add_ps(g02, g[1]));
    o[2] = _mm512_mul_ps(_mm512_set1_ps(-1.0f / 6.0f), _mm512_sub_ps(g02, g[1]));
    __m512 e = _mm512_fmadd_ps(t24, g[0], _mm512_mul_ps(s, g[2]));
    o[3] = _mm512_fmadd_ps(t12, g[1], e);
    o[4] = _mm512_fnmadd_ps(t12, g[1], e);
    o[5] = g[2];
}

/* U block for output channels [m0, m0 + mr) and input channels [k0, k0 + kc)
 * of one group: ub[pos][i][c - k0] (row length kc), the A operand of the
 * position's GEMM. Vectors run over 16 input channels: filter (m, c) is 9
 * consecutive floats, so the 16 filters of a vector are 144 consecutive
 * floats that stride-9 gathers read from L1. */
static void transform_filters(const conv_geom *g, const float *wg, int64_t m0, int mr, int64_t k0,
                              int64_t kc, float *ub) {
    const __m512i idx =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32(9));
    const int64_t pos_stride = (int64_t)MR * kc;
    for (int i = 0; i < mr; i++) {
        for (int64_t c0 = 0; c0 < kc; c0 += 16) {
            int64_t nc = kc - c0 < 16 ? kc - c0 : 16;
            const __mmask16 valid = (__mmask16)((1u << nc) - 1u);
            const float *src = wg + ((m0 + i) * g->cg + k0 + c0) * 9;
            /* Contiguous loads first: gathers straight from memory stall on
             * every cold line, sequential loads let the prefetcher run. */
            float raw[144] __attribute__((aligned(64)));
            for (int v = 0; v < 9; v++) {
                int64_t lo = 16 * v, n = 9 * nc - lo;
                __mmask16 lm = n >= 16 ? 0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1u) : 0;
                _mm512_store_ps(raw + lo, _mm512_maskz_loadu_ps(lm, src + lo));
            }
            __m512 k[9], t[WA][3], col[3], out[WA];
            for (int e = 0; e < 9; e++)
                k[e] = _mm512_i32gather_ps(idx, raw + e, 4);
            for (int j = 0; j < 3; j++) { /* t = G g: columns of g */
                col[0] = k[j], col[1] = k[3 + j], col[2] = k[6 + j];
                g3(col, out);
                for (int r = 0; r < WA; r++)
                    t[r][j] = out[r];
            }
            float *dst = ub + i * kc + c0;
            for (int r = 0; r < WA; r++) { /* U = t G^T: rows of t */
                g3(t[r], out);
                for (int j = 0; j < WA; j++)
                    _mm512_mask_storeu_ps(dst + (r * WA + j) * pos_stride, valid, out[j]);
            }
        }
    }
}

/* Lane geometry of 16 consecutive tiles: gather/scatter offsets of the tile
 * origin and, per tile row/column, which lanes are inside the image. */
typedef struct {
    __m512i in_idx, out_idx;
    __mmask16 in_row[WA], in_col[WA], out_row[WO], out_col[WO];
} lane_geom;

static void lane_geom_make(const conv_geom *g, const ts_conv2d_params *p, const wino_plan *wp,
                           int64_t first_tile, int64_t img0, lane_geom *lg) {
    int32_t in_off[16], out_off[16], iy[16], ix[16], oy[16], ox[16];
    __mmask16 live = 0;
    for (int l = 0; l < 16; l++) {
        int64_t t = first_tile + l;
        if (t >= wp->total) {
            in_off[l] = out_off[l] = iy[l] = ix[l] = oy[l] = ox[l] = 0;
            continue;
        }
        live |= (__mmask16)(1u << l);
        int64_t img = t / wp->tiles, r = t % wp->tiles;
        int64_t ty = r / wp->tw, tx = r % wp->tw;
        oy[l] = (int32_t)(ty * WO), ox[l] = (int32_t)(tx * WO);
        iy[l] = (int32_t)(ty * WO - p->pad_t), ix[l] = (int32_t)(tx * WO - p->pad_l);
        in_off[l] = (int32_t)((img - img0) * g->c * g->h * g->w + iy[l] * g->w + ix[l]);
        out_off[l] = (int32_t)((img - img0) * g->m * g->p + oy[l] * g->ow + ox[l]);
    }
    lg->in_idx = _mm512_loadu_si512(in_off);
    lg->out_idx = _mm512_loadu_si512(out_off);
    for (int i = 0; i < WA; i++) {
        __mmask16 rm = 0, cm = 0;
        for (int l = 0; l < 16; l++) {
            if (iy[l] + i >= 0 && iy[l] + i < g->h) rm |= (__mmask16)(1u << l);
            if (ix[l] + i >= 0 && ix[l] + i < g->w) cm |= (__mmask16)(1u << l);
        }
        lg->in_row[i] = rm & live, lg->in_col[i] = cm & live;
    }
    for (int i = 0; i < WO; i++) {
        __mmask16 rm = 0, cm = 0;
        for (int l = 0; l < 16; l++) {
            if (oy[l] + i < g->oh) rm |= (__mmask16)(1u << l);
            if (ox[l] + i < g->ow) cm |= (__mmask16)(1u << l);
        }
        lg->out_row[i] = rm & live, lg->out_col[i] = cm & live;
    }
}

/* V[pos][q][c][half*16 .. +16) = B^T d B for the 16 tiles of lg, channel
 * plane xc (offsets in lg are relative to it). */
static void transform_input(const lane_geom *lg, const float *xc, int64_t w, float *v,
                            int64_t pos_stride) {
    __m512 d[WA][WA], t[WA][WA], col[WA], out[WA];
    const __m512 zero = _mm512_setzero_ps();
    for (int r = 0; r < WA; r++)
        for (int s = 0; s < WA; s++) {
            __mmask16 m = lg->in_row[r] & lg->in_col[s];
            __m512i idx = _mm512_add_epi32(lg->in_idx, _mm512_set1_epi32((int)(r * w + s)));
            d[r][s] = _mm512_mask_i32gather_ps(zero, m, idx, xc, 4);
        }
    for (int s = 0; s < WA; s++) { /* t = B^T d: columns */
        for (int r = 0; r < WA; r++)
            col[r] = d[r][s];
        bt6(col, out);
        for (int r = 0; r < WA; r++)
            t[r][s] = out[r];
    }
    for (int i = 0; i < WA; i++) { /* V = t B: rows */
        bt6(t[i], out);
        for (int j = 0; j < WA; j++)
            _mm512_storeu_ps(v + (i * WA + j) * pos_stride, out[j]);
    }
}

/* y tiles of output channel plane yc (offsets in lg) = A^T X A + bias,
 * X read from mb[pos * pos_stride]. */
static void transform_output(const lane_geom *lg, const float *mb, int64_t pos_stride, float bias,
                             float *yc, int64_t ow) {
    __m512 x[WA], t[WO][WA], out[WO], row[WA];
    for (int s = 0; s < WA; s++) { /* t = A^T X: columns */
        for (int r = 0; r < WA; r++)
            x[r] = _mm512_loadu_ps(mb + (r * WA + s) * pos_stride);
        at6(x, out);
        for (int r = 0; r < WO; r++)
            t[r][s] = out[r];
    }
    const __m512 bv = _mm512_set1_ps(bias);
    for (int i = 0; i < WO; i++) { /* Y = t A: rows */
        for (int s = 0; s < WA; s++)
            row[s] = t[i][s];
        at6(row, out);
        for (int j = 0; j < WO; j++) {
            __mmask16 m = lg->out_row[i] & lg->out_col[j];
            __m512i idx = _mm512_add_epi32(lg->out_idx, _mm512_set1_epi32((int)(i * ow + j)));
            _mm512_mask_i32scatter_ps(yc, m, idx, _mm512_add_ps(out[j], bv), 4);
        }
    }
}

/* ---- driver ------------------------------------------------------------- */

typedef struct {
    const conv_geom *g;
    const ts_conv2d_params *p;
    wino_plan wp;
    const float *x, *w, *b;
    float *y, *v, *mb, *ubuf;
} wino_job;

/* Output channels [m0, m0 + mr) of one tile group (lives tiles from t0;
 * V holds its transformed input): for each K block, transform the filters
 * into this thread's L2 slot ub, then the 36 GEMMs
 * Mb[pos][rows][tg] += U[pos][rows][kc] * V[pos][kc][tg]; then the output
 * transform of those channels. U is rebuilt per tile group instead of
 * stored for the call: for the deep layers it would be 36 * M * C floats
 * (38 MB at 512x512) streamed through DRAM twice, while rebuilding it from
 * the 9x smaller filters costs ~1/(4 * tiles) of the GEMM flops. */
static void output_block(const wino_job *j, int64_t gi, int64_t t0, int64_t live, int64_t m0,
                         float *ub) {
    const conv_geom *g = j->g;
    const wino_plan *wp = &j->wp;
    const int64_t tg = wp->npan * NR, img0 = t0 / wp->tiles;
    const int64_t npan = (live + NR - 1) / NR, halves = (live + 15) / 16;
    const int mr = (int)(g->mg - m0 < MR ? g->mg - m0 : MR);
    const float *wg = j->w + gi * g->mg * g->k;
    float *yg = j->y + (img0 * g->m + gi * g->mg) * g->p;
    for (int64_t k0 = 0; k0 < g->cg; k0 += KC) {
        int64_t kc = g->cg - k0 < KC ? g->cg - k0 : KC;
        transform_filters(g, wg, m0, mr, k0, kc, ub);
        for (int64_t pos = 0; pos < WP; pos++) {
            const float *vp = j->v + pos * wp->npan * g->cg * NR + k0 * NR;
            float *mp = j->mb + (pos * g->mg + m0) * tg;
            for (int64_t q = 0; q < npan; q++)
                ts_conv_micro_tile_rows(mr, kc, ub + pos * MR * kc, kc, vp + q * g->cg * NR,
                                        mp + q * NR, tg, 0xFFFFu, 0xFFFFu, k0 == 0, NULL);
        }
    }
    lane_geom lg;
    for (int64_t h = 0; h < halves; h++) {
        lane_geom_make(g, j->p, wp, t0 + h * 16, img0, &lg);
        for (int64_t m = m0; m < m0 + mr; m++) {
            float bias = j->b ? j->b[gi * g->mg + m] : 0.0f;
            transform_output(&lg, j->mb + m * tg + h * 16, g->mg * tg, bias, yg + m * g->p, g->ow);
        }
    }
}

/* One tile group [t0, t0 + npan*NR) of group gi: two phases, the input
 * transform by (half-panel, channel) items, then the output-channel blocks
 * (output_block). Entering the first phase waits for the previous tile
 * group, whose V and Mb this one overwrites. */
static void run_tile_group(const wino_job *j, int64_t gi, int64_t t0, int tid, ts_conv_team *team,
                           ts_conv_work *w) {
    const conv_geom *g = j->g;
    const wino_plan *wp = &j->wp;
    const int64_t tg = wp->npan * NR, img0 = t0 / wp->tiles;
    /* The last group may need fewer panels than the others. */
    const int64_t live = wp->total - t0 < tg ? wp->total - t0 : tg;
    const int64_t halves = (live + 15) / 16, items = halves * g->cg;
    const float *xg = j->x + (img0 * g->c + gi * g->cg) * g->h * g->w;
    int64_t lo, hi;
    ts_conv_work_phase(team, w, items);
    while (ts_conv_work_claim(team, w, &lo, &hi)) {
        lane_geom lg;
        int64_t cur = -1;
        for (int64_t it = lo; it < hi; it++) { /* channel fastest */
            int64_t h = it / g->cg, c = it % g->cg;
            if (h != cur) lane_geom_make(g, j->p, wp, t0 + h * 16, img0, &lg), cur = h;
            float *v = j->v + ((h / 2) * g->cg + c) * NR + (h % 2) * 16;
            transform_input(&lg, xg + c * g->h * g->w, g->w, v, wp->npan * g->cg * NR);
        }
    }
    float *ub = j->ubuf + (size_t)tid * WP * MR * KC;
    ts_conv_work_phase(team, w, (g->mg + MR - 1) / MR);
    while (ts_conv_work_claim(team, w, &lo, &hi))
        for (int64_t mbk = lo; mbk < hi; mbk++)
            output_block(j, gi, t0, live, mbk * MR, ub);
}

static void wino_member(void *ctx, int tid, int T, ts_conv_team *team) {
    (void)T;
    const wino_job *j = ctx;
    const conv_geom *g = j->g;
    const wino_plan *wp = &j->wp;
    const int64_t tg = wp->npan * NR;
    ts_conv_work w = {.tid = tid};
    for (int64_t gi = 0; gi < g->groups; gi++)
        for (int64_t t0 = 0; t0 < wp->total; t0 += tg)
            run_tile_group(j, gi, t0, tid, team, &w);
}

void ts_conv_winograd_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                              const float *w, const float *b, float *y, float *ws, int threads) {
    TS_ASSERT(ts_conv_winograd_usable(g, p));
    wino_job j = {.g = g, .p = p, .wp = plan_for(g), .x = x, .w = w, .b = b, .y = y};
    j.v = ws;
    j.mb = j.v + j.wp.v_floats;
    j.ubuf = j.mb + j.wp.mb_floats;
    double flops = 2.0 * WP * (double)g->m * (double)g->cg * (double)(j.wp.total * 1);
    ts_conv_team_run(ts_conv_team_size(threads, flops), wino_member, &j);
}

#else /* !TS_WINO_HAVE */

void ts_conv_winograd_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                              const float *w, const float *b, float *y, float *ws, int threads) {
    (void)g, (void)p, (void)x, (void)w, (void)b, (void)y, (void)ws, (void)threads;
    TS_ASSERT(!"conv_winograd_forward called without AVX-512 support");
}

#endif
