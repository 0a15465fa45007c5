/* conv_fast.c: conv forward as a packed GEMM with an AVX-512 micro-kernel.
 *
 * Why not im2col + cblas_sgemm: sgemm must first repack the im2col matrix
 * into its own panel layout, so every input element is written twice and
 * read three times, and OpenBLAS's kernel choice depends on its CPU table
 * (Debian's 0.3.21 runs AVX2 kernels on AVX-512 Zen parts). Here im2col
 * writes straight into the micro-kernel's panel layout and the GEMM is ours:
 *
 *   Y[M, P] = W[M, K] * col[K, P]        (per image and group)
 *
 * - col is built in chunks of CH output positions (CH a multiple of NR);
 *   a chunk is K x CH floats stored as CH/NR panels of [K][NR] (NR = 32
 *   floats = two zmm registers), so the micro-kernel streams it linearly.
 * - W is read in place: one k step broadcasts one float from each of MR =
 *   12 rows (12 sequential streams the prefetcher follows). Packing W into
 *   [M/MR][K][MR], per chunk or once per call, measured no faster.
 * - The micro-kernel keeps a 12 x 32 tile of Y in 24 zmm accumulators over
 *   KC steps; the first K block adds the bias, later ones add into Y.
 * - Loop order per chunk: KC block -> MC block (its W slice stays in L2) ->
 *   panel (B micro-panel of KC x 32 floats stays in L1) -> MR block.
 * - Threads split the panels of a chunk (or, when a chunk has few panels,
 *   the M blocks); a barrier separates packing a chunk from using it.
 */
#include "conv_internal.h"

#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define TS_CONV_HAVE_FAST 1
#else
#define TS_CONV_HAVE_FAST 0
#endif

enum {
    MR = TS_CONV_MR,
    NR = TS_CONV_NR,
    KC = 256, /* K block: the B micro-panel (KC x NR floats, 32 KiB) fits L1 */
    MC = 144, /* M block: its W slice (MC x KC floats, 144 KiB) stays in L2 */
};

#define TS_CONV_GATHER_MAX_STRIDE (1 << 24)

/* Target floats of the slice of a packed col chunk that one K block uses
 * (min(K, KC) x CH): ~384 KiB, so it stays in L2 while the MC blocks of W
 * sweep over it. A chunk is K x CH floats in all. */
#define TS_CONV_FAST_SLICE_FLOATS (96 * 1024)

static int64_t fast_chunk_cols(const conv_geom *g) {
    int64_t kslice = g->k < KC ? g->k : KC;
    int64_t ch = TS_CONV_FAST_SLICE_FLOATS / kslice / NR * NR;
    int64_t need = (g->p + NR - 1) / NR * NR;
    if (ch < NR) ch = NR;
    if (ch > need) ch = need;
    return ch;
}

int ts_conv_fast_usable(const conv_geom *g) {
    return TS_CONV_HAVE_FAST && !g->direct && g->k <= (int64_t)1 << 24;
}

/* Small images (one chunk, under ~0.1 ms of work each) in a batch: threads
 * take whole images, each packing into its own slot, instead of splitting
 * every image behind two barriers (measured: ResNet's 1x1/2 layer with 49
 * outputs per image, batch 8, ran slower on 2 threads than on 1). */
#define TS_CONV_IMAGE_SPLIT_FLOPS 2e7

static int fast_splits_images(const conv_geom *g) {
    double per_image = 2.0 * (double)g->m * (double)g->p * (double)g->k;
    return g->n >= 2 && g->p <= fast_chunk_cols(g) && per_image < TS_CONV_IMAGE_SPLIT_FLOPS;
}

size_t ts_conv_fast_workspace_floats(const conv_geom *g) {
    if (!ts_conv_fast_usable(g)) return 0;
    size_t slot = (size_t)(g->k * fast_chunk_cols(g));
    return fast_splits_images(g) ? slot * TS_CONV_MAX_THREADS : slot;
}

#if TS_CONV_HAVE_FAST

/* ---- packing ------------------------------------------------------------ */

/* A run of consecutive output positions inside one output row. */
typedef struct {
    int64_t oy, ox, len, j; /* output row, first column, count, lane in panel */
} seg;

/* Splits panel columns [pc, pc + nc) into per-output-row segments. */
static int panel_segments(const conv_geom *g, int64_t pc, int64_t nc, seg *s) {
    int n = 0;
    for (int64_t j = 0; j < nc;) {
        int64_t pos = pc + j, oy = pos / g->ow, ox = pos % g->ow;
        int64_t len = g->ow - ox < nc - j ? g->ow - ox : nc - j;
        s[n++] = (seg){oy, ox, len, j};
        j += len;
    }
    return n;
}

static inline __mmask16 lanes(int64_t lo, int64_t hi) { /* bits [lo, hi) of 16 */
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << (hi - lo)) - 1u) << lo);
}

/* Copies src[0..n) (n <= 32) to dst[0..n) with masked vector moves; only
 * the n valid elements are touched on either side. */
static inline void copy_short(float *dst, const float *src, int64_t n) {
    __mmask16 m0 = lanes(0, n), m1 = lanes(0, n - 16);
    _mm512_mask_storeu_ps(dst, m0, _mm512_maskz_loadu_ps(m0, src));
    if (m1) _mm512_mask_storeu_ps(dst + 16, m1, _mm512_maskz_loadu_ps(m1, src + 16));
}

/* The valid lanes of one segment for one kernel column: lanes
 * [lane, lane + n) of the panel read input columns src, src + sw, ... */
typedef struct {
    int64_t src, lane, n;
} col_run;

static col_run segment_columns(const conv_geom *g, const ts_conv2d_params *p, const seg *s,
                               int64_t jj) {
    const int64_t sw = p->stride_w;
    int64_t ix0 = s->ox * sw + jj * p->dil_w - p->pad_l; /* input column of the first lane */
    int64_t lo = ix0 < 0 ? (-ix0 + sw - 1) / sw : 0;
    int64_t hi = g->w - ix0 <= 0 ? 0 : (g->w - ix0 - 1) / sw + 1;
    if (hi > s->len) hi = s->len;
    return (col_run){ix0 + lo * sw, s->j + lo, hi > lo ? hi - lo : 0};
}

/* d[0..n) = row[0], row[sw], ... (n <= NR). */
static inline void copy_strided(float *d, const float *row, int64_t n, int64_t sw, __m512i sidx,
                                __m512i even) {
    if (sw == 1) {
        copy_short(d, row, n);
        return;
    }
    for (int64_t l = 0; l < n; l += 16) {
        int64_t k = n - l < 16 ? n - l : 16;
        __mmask16 m = lanes(0, k);
        const float *src = row + l * sw;
        if (sw == 2) { /* even lanes of two loads: no gather */
            __m512 a = _mm512_maskz_loadu_ps(lanes(0, 2 * k - 1), src);
            __m512 b = _mm512_maskz_loadu_ps(lanes(0, 2 * k - 17), src + 16);
            _mm512_mask_storeu_ps(d + l, m, _mm512_permutex2var_ps(a, even, b));
        } else if (sw <= TS_CONV_GATHER_MAX_STRIDE) { /* lane offsets fit int32 */
            _mm512_mask_storeu_ps(d + l, m,
                                  _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, sidx, src, 4));
        } else {
            for (int64_t e = 0; e < k; e++)
                d[l + e] = src[e * sw];
        }
    }
}

/* Packs output positions [pc, pc + nc) of one image/group into a [K][NR]
 * panel: dst[k * NR + j] = x[c][iy][ix] for tap k = (c, i, jj), 0 in padding
 * and for lanes j >= nc. Kernel column outermost: the column bounds of each
 * segment (divisions by the stride) depend only on it, so they are computed
 * once per panel and column, not per row (measured 1.15-1.3x faster packing
 * on the stride-2 ResNet layers than the row-major order with a table). */
static void pack_panel(const conv_geom *g, const ts_conv2d_params *p, const float *x, int64_t pc,
                       int64_t nc, float *dst) {
    seg s[NR];
    col_run cr[NR];
    int ns = panel_segments(g, pc, nc, s);
    const int64_t sw = p->stride_w, hw = g->h * g->w;
    const __m512 zero = _mm512_setzero_ps();
    const __m512i sidx =
        _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi32((int)(sw <= TS_CONV_GATHER_MAX_STRIDE ? sw : 1)));
    const __m512i even =
        _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    for (int64_t jj = 0; jj < g->kw; jj++) {
        for (int t = 0; t < ns; t++)
            cr[t] = segment_columns(g, p, &s[t], jj);
        for (int64_t c = 0; c < g->cg; c++) {
            const float *xc = x + c * hw;
            for (int64_t i = 0; i < g->kh; i++) {
                float *d = dst + ((c * g->kh + i) * g->kw + jj) * NR;
                _mm512_storeu_ps(d, zero);
                _mm512_storeu_ps(d + 16, zero);
                for (int t = 0; t < ns; t++) {
                    int64_t iy = s[t].oy * p->stride_h - p->pad_t + i * p->dil_h;
                    if (iy < 0 || iy >= g->h || cr[t].n == 0) continue;
                    copy_strided(d + cr[t].lane, xc + iy * g->w + cr[t].src, cr[t].n, sw, sidx,
                                 even);
                }
            }
        }
    }
}

/* ---- micro-kernel ------------------------------------------------------- */

/* Y[0..mr)[0..32) (row stride ldy, lanes masked by m0/m1) =
 *   (first ? bias : Y) + A[mr x kc] * B[kc x 32]. */
static inline __attribute__((always_inline)) void
micro_tile(const int mr, int64_t kc, const float *a, const int64_t a_rs, const int64_t a_ks,
           const float *b, float *y, int64_t ldy, __mmask16 m0, __mmask16 m1, int first,
           const float *bias) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
        c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += a_ks, b += NR) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(a[i * a_rs]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        float *yr = y + i * ldy;
        __m512 base0, base1;
        if (first) {
            base0 = base1 = bias ? _mm512_set1_ps(bias[i]) : _mm512_setzero_ps();
        } else {
            base0 = _mm512_maskz_loadu_ps(m0, yr);
            base1 = _mm512_maskz_loadu_ps(m1, yr + 16);
        }
        _mm512_mask_storeu_ps(yr, m0, _mm512_add_ps(c0[i], base0));
        _mm512_mask_storeu_ps(yr + 16, m1, _mm512_add_ps(c1[i], base1));
    }
}

#define TILE_ROWS_CASE(R)                                                                          \
    case R: micro_tile(R, kc, a, lda, 1, b, y, ldy, m0, m1, first, bias); break;

void ts_conv_micro_tile_rows(int mr, int64_t kc, const float *a, int64_t lda, const float *b,
                             float *y, int64_t ldy, unsigned m0_bits, unsigned m1_bits, int first,
                             const float *bias) {
    const __mmask16 m0 = (__mmask16)m0_bits, m1 = (__mmask16)m1_bits;
    switch (mr) {
        TILE_ROWS_CASE(12)
        TILE_ROWS_CASE(11)
        TILE_ROWS_CASE(10)
        TILE_ROWS_CASE(9)
        TILE_ROWS_CASE(8)
        TILE_ROWS_CASE(7)
        TILE_ROWS_CASE(6)
        TILE_ROWS_CASE(5)
        TILE_ROWS_CASE(4)
        TILE_ROWS_CASE(3)
        TILE_ROWS_CASE(2)
        TILE_ROWS_CASE(1)
    default: break;
    }
}

/* ---- driver ------------------------------------------------------------- */

typedef struct {
    const conv_geom *g;
    const ts_conv2d_params *p;
    const float *x, *w, *b;
    float *y, *bpack;
    int64_t ch; /* chunk columns */
} fwd_job;

/* The tile block [m_lo, m_hi) x panels [q_lo, q_hi) of one chunk; wg is the
 * group's W, read in place by the micro-kernel (packing it, per chunk or
 * once per call, measured no faster: its 12-row blocks stream well). */
static void compute_block(const fwd_job *j, const float *wg, const float *bg, float *yg, int64_t p0,
                          int64_t ncols, int64_t m_lo, int64_t m_hi, int64_t q_lo, int64_t q_hi) {
    const conv_geom *g = j->g;
    const int64_t K = g->k, P = g->p;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
        int first = k0 == 0;
        for (int64_t mc0 = m_lo; mc0 < m_hi; mc0 += MC) {
            int64_t mc = m_hi - mc0 < MC ? m_hi - mc0 : MC;
            for (int64_t q = q_lo; q < q_hi; q++) {
                int64_t qc = ncols - q * NR < NR ? ncols - q * NR : NR;
                __mmask16 m0 = lanes(0, qc), m1 = lanes(0, qc - 16);
                const float *bp = j->bpack + q * K * NR + k0 * NR;
                float *yt = yg + p0 + q * NR;
                for (int64_t r0 = mc0; r0 < mc0 + mc; r0 += MR) {
                    int mr = (int)(mc0 + mc - r0 < MR ? mc0 + mc - r0 : MR);
                    ts_conv_micro_tile_rows(mr, kc, wg + r0 * K + k0, K, bp, yt + r0 * P, P, m0, m1,
                                            first, bg ? bg + r0 : NULL);
                }
            }
        }
    }
}

/* Whole images, claimed one run at a time, into this thread's slot (one
 * chunk each). */
static void fwd_images(const fwd_job *j, int t, ts_conv_team *team) {
    const conv_geom *g = j->g;
    fwd_job mine = *j;
    mine.bpack = j->bpack + (size_t)t * (size_t)(g->k * j->ch);
    const int64_t npan = (g->p + NR - 1) / NR;
    ts_conv_work w = {.tid = t};
    int64_t lo, hi;
    ts_conv_work_phase(team, &w, g->n);
    while (ts_conv_work_claim(team, &w, &lo, &hi)) {
        for (int64_t n = lo; n < hi; n++) {
            for (int64_t gi = 0; gi < g->groups; gi++) {
                const float *xg = j->x + (n * g->c + gi * g->cg) * g->h * g->w;
                for (int64_t q = 0; q < npan; q++) {
                    int64_t qc = g->p - q * NR < NR ? g->p - q * NR : NR;
                    pack_panel(g, j->p, xg, q * NR, qc, mine.bpack + q * g->k * NR);
                }
                compute_block(&mine, j->w + gi * g->mg * g->k, j->b ? j->b + gi * g->mg : NULL,
                              j->y + (n * g->m + gi * g->mg) * g->p, 0, g->p, 0, g->mg, 0, npan);
            }
        }
    }
}

/* Per chunk of output columns: pack its panels (phase 1), then multiply
 * (phase 2); bpack is reused by the next chunk. */
static void fwd_member(void *ctx, int t, int T, ts_conv_team *team) {
    const fwd_job *j = ctx;
    const conv_geom *g = j->g;
    const int64_t nmb = (g->mg + MR - 1) / MR;
    if (T > 1 && fast_splits_images(g)) {
        fwd_images(j, t, team);
        return;
    }
    ts_conv_work w = {.tid = t};
    int64_t lo, hi;
    for (int64_t n = 0; n < g->n; n++) {
        for (int64_t gi = 0; gi < g->groups; gi++) {
            const float *xg = j->x + (n * g->c + gi * g->cg) * g->h * g->w;
            const float *wg = j->w + gi * g->mg * g->k;
            const float *bg = j->b ? j->b + gi * g->mg : NULL;
            float *yg = j->y + (n * g->m + gi * g->mg) * g->p;
            for (int64_t p0 = 0; p0 < g->p; p0 += j->ch) {
                int64_t ncols = g->p - p0 < j->ch ? g->p - p0 : j->ch;
                int64_t npan = (ncols + NR - 1) / NR;
                ts_conv_work_phase(team, &w, npan);
                while (ts_conv_work_claim(team, &w, &lo, &hi)) {
                    for (int64_t q = lo; q < hi; q++) {
                        int64_t qc = ncols - q * NR < NR ? ncols - q * NR : NR;
                        pack_panel(g, j->p, xg, p0 + q * NR, qc, j->bpack + q * g->k * NR);
                    }
                }
                /* Enough panels: split them; otherwise split M in MR blocks. */
                const int by_panel = npan >= 2 * T;
                ts_conv_work_phase(team, &w, by_panel ? npan : nmb);
                while (ts_conv_work_claim(team, &w, &lo, &hi)) {
                    if (by_panel) {
                        compute_block(j, wg, bg, yg, p0, ncols, 0, g->mg, lo, hi);
                    } else {
                        int64_t m_hi = hi * MR > g->mg ? g->mg : hi * MR;
                        compute_block(j, wg, bg, yg, p0, ncols, lo * MR, m_hi, 0, npan);
                    }
                }
            }
        }
    }
}

void ts_conv_fast_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                          const float *w, const float *b, float *y, float *ws, int threads) {
    double flops = 2.0 * (double)g->n * (double)g->m * (double)g->p * (double)g->k;
    fwd_job job = {.g = g, .p = p, .x = x, .w = w, .b = b, .y = y, .bpack = ws};
    job.ch = fast_chunk_cols(g);
    ts_conv_team_run(ts_conv_team_size(threads, flops), fwd_member, &job);
}

#else /* !TS_CONV_HAVE_FAST */

void ts_conv_fast_forward(const conv_geom *g, const ts_conv2d_params *p, const float *x,
                          const float *w, const float *b, float *y, float *ws, int threads) {
    (void)g, (void)p, (void)x, (void)w, (void)b, (void)y, (void)ws, (void)threads;
    TS_ASSERT(!"conv_fast_forward called without AVX-512 support");
}

#endif
