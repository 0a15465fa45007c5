/* decode.c: decoding from any threshold-sized responder set, in double, with
 * the decoding matrix of each set cached (LRU, TS_CODE_CACHE sets).
 *
 * Real path (every code whose product map is square): an LU of M_S with
 * row pivoting, applied to column slices of the products by forward and
 * back substitution (for the ill-conditioned real Vandermonde family this
 * is far more accurate than multiplying by an explicit inverse); float32
 * decodes of well-conditioned sets multiply by the target rows of the
 * inverse instead. Complex Vandermonde: one k x k complex solve on the
 * combined products y_j = sum_{c,d} i^(c+d) P[j][c][d]. CRME (digest 1.2.8,
 * "option B"): two k x k complex Vandermonde solves, half the flops of the
 * 4k x 4k real solve and the same condition number. All of them are applied
 * by the cache-blocked kernels of "applying the decoding matrices" below. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"
#include "kernels.h"

static void entry_clear(ts_code_cache_entry *e) {
    free(e->ids);
    free(e->dec);
    free(e->zdec);
    free(e->piv);
    free(e->inv);
    ts_fftdec_free(e->fft);
    memset(e, 0, sizeof *e);
}

void ts_code_cache_clear(ts_code *c) {
    for (int s = 0; s < TS_CODE_CACHE; s++)
        entry_clear(&c->cache[s]);
}

void ts_code_set_fft_decode(ts_code *c, int on) {
    if (!c) return;
    c->no_fft = !on;
    ts_code_cache_clear(c);
}

int ts_code_fft_decode_chosen(const ts_code *c) {
    return c && !c->no_fft && ts_fftdec_applies(c, c->threshold);
}

/* ---- responder checks --------------------------------------------------- */

ts_status ts_code_check_responders(const ts_code *c, const int *resp, int n_resp, int need,
                                   ts_err *err) {
    if (!resp || n_resp < 1)
        return ts_errorf(err, TS_ERR_INVALID, "no responders given (need at least %d of %d)", need,
                         c->n);
    if (n_resp > c->n)
        return ts_errorf(err, TS_ERR_INVALID, "%d responders given but the code has %d workers",
                         n_resp, c->n);
    unsigned char seen[TS_CODE_MAX_WORKERS] = {0};
    for (int r = 0; r < n_resp; r++) {
        if (resp[r] < 0 || resp[r] >= c->n)
            return ts_errorf(err, TS_ERR_INVALID, "responder %d is not a worker id (0..%d)",
                             resp[r], c->n - 1);
        if (seen[resp[r]])
            return ts_errorf(err, TS_ERR_INVALID, "worker %d is listed twice among the responders",
                             resp[r]);
        seen[resp[r]] = 1;
    }
    if (n_resp < need)
        return ts_errorf(err, TS_ERR_INVALID,
                         "%d responders are too few: the %s code needs any %d of its %d workers",
                         n_resp, ts_code_kind_name(c->p.kind), need, c->n);
    return TS_OK;
}

/* ---- decoding matrices -------------------------------------------------- */

/* Rows of the square product map for the sorted set ids (N x nunk). */
static double *product_system(const ts_code *c, const int *ids, int nset) {
    int per = c->qa * c->qb, N = nset * per;
    double *m = malloc((size_t)N * c->nunk * sizeof *m);
    if (!m) return NULL;
    for (int r = 0; r < nset; r++)
        memcpy(m + (size_t)r * per * c->nunk, c->w + (size_t)ids[r] * per * c->nunk,
               (size_t)per * c->nunk * sizeof *m);
    return m;
}

/* Complex Vandermonde on the unit circle: V[r][e] = node(ids[r])^(sign*e),
 * with e = kB*i + sign2*l for the (i, l) column i*kB + l. */
static double complex *unit_vandermonde(const ts_code *c, const int *ids, int nset, int lsign) {
    int kA = c->p.kA, kB = c->p.kB, k = kA * kB;
    double complex *v = malloc((size_t)nset * k * sizeof *v);
    if (!v) return NULL;
    for (int r = 0; r < nset; r++)
        for (int i = 0; i < kA; i++)
            for (int l = 0; l < kB; l++) {
                long long e = ((long long)kB * i + lsign * l) * ids[r];
                long long m = e % c->n;
                if (m < 0) m += c->n;
                v[(size_t)r * k + i * kB + l] = cexp(I * 6.283185307179586 * (double)m / c->n);
            }
    return v;
}

static int uses_complex(const ts_code *c, int mode) {
    return (mode == TS_CODE_MODE_FAST &&
            (c->p.kind == TS_CODE_CRME || c->p.kind == TS_CODE_COMPLEX)) ||
           c->p.kind == TS_CODE_CIRCULANT;
}

double ts_code_set_cond(const ts_code *c, const int *ids, int nset, int mode) {
    if (c->p.kind == TS_CODE_CIRCULANT) return ts_code_circ_cond(c, ids);
    if (c->p.kind == TS_CODE_COMPLEX || (c->p.kind == TS_CODE_CRME && mode == TS_CODE_MODE_FAST)) {
        double complex *v = unit_vandermonde(c, ids, nset, 1);
        double k = v ? ts_la_zcond(v, nset, nset) : NAN;
        free(v);
        return k;
    }
    double *m = product_system(c, ids, nset);
    int N = nset * c->qa * c->qb;
    double k = m ? ts_la_cond(m, N, c->nunk) : NAN;
    free(m);
    return k;
}

static ts_status fast_rows(ts_code *c, ts_code_cache_entry *e, int N, double norm1);

static ts_status build_entry(ts_code *c, ts_code_cache_entry *e, int nset, int mode, ts_err *err) {
    if (c->p.kind == TS_CODE_CIRCULANT) {
        if (mode != TS_CODE_MODE_FAST)
            return ts_errorf(
                err, TS_ERR_UNSUPPORTED,
                "the circulant code decodes per frequency only (no dense real system)");
        return ts_code_circ_entry(c, e, err);
    }
    if (uses_complex(c, mode)) {
        /* The FFT plan replaces the complex inverses. It is an
         * optimization: without it (out of memory, or a set whose filling
         * would amplify round-off), the solve decodes. */
        ts_err ferr = {0};
        if (!c->no_fft && ts_fftdec_new(c, e->ids, nset, &e->fft, &ferr) != TS_OK) e->fft = NULL;
        if (e->fft) return TS_OK;
        int k = nset, nmat = c->p.kind == TS_CODE_CRME && !c->p.matvec ? 2 : 1;
        e->zdec = malloc((size_t)nmat * k * k * sizeof *e->zdec);
        if (!e->zdec) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a decoding matrix");
        for (int q = 0; q < nmat; q++) {
            double complex *v = unit_vandermonde(c, e->ids, nset, q == 0 ? 1 : -1);
            if (!v) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a decoding matrix");
            memcpy(e->zdec + (size_t)q * k * k, v, (size_t)k * k * sizeof *v);
            free(v);
            TS_TRY(ts_la_zinverse(e->zdec + (size_t)q * k * k, k, err));
        }
        return TS_OK;
    }
    int N = nset * c->qa * c->qb;
    if (N != c->nunk)
        return ts_errorf(err, TS_ERR_UNSUPPORTED,
                         "the %s code has no square real decoding system (%d equations, %d "
                         "unknowns)",
                         ts_code_kind_name(c->p.kind), N, c->nunk);
    e->dec = product_system(c, e->ids, nset);
    e->piv = malloc((size_t)N * sizeof *e->piv);
    if (!e->dec || !e->piv)
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a decoding matrix");
    double norm1 = 0; /* ||M||_1, before the factorization overwrites M */
    for (int j = 0; j < N; j++) {
        double col = 0;
        for (int i = 0; i < N; i++)
            col += fabs(e->dec[(size_t)i * N + j]);
        norm1 = fmax(norm1, col);
    }
    TS_TRY(ts_la_lu(e->dec, N, e->piv, err));
    return fast_rows(c, e, N, norm1);
}

/* Float32 decodes of well-conditioned systems multiply by the target rows of
 * the inverse (one DGEMM, faster than two triangular solves). That is safe
 * when the inverse's error, about kappa_1 N eps_double, stays below float32
 * round-off (2^-24) of the outputs; otherwise the LU path is kept. */
static ts_status fast_rows(ts_code *c, ts_code_cache_entry *e, int N, double norm1) {
    double *x = calloc((size_t)N * N, sizeof *x);
    if (!x) return TS_OK; /* the LU path still works */
    for (int i = 0; i < N; i++)
        x[(size_t)i * N + i] = 1;
    for (int k = 0; k < N; k++)
        if (e->piv[k] != k)
            for (int j = 0; j < N; j++) {
                double t = x[(size_t)k * N + j];
                x[(size_t)k * N + j] = x[(size_t)e->piv[k] * N + j];
                x[(size_t)e->piv[k] * N + j] = t;
            }
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, N, N, 1.0, e->dec, N,
                x, N);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, N, N, 1.0, e->dec,
                N, x, N);
    double inv1 = 0;
    for (int j = 0; j < N; j++) {
        double col = 0;
        for (int i = 0; i < N; i++)
            col += fabs(x[(size_t)i * N + j]);
        inv1 = fmax(inv1, col);
    }
    if (norm1 * inv1 * N * DBL_EPSILON <= ldexp(1.0, -24)) {
        e->inv = malloc((size_t)c->ntargets * N * sizeof *e->inv);
        for (int t = 0; e->inv && t < c->ntargets; t++)
            memcpy(e->inv + (size_t)t * N, x + (size_t)c->tsel[t] * N, (size_t)N * sizeof *x);
    }
    free(x);
    return TS_OK;
}

/* Finds or builds the cache entry of the sorted set ids[nset]. */
static ts_code_cache_entry *lookup(ts_code *c, const int *ids, int nset, int mode, ts_err *err) {
    ts_code_cache_entry *victim = &c->cache[0];
    c->clock++;
    for (int s = 0; s < TS_CODE_CACHE; s++) {
        ts_code_cache_entry *e = &c->cache[s];
        if (e->ids && e->mode == mode && !memcmp(e->ids, ids, (size_t)nset * sizeof *ids)) {
            e->used = c->clock;
            return e;
        }
        if (e->used < victim->used) victim = e; /* empty slots have used == 0 */
    }
    entry_clear(victim);
    victim->ids = malloc((size_t)nset * sizeof *ids);
    if (!victim->ids) {
        ts_errorf(err, TS_ERR_NOMEM, "out of memory for the decoding cache");
        return NULL;
    }
    memcpy(victim->ids, ids, (size_t)nset * sizeof *ids);
    victim->cond = -1;
    victim->mode = mode;
    victim->used = c->clock;
    if (build_entry(c, victim, nset, mode, err) != TS_OK) {
        entry_clear(victim);
        return NULL;
    }
    return victim;
}

/* ---- applying the decoding matrices ------------------------------------ */

/* Decoding applies a small matrix D (at most a few thousand entries) to
 * every column x of long blocks. It used to go through BLAS (zgemm, dtrsm)
 * on column chunks, with separate passes to convert to double, form the
 * combined products, un-interleave complex results and convert back: at
 * 4..28 rows each BLAS call packed its operands and ran far below the
 * core's peak, and every pass re-streamed the chunk (perf: see
 * docs/results/codes.md). Now each chunk of columns is converted to double
 * once into a buffer that stays in L2 (DEC_BUF_BYTES), and register-blocked
 * kernels produce every output of a slice of XB columns from that slice's
 * inputs (in L1), writing straight to the float (or double) targets.
 * Accumulation stays in double, with FMA. */

static int out_mode(int f64, size_t targets, size_t len) {
    return dec_out_mode(f64, targets, len, DEC_STREAM_BYTES);
}

/* Orders the non-temporal stores before the caller's next loads. */
static void out_done(int om) {
#if defined(__AVX__)
    if (om & OUT_STREAM) _mm_sfence();
#else
    (void)om;
#endif
}

static ts_status grow(ts_code *c, size_t doubles, ts_err *err) {
    if (c->buf_len >= doubles) return TS_OK;
    double *b = realloc(c->buf, doubles * sizeof *b);
    if (!b) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding scratch");
    c->buf = b, c->buf_len = doubles;
    return TS_OK;
}

/* Scratch of mat doubles (a matrix built for this call), then a chunk of
 * rows x *cols doubles, both 64-byte aligned. *cols is a multiple of XB
 * chosen so that the chunk fits DEC_BUF_BYTES (at least 4 slices). */
static ts_status dec_scratch(ts_code *c, size_t mat, int rows, double **m, double **chunk,
                             int *cols, ts_err *err) {
    int x = dec_chunk_cols(rows);
    mat = (mat + VW - 1) / VW * VW;
    TS_TRY(grow(c, mat + (size_t)rows * x + VW, err));
    double *p = (double *)(((uintptr_t)c->buf + 63) & ~(uintptr_t)63);
    *m = p, *chunk = p + mat, *cols = x;
    return TS_OK;
}

static int min_int(int a, int b) {
    return a < b ? a : b;
}

/* Chunk length at x0 of a block of len. */
static int chunk_len(size_t len, size_t x0, int cols) {
    return (int)(len - x0 < (size_t)cols ? len - x0 : (size_t)cols);
}

/* Likewise for the targets: the stores of a slice otherwise wait for each
 * line to be read for ownership. */
static void prefetch_out(void *const *dst, int T, int f64, size_t at, size_t len) {
    if (at >= len) return;
    for (int t = 0; t < T; t++) {
        if (f64) {
            __builtin_prefetch((double *)dst[t] + at, 1, 2);
            __builtin_prefetch((double *)dst[t] + at + VW, 1, 2);
        } else {
            __builtin_prefetch((float *)dst[t] + at, 1, 2);
        }
    }
}

/* Writes the slice (v0, v1) to dst at off: cnt <= XB values, as float or
 * double (om: OUT_*). */
DEC_INLINE void put(void *dst, int om, size_t off, int cnt, dvec v0, dvec v1) {
    if (cnt == XB && (om & OUT_F64)) {
        memcpy((double *)dst + off, &v0, sizeof v0);
        memcpy((double *)dst + off + VW, &v1, sizeof v1);
    } else if (cnt == XB) {
        fvec f0 = __builtin_convertvector(v0, fvec), f1 = __builtin_convertvector(v1, fvec);
        float *d = (float *)dst + off;
#if defined(__AVX__)
        if ((om & OUT_STREAM) && !((uintptr_t)d & 31)) { /* aligned rows only */
            __m256 m0, m1;
            memcpy(&m0, &f0, sizeof m0);
            memcpy(&m1, &f1, sizeof m1);
            _mm256_stream_ps(d, m0);
            _mm256_stream_ps(d + VW, m1);
            return;
        }
#endif
        memcpy(d, &f0, sizeof f0);
        memcpy(d + VW, &f1, sizeof f1);
    } else {
        double t[XB];
        memcpy(t, &v0, sizeof v0);
        memcpy(t + VW, &v1, sizeof v1);
        if (om & OUT_F64)
            memcpy((double *)dst + off, t, (size_t)cnt * sizeof *t);
        else
            for (int x = 0; x < cnt; x++)
                ((float *)dst)[off + x] = (float)t[x];
    }
}

/* ---- y = M p: a real R x C matrix on C rows ---------------------------- */

/* a[t] += m[t][j] * v for the nr (<= 8) rows of one register block: the
 * inner step of mk_rows and mk_direct. */
DEC_INLINE void fma_rows(int nr, const double *m, int C, int j, dvec v0, dvec v1, dvec *a0,
                         dvec *a1) {
    for (int t = 0; t < nr; t++) {
        double w = m[(size_t)t * C + j];
        a0[t] += w * v0;
        a1[t] += w * v1;
    }
}

/* nr (<= 8) outputs of one slice: tg[t] = sum_j m[t][j] in[j]. Eight rows
 * by two vectors: 16 FMAs per 2 vector loads and 8 broadcasts. */
DEC_INLINE void mk_rows(int nr, const double *m, int C, const double *in, int X, void *const *tg,
                        int om, size_t off, int cnt) {
    dvec a0[8] = {0}, a1[8] = {0};
    for (int j = 0; j < C; j++) {
        dvec v0 = ldv(in + (size_t)j * X), v1 = ldv(in + (size_t)j * X + VW);
        fma_rows(nr, m, C, j, v0, v1, a0, a1);
    }
    for (int t = 0; t < nr; t++)
        put(tg[t], om, off, cnt, a0[t], a1[t]);
}

static DEC_FMA void rows_chunk(const double *m, int R, int C, const double *in, int X, int nx,
                               void *const *tg, int om, size_t x0, const void *const *src,
                               size_t len) {
    for (int xb = 0; xb < nx; xb += XB) {
        int cnt = min_int(XB, nx - xb), t = 0;
        prefetch_slice(src, C, om & OUT_F64, x0 + X + xb, len);
        if (!(om & OUT_STREAM)) prefetch_out(tg, R, om & OUT_F64, x0 + X + xb, len);
        const double *s = in + xb;
        for (; t + 8 <= R; t += 8)
            mk_rows(8, m + (size_t)t * C, C, s, X, tg + t, om, x0 + xb, cnt);
        const double *mt = m + (size_t)t * C;
        switch (R - t) {
        case 7: mk_rows(7, mt, C, s, X, tg + t, om, x0 + xb, cnt); break;
        case 6: mk_rows(6, mt, C, s, X, tg + t, om, x0 + xb, cnt); break;
        case 5: mk_rows(5, mt, C, s, X, tg + t, om, x0 + xb, cnt); break;
        case 4: mk_rows(4, mt, C, s, X, tg + t, om, x0 + xb, cnt); break;
        case 3: mk_rows(3, mt, C, s, X, tg + t, om, x0 + xb, cnt); break;
        case 2: mk_rows(2, mt, C, s, X, tg + t, om, x0 + xb, cnt); break;
        case 1: mk_rows(1, mt, C, s, X, tg + t, om, x0 + xb, cnt); break;
        default: break;
        }
    }
}

/* One slice of up to 8 outputs straight from the products (float or
 * double, converted in registers): no chunk buffer. */
DEC_INLINE void mk_direct(int nr, const double *m, int C, const void *const *rows, int f64,
                          size_t x, void *const *tg, int om) {
    dvec a0[8] = {0}, a1[8] = {0};
    for (int j = 0; j < C; j++) {
        dvec v0, v1;
        if (f64) {
            v0 = ldv((const double *)rows[j] + x), v1 = ldv((const double *)rows[j] + x + VW);
        } else {
            fvec f0, f1;
            memcpy(&f0, (const float *)rows[j] + x, sizeof f0);
            memcpy(&f1, (const float *)rows[j] + x + VW, sizeof f1);
            v0 = __builtin_convertvector(f0, dvec), v1 = __builtin_convertvector(f1, dvec);
        }
        fma_rows(nr, m, C, j, v0, v1, a0, a1);
    }
    for (int t = 0; t < nr; t++)
        put(tg[t], om, x, XB, a0[t], a1[t]);
}

/* Whole slices of R <= 8 outputs in one pass over the products: every input
 * is used by one register block only, so converting it in the kernel costs
 * nothing and the loads, FMAs and stores of one stream overlap (the chunked
 * path alternates a load phase and a compute phase, which leaves memory
 * idle half of the time when there is little arithmetic). Returns the
 * columns done (a multiple of XB). */
#define DIRECT_ROWS 8 /* the most outputs direct_rows takes */

static DEC_FMA size_t direct_rows(const double *m, int R, const void *const *rows, int C,
                                  size_t len, void *const *tg, int f64, int om) {
    size_t x = 0;
    for (; x + XB <= len; x += XB) {
        prefetch_slice(rows, C, f64, x + DIRECT_AHEAD, len);
        switch (R) {
        case 8: mk_direct(8, m, C, rows, f64, x, tg, om); break;
        case 7: mk_direct(7, m, C, rows, f64, x, tg, om); break;
        case 6: mk_direct(6, m, C, rows, f64, x, tg, om); break;
        case 5: mk_direct(5, m, C, rows, f64, x, tg, om); break;
        case 4: mk_direct(4, m, C, rows, f64, x, tg, om); break;
        case 3: mk_direct(3, m, C, rows, f64, x, tg, om); break;
        case 2: mk_direct(2, m, C, rows, f64, x, tg, om); break;
        default: mk_direct(1, m, C, rows, f64, x, tg, om); break;
        }
    }
    return x;
}

/* targets[t] = sum_j m[t][j] rows[j] for t < R, j < C; m may live in the
 * scratch (mat doubles at its start, already filled by the caller through
 * dec_scratch) or elsewhere. At most 8 outputs: one pass (direct_rows), the
 * tail through the chunk buffer; more: chunks of columns. */
static ts_status apply_matrix(ts_code *c, const double *m, int R, const void *const *rows, int C,
                              size_t len, void *const *targets, int f64, double *chunk, int X) {
    int om = out_mode(f64, (size_t)R, len);
    size_t x0 = R <= DIRECT_ROWS ? direct_rows(m, R, rows, C, len, targets, f64, om) : 0;
    for (; x0 < len; x0 += (size_t)X) {
        int nx = chunk_len(len, x0, X);
        for (int j = 0; j < C; j++)
            load_row(rows[j], f64, x0, nx, chunk + (size_t)j * X);
        rows_chunk(m, R, C, chunk, X, nx, targets, om, x0, rows, len);
    }
    out_done(om);
    (void)c;
    return TS_OK;
}

/* ---- real systems -------------------------------------------------------- */

/* Forward substitution (unit lower L) of rows i0..i0+nr-1 of one slice, in
 * place: rows above i0 are already solved. */
DEC_INLINE void fwd_rows(int nr, const double *L, int N, int i0, double *s, int X) {
    dvec a0[4], a1[4];
    for (int t = 0; t < nr; t++)
        a0[t] = ldv(s + (size_t)(i0 + t) * X), a1[t] = ldv(s + (size_t)(i0 + t) * X + VW);
    for (int j = 0; j < i0; j++) {
        dvec v0 = ldv(s + (size_t)j * X), v1 = ldv(s + (size_t)j * X + VW);
        for (int t = 0; t < nr; t++) {
            double w = L[(size_t)(i0 + t) * N + j];
            a0[t] -= w * v0;
            a1[t] -= w * v1;
        }
    }
    for (int t = 1; t < nr; t++)
        for (int u = 0; u < t; u++) {
            double w = L[(size_t)(i0 + t) * N + i0 + u];
            a0[t] -= w * a0[u];
            a1[t] -= w * a1[u];
        }
    for (int t = 0; t < nr; t++)
        stv(s + (size_t)(i0 + t) * X, a0[t]), stv(s + (size_t)(i0 + t) * X + VW, a1[t]);
}

/* Back substitution (upper U, rd[i] = 1 / U[i][i]) of rows i0..i0+nr-1:
 * rows below are already solved. */
DEC_INLINE void back_rows(int nr, const double *U, const double *rd, int N, int i0, double *s,
                          int X) {
    dvec a0[4], a1[4];
    for (int t = 0; t < nr; t++)
        a0[t] = ldv(s + (size_t)(i0 + t) * X), a1[t] = ldv(s + (size_t)(i0 + t) * X + VW);
    for (int j = i0 + nr; j < N; j++) {
        dvec v0 = ldv(s + (size_t)j * X), v1 = ldv(s + (size_t)j * X + VW);
        for (int t = 0; t < nr; t++) {
            double w = U[(size_t)(i0 + t) * N + j];
            a0[t] -= w * v0;
            a1[t] -= w * v1;
        }
    }
    for (int t = nr - 1; t >= 0; t--) {
        for (int u = t + 1; u < nr; u++) {
            double w = U[(size_t)(i0 + t) * N + i0 + u];
            a0[t] -= w * a0[u];
            a1[t] -= w * a1[u];
        }
        a0[t] *= rd[i0 + t];
        a1[t] *= rd[i0 + t];
    }
    for (int t = 0; t < nr; t++)
        stv(s + (size_t)(i0 + t) * X, a0[t]), stv(s + (size_t)(i0 + t) * X + VW, a1[t]);
}

/* Solves L U x = s (the rows of s already permuted) for one slice, in four-
 * row blocks: the last block holds N % 4 rows when N is not a multiple. */
static DEC_FMA void lu_slice(const double *lu, const double *rd, int N, double *s, int X) {
    int full = N / 4 * 4, rest = N - full;
    for (int i0 = 0; i0 < full; i0 += 4)
        fwd_rows(4, lu, N, i0, s, X);
    switch (rest) {
    case 3: fwd_rows(3, lu, N, full, s, X); break;
    case 2: fwd_rows(2, lu, N, full, s, X); break;
    case 1: fwd_rows(1, lu, N, full, s, X); break;
    default: break;
    }
    switch (rest) {
    case 3: back_rows(3, lu, rd, N, full, s, X); break;
    case 2: back_rows(2, lu, rd, N, full, s, X); break;
    case 1: back_rows(1, lu, rd, N, full, s, X); break;
    default: break;
    }
    for (int i0 = full - 4; i0 >= 0; i0 -= 4)
        back_rows(4, lu, rd, N, i0, s, X);
}

static DEC_FMA void store_rows(const double *s, int X, int nx, const int *sel, int T,
                               void *const *tg, int om, size_t x0) {
    for (int xb = 0; xb < nx; xb += XB)
        for (int t = 0; t < T; t++) {
            const double *r = s + (size_t)sel[t] * X + xb;
            put(tg[t], om, x0 + xb, min_int(XB, nx - xb), ldv(r), ldv(r + VW));
        }
}

/* Real product systems. Float32 decodes of well-conditioned systems multiply
 * by the cached target rows of the inverse; otherwise M X = P is solved with
 * the cached LU (rows loaded in pivot order, then forward and back
 * substitution per slice), which is far more accurate for the
 * ill-conditioned real Vandermonde family. */
/* Systematic 1-D codes: worker t < k holds block t itself, so its product
 * is target t, exactly (encoding copies systematic shares). Only the targets
 * of systematic workers missing from the set go through the inverse: with s
 * of them missing, s rows instead of k, and none when every systematic
 * worker answered. Float decodes of well-conditioned sets only (the same
 * condition as inverse rows in general); the others take the LU path. And
 * only for k > DIRECT_ROWS: up to there the full decode is one pass over the
 * products, memory-bound, while copying first reads the answering products
 * twice (k = 8, 2 missing, 1e7 floats: 10.5 GB/s against 14.9 without the
 * copies); beyond, the full decode works in chunks and is arithmetic-bound
 * (k = 10: 18.7 against 8.8 GB/s at 1e6 floats; docs/results/codes.md). */
static ts_status apply_systematic(ts_code *c, const ts_code_cache_entry *e, const void *const *rows,
                                  int N, size_t len, void *const *targets, ts_err *err) {
    double *m, *chunk;
    int X, miss = 0;
    TS_TRY(dec_scratch(c, (size_t)N * N, N, &m, &chunk, &X, err));
    void **mt = malloc((size_t)N * sizeof *mt);
    if (!mt) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding");
    for (int t = 0, r = 0; t < N; t++) {
        while (r < N && e->ids[r] < t) /* ids sorted, rows in the same order */
            r++;
        if (r < N && e->ids[r] == t) {
            if (targets[t] != rows[r]) memcpy(targets[t], rows[r], len * sizeof(float));
            continue;
        }
        memcpy(m + (size_t)miss * N, e->inv + (size_t)t * N, (size_t)N * sizeof *m);
        mt[miss++] = targets[t];
    }
    ts_status st = miss ? apply_matrix(c, m, miss, rows, N, len, mt, 0, chunk, X) : TS_OK;
    free(mt);
    return st;
}

static ts_status apply_real(ts_code *c, const ts_code_cache_entry *e, const void *const *rows,
                            int N, size_t len, void *const *targets, int f64, ts_err *err) {
    double *m, *chunk;
    int X, T = c->ntargets;
    if (!f64 && e->inv && c->p.systematic && c->qa * c->qb == 1 && T == N && N > DIRECT_ROWS)
        return apply_systematic(c, e, rows, N, len, targets, err);
    if (!f64 && e->inv) {
        TS_TRY(dec_scratch(c, 0, N, &m, &chunk, &X, err));
        return apply_matrix(c, e->inv, T, rows, N, len, targets, f64, chunk, X);
    }
    TS_TRY(dec_scratch(c, (size_t)N, N, &m, &chunk, &X, err));
    int *perm = malloc((size_t)N * sizeof *perm), om = out_mode(f64, (size_t)T, len);
    if (!perm) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding");
    for (int i = 0; i < N; i++)
        perm[i] = i, m[i] = 1.0 / e->dec[(size_t)i * N + i];
    for (int k = 0; k < N; k++) { /* the row swaps of the LU, composed */
        int t = perm[k];
        perm[k] = perm[e->piv[k]], perm[e->piv[k]] = t;
    }
    for (size_t x0 = 0; x0 < len; x0 += (size_t)X) {
        int nx = chunk_len(len, x0, X);
        for (int r = 0; r < N; r++)
            load_row(rows[perm[r]], f64, x0, nx, chunk + (size_t)r * X);
        for (int xb = 0; xb < nx; xb += XB) {
            prefetch_slice(rows, N, f64, x0 + X + xb, len);
            lu_slice(e->dec, m, N, chunk + xb, X);
        }
        store_rows(chunk, X, nx, c->tsel, T, targets, om, x0);
    }
    out_done(om);
    free(perm);
    return TS_OK;
}

/* ---- complex Vandermonde ------------------------------------------------- */

/* y_r = sum_{a,b} i^(a+b) P[r][a][b]; T = Re(inv(V) y): a real k x (k per)
 * matrix, entry Re(inv(V)[t][r] i^(a+b)). */
static ts_status apply_complex(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                               int k, size_t len, void *const *targets, int f64, ts_err *err) {
    int per = c->qa * c->qb, C = k * per;
    double *m, *chunk;
    int X;
    TS_TRY(dec_scratch(c, (size_t)k * C, C, &m, &chunk, &X, err));
    for (int t = 0; t < k; t++)
        for (int r = 0; r < k; r++) {
            double complex z = e->zdec[(size_t)t * k + r];
            for (int a = 0; a < c->qa; a++)
                for (int b = 0; b < c->qb; b++) { /* Re(z i^(a+b)), a + b <= 2 */
                    double v = (a + b) == 1 ? -cimag(z) : (a + b) == 2 ? -creal(z) : creal(z);
                    m[(size_t)t * C + r * per + a * c->qb + b] = v;
                }
        }
    return apply_matrix(c, m, k, prod, C, len, targets, f64, chunk, X);
}

/* ---- CRME ----------------------------------------------------------------- */

/* Matrix-vector CRME: p_j = o_0 - i o_1 = sum_l w^(l j) (Y_{2l} - i Y_{2l+1}),
 * so z = inv(V) p gives Y_{2l} = Re z_l, Y_{2l+1} = -Im z_l. With
 * inv(V) = A + iB that is the real 2k x 2k matrix
 *   Y_{2l} = sum_r A o_0r + B o_1r,   Y_{2l+1} = sum_r -B o_0r + A o_1r,
 * applied to the products in their own order: 2k MACs per output, as the
 * complex solve. */
static ts_status apply_crme_mv(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                               int k, size_t len, void *const *targets, int f64, ts_err *err) {
    int C = 2 * k;
    double *m, *chunk;
    int X;
    TS_TRY(dec_scratch(c, (size_t)C * C, C, &m, &chunk, &X, err));
    for (int l = 0; l < k; l++)
        for (int r = 0; r < k; r++) {
            double A = creal(e->zdec[(size_t)l * k + r]), B = cimag(e->zdec[(size_t)l * k + r]);
            m[(size_t)(2 * l) * C + 2 * r] = A;
            m[(size_t)(2 * l) * C + 2 * r + 1] = B;
            m[(size_t)(2 * l + 1) * C + 2 * r] = -B;
            m[(size_t)(2 * l + 1) * C + 2 * r + 1] = A;
        }
    return apply_matrix(c, m, C, prod, C, len, targets, f64, chunk, X);
}

/* One half of CRME option B for nu (<= 4) target groups u of one slice:
 * re_u = sum_r c0 v1_r + c1 v2_r, im_u = sum_r c2 v1_r + c3 v2_r, with
 * (v1, v2) the rows (a-d, b+c) of responder r for ZP and (a+d, b-c) for ZQ
 * (in: the first of them, responders 4 rows apart) and (c0..c3) =
 * co[(u k + r) 4 ..]. Four groups share every input load: 32 FMAs for 4
 * vector loads and 16 broadcasts per responder, so the FMA units, not the
 * loads, set the pace. */
DEC_INLINE void mk_half(int nu, const double *co, int k, const double *in, int X, dvec (*z)[2][2]) {
    dvec re[4][2] = {{{0}}}, im[4][2] = {{{0}}};
    for (int r = 0; r < k; r++) {
        const double *s = in + (size_t)4 * r * X;
        dvec v1[2] = {ldv(s), ldv(s + VW)}, v2[2] = {ldv(s + X), ldv(s + X + VW)};
        for (int u = 0; u < nu; u++) {
            const double *w = co + ((size_t)u * k + r) * 4;
            for (int h = 0; h < 2; h++) {
                re[u][h] += w[0] * v1[h];
                re[u][h] += w[1] * v2[h];
                im[u][h] += w[2] * v1[h];
                im[u][h] += w[3] * v2[h];
            }
        }
    }
    for (int u = 0; u < nu; u++)
        for (int h = 0; h < 2; h++)
            z[u][0][h] = re[u][h], z[u][1][h] = im[u][h];
}

/* Target groups u0..u0+nu-1 of one slice: ZP and ZQ, then
 * Y_{2i,2l} = Re ZP + Re ZQ, Y_{2i,2l+1} = Im ZQ - Im ZP,
 * Y_{2i+1,2l} = -Im ZP - Im ZQ, Y_{2i+1,2l+1} = Re ZQ - Re ZP into
 * tg[u][0..3]. co: [2][k][k][4] coefficients (ZP, then ZQ). */
DEC_INLINE void crme_group(int nu, const double *co, int k, int u0, const double *in, int X,
                           void *const (*tg)[4], int om, size_t off, int cnt) {
    dvec zp[4][2][2], zq[4][2][2];
    mk_half(nu, co + (size_t)u0 * k * 4, k, in, X, zp);
    mk_half(nu, co + ((size_t)k + u0) * k * 4, k, in + 2 * (size_t)X, X, zq);
    for (int u = 0; u < nu; u++) {
        dvec(*p)[2] = zp[u], (*q)[2] = zq[u];
        put(tg[u][0], om, off, cnt, p[0][0] + q[0][0], p[0][1] + q[0][1]);
        put(tg[u][1], om, off, cnt, q[1][0] - p[1][0], q[1][1] - p[1][1]);
        put(tg[u][2], om, off, cnt, -(p[1][0] + q[1][0]), -(p[1][1] + q[1][1]));
        put(tg[u][3], om, off, cnt, q[0][0] - p[0][0], q[0][1] - p[0][1]);
    }
}

static DEC_FMA void crme_chunk(const double *co, int k, const double *in, int X, int nx,
                               void *const (*tg)[4], int om, size_t x0, const void *const *src,
                               size_t len) {
    for (int xb = 0; xb < nx; xb += XB) {
        int cnt = min_int(XB, nx - xb), u = 0;
        const double *s = in + xb;
        prefetch_slice(src, 4 * k, om & OUT_F64, x0 + X + xb, len);
        for (; u + 4 <= k; u += 4)
            crme_group(4, co, k, u, s, X, tg + u, om, x0 + xb, cnt);
        switch (k - u) {
        case 3: crme_group(3, co, k, u, s, X, tg + u, om, x0 + xb, cnt); break;
        case 2: crme_group(2, co, k, u, s, X, tg + u, om, x0 + xb, cnt); break;
        case 1: crme_group(1, co, k, u, s, X, tg + u, om, x0 + xb, cnt); break;
        default: break;
        }
    }
}

/* One responder's rows a-d, b+c, a+d, b-c (the products (a, b, c, d) =
 * (o00, o01, o10, o11) at x0, nx values, in double) into dst, dst + X, ...,
 * zero-padded to a whole slice; one pass over the products. */
static void crme_load(const void *const *o, int f64, size_t x0, int nx, double *dst, int X) {
    double *restrict p1 = dst, *restrict p2 = dst + X, *restrict q1 = dst + 2 * (size_t)X,
                     *restrict q2 = dst + 3 * (size_t)X;
    if (f64) {
        const double *a = (const double *)o[0] + x0, *b = (const double *)o[1] + x0,
                     *c = (const double *)o[2] + x0, *d = (const double *)o[3] + x0;
        for (int x = 0; x < nx; x++)
            p1[x] = a[x] - d[x], p2[x] = b[x] + c[x], q1[x] = a[x] + d[x], q2[x] = b[x] - c[x];
    } else {
        const float *a = (const float *)o[0] + x0, *b = (const float *)o[1] + x0,
                    *c = (const float *)o[2] + x0, *d = (const float *)o[3] + x0;
        for (int x = 0; x < nx; x++) {
            double av = a[x], bv = b[x], cv = c[x], dv = d[x];
            p1[x] = av - dv, p2[x] = bv + cv, q1[x] = av + dv, q2[x] = bv - cv;
        }
    }
    for (int x = nx; x % XB; x++)
        p1[x] = p2[x] = q1[x] = q2[x] = 0;
}

/* CRME option B for k <= 4 in one pass over the products, VW columns at a
 * time: the 4k accumulators (ZP and ZQ, real and imaginary, of every group)
 * fit the register file with one vector per column slice, so the products
 * are read once, converted and combined into (a-d, b+c, a+d, b-c) in
 * registers, with no chunk buffer. The chunked path alternates a load phase
 * and a compute phase, which at k = 2 left memory idle most of the time
 * (10 against 30 GB/s at 1e6 floats; docs/results/codes.md). Beyond k = 4
 * the groups would have to re-read each slice, and measured that way k = 8
 * and 16 were 1.5-2x slower than the chunked path. Returns the columns
 * done. */
#define CRME_DIRECT_K 4

DEC_INLINE void crme_direct_slice(int k, const double *co, const void *const *prod, int f64,
                                  size_t x, void *const (*tg)[4], int om) {
    dvec rp[CRME_DIRECT_K] = {0}, ip[CRME_DIRECT_K] = {0}, rq[CRME_DIRECT_K] = {0},
         iq[CRME_DIRECT_K] = {0};
    const double *cq = co + (size_t)4 * k * k;
    for (int r = 0; r < k; r++) {
        dvec a = ld_prod(prod[4 * r], f64, x), b = ld_prod(prod[4 * r + 1], f64, x),
             c = ld_prod(prod[4 * r + 2], f64, x), d = ld_prod(prod[4 * r + 3], f64, x);
        dvec p1 = a - d, p2 = b + c, q1 = a + d, q2 = b - c;
        for (int u = 0; u < k; u++) {
            const double *wp = co + ((size_t)u * k + r) * 4, *wq = cq + ((size_t)u * k + r) * 4;
            rp[u] += wp[0] * p1;
            rp[u] += wp[1] * p2;
            ip[u] += wp[2] * p1;
            ip[u] += wp[3] * p2;
            rq[u] += wq[0] * q1;
            rq[u] += wq[1] * q2;
            iq[u] += wq[2] * q1;
            iq[u] += wq[3] * q2;
        }
    }
    for (int u = 0; u < k; u++) {
        put1(tg[u][0], om, x, rp[u] + rq[u]);
        put1(tg[u][1], om, x, iq[u] - ip[u]);
        put1(tg[u][2], om, x, -(ip[u] + iq[u]));
        put1(tg[u][3], om, x, rq[u] - rp[u]);
    }
}

static DEC_FMA size_t crme_direct(int k, const double *co, const void *const *prod, int f64,
                                  size_t len, void *const (*tg)[4], int om) {
    size_t x = 0;
    for (; x + VW <= len; x += VW) {
        if (!(x % XB)) prefetch_slice(prod, 4 * k, f64, x + DIRECT_AHEAD, len);
        switch (k) {
        case 4: crme_direct_slice(4, co, prod, f64, x, tg, om); break;
        case 3: crme_direct_slice(3, co, prod, f64, x, tg, om); break;
        case 2: crme_direct_slice(2, co, prod, f64, x, tg, om); break;
        default: crme_direct_slice(1, co, prod, f64, x, tg, om); break;
        }
    }
    return x;
}

/* CRME option B (digest 1.2.8). From worker j's outputs o_cd:
 *   P_j = (o00 - o11 - i(o01 + o10)) / 2,  Q_j = (o00 + o11 + i(o01 - o10)) / 2,
 * ZP = inv(V_P) P, ZQ = inv(V_Q) Q (column (i,l) = i*kB + l), then
 *   Y_{2i,2l} = Re ZP + Re ZQ,    Y_{2i+1,2l+1} = Re ZQ - Re ZP,
 *   Y_{2i,2l+1} = Im ZQ - Im ZP,  Y_{2i+1,2l} = -Im ZP - Im ZQ,
 * computed in real arithmetic (8k MACs for the 4 outputs of each group u,
 * half of the 4k x 4k real system) by crme_group, the halves folded into the
 * coefficients. */
static ts_status apply_crme(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                            int k, size_t len, void *const *targets, int f64, ts_err *err) {
    int kB = c->p.kB, nb = c->nb, om = out_mode(f64, (size_t)4 * k, len);
    double *co, *chunk;
    int X;
    void *(*tg)[4] = malloc((size_t)k * sizeof *tg);
    if (!tg) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding");
    ts_status st = dec_scratch(c, (size_t)8 * k * k, 4 * k, &co, &chunk, &X, err);
    if (st != TS_OK) {
        free(tg);
        return st;
    }
    for (int u = 0; u < k; u++) {
        int i = u / kB, l = u % kB;
        tg[u][0] = targets[(2 * i) * nb + 2 * l];
        tg[u][1] = targets[(2 * i) * nb + 2 * l + 1];
        tg[u][2] = targets[(2 * i + 1) * nb + 2 * l];
        tg[u][3] = targets[(2 * i + 1) * nb + 2 * l + 1];
        for (int r = 0; r < k; r++) { /* the halves of P and Q folded in */
            double complex zp = 0.5 * e->zdec[(size_t)u * k + r];
            double complex zq = 0.5 * e->zdec[(size_t)k * k + (size_t)u * k + r];
            double *wp = co + ((size_t)u * k + r) * 4, *wq = wp + (size_t)4 * k * k;
            wp[0] = creal(zp), wp[1] = cimag(zp), wp[2] = cimag(zp), wp[3] = -creal(zp);
            wq[0] = creal(zq), wq[1] = -cimag(zq), wq[2] = cimag(zq), wq[3] = creal(zq);
        }
    }
    /* Ordinary stores in the one-pass kernel even for targets over
     * DEC_STREAM_BYTES: it writes half a cache line to each of its 4k <= 16
     * targets per slice, more streams than the core has write-combining
     * buffers, so non-temporal stores were flushed half-full (k = 4, 1e6
     * floats: 2.6 GB/s streamed, 12.8 with ordinary stores; k = 2, 1e7:
     * 6.9 against 14.7). The chunked path below writes whole lines. */
    size_t x0 = k <= CRME_DIRECT_K
                    ? crme_direct(k, co, prod, f64, len, (void *const(*)[4])tg, om & ~OUT_STREAM)
                    : 0;
    for (; x0 < len; x0 += (size_t)X) {
        int nx = chunk_len(len, x0, X);
        for (int r = 0; r < k; r++)
            crme_load(prod + 4 * r, f64, x0, nx, chunk + (size_t)4 * r * X, X);
        crme_chunk(co, k, chunk, X, nx, (void *const(*)[4])tg, om, x0, prod, len);
    }
    out_done(om);
    free(tg);
    return TS_OK;
}

/* ---- FFT decoding (fftdec.c) ---------------------------------------------- */

static ts_status apply_fft(ts_code *c, const ts_fftdec *f, const void *const *prod, size_t len,
                           void *const *targets, int f64, ts_err *err) {
    TS_TRY(grow(c, ts_fftdec_scratch(f), err));
    return ts_fftdec_apply(f, prod, len, targets, f64, c->buf);
}

/* Replication: any responder set that holds every task decodes (by copy). */
static ts_status decode_replication(ts_code *c, const int *resp, int n_resp,
                                    const void *const *prod, size_t len, void *const *targets,
                                    int f64, double *cond, ts_err *err) {
    int T = c->nb;
    for (int t = 0; t < T; t++) {
        int r = 0;
        while (r < n_resp && c->task_of[resp[r]] != t)
            r++;
        if (r == n_resp)
            return ts_errorf(err, TS_ERR_INVALID,
                             "too few responders: no responder holds task %d (workers %d, %d, ... "
                             "hold it)",
                             t, t, t + T);
        if (!prod[r] || !targets[t])
            return ts_errorf(err, TS_ERR_INVALID, "decode: a product or target pointer is NULL");
        memcpy(targets[t], prod[r], len * (f64 ? sizeof(double) : sizeof(float)));
    }
    if (cond) *cond = 1.0;
    return TS_OK;
}

static void sort_set(const int *resp, int k, int *ids, int *pos) {
    for (int r = 0; r < k; r++)
        ids[r] = resp[r], pos[r] = r;
    for (int a = 1; a < k; a++)
        for (int b = a; b > 0 && ids[b - 1] > ids[b]; b--) {
            int t = ids[b];
            ids[b] = ids[b - 1], ids[b - 1] = t;
            t = pos[b], pos[b] = pos[b - 1], pos[b - 1] = t;
        }
}

ts_status ts_code_decode_mode(ts_code *c, const int *resp, int n_resp, const void *const *prod,
                              size_t len, void *const *targets, int f64, double *cond, int mode,
                              ts_err *err) {
    if (!c) return ts_errorf(err, TS_ERR_INVALID, "decode needs a code");
    if (!prod || !targets)
        return ts_errorf(err, TS_ERR_INVALID, "decode needs products and targets");
    if (len == 0) return ts_errorf(err, TS_ERR_INVALID, "cannot decode zero-length products");
    int need = c->p.kind == TS_CODE_REPLICATION ? 1 : c->threshold;
    TS_TRY(ts_code_check_responders(c, resp, n_resp, need, err));
    if (c->p.kind == TS_CODE_REPLICATION)
        return decode_replication(c, resp, n_resp, prod, len, targets, f64, cond, err);
    for (int t = 0; t < c->ntargets; t++)
        if (!targets[t]) return ts_errorf(err, TS_ERR_INVALID, "decode: target %d is NULL", t);
    int k = c->threshold, per = c->qa * c->qb;
    for (int r = 0; r < k * per; r++)
        if (!prod[r]) return ts_errorf(err, TS_ERR_INVALID, "decode: product %d is NULL", r);
    int ids[TS_CODE_MAX_WORKERS], pos[TS_CODE_MAX_WORKERS];
    sort_set(resp, k, ids, pos);
    ts_code_cache_entry *e = lookup(c, ids, k, mode, err);
    if (!e) return err ? err->status : TS_ERR_NOMEM;
    if (cond) {
        if (e->cond < 0) e->cond = ts_code_set_cond(c, ids, k, mode);
        *cond = e->cond;
    }
    const void **rows = malloc((size_t)k * per * sizeof *rows);
    if (!rows) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding");
    for (int r = 0; r < k; r++)
        for (int q = 0; q < per; q++)
            rows[r * per + q] = prod[pos[r] * per + q];
    ts_status st;
    if (e->fft)
        st = apply_fft(c, e->fft, rows, len, targets, f64, err);
    else if (c->p.kind == TS_CODE_CIRCULANT)
        st = ts_code_circ_apply(c, e, rows, len, targets, f64, err);
    else if (!uses_complex(c, mode))
        st = apply_real(c, e, rows, k * per, len, targets, f64, err);
    else if (c->p.kind == TS_CODE_CRME && c->p.matvec)
        st = apply_crme_mv(c, e, rows, k, len, targets, f64, err);
    else if (c->p.kind == TS_CODE_CRME)
        st = apply_crme(c, e, rows, k, len, targets, f64, err);
    else
        st = apply_complex(c, e, rows, k, len, targets, f64, err);
    free(rows);
    return st;
}

ts_status ts_code_decode(ts_code *c, const int *responders, int n_resp,
                         const float *const *products, size_t len, float *const *targets,
                         double *cond, ts_err *err) {
    return ts_code_decode_mode(c, responders, n_resp, (const void *const *)products, len,
                               (void *const *)targets, 0, cond, TS_CODE_MODE_FAST, err);
}

ts_status ts_code_decode_dense(ts_code *c, const int *responders, int n_resp,
                               const float *const *products, size_t len, float *const *targets,
                               double *cond, ts_err *err) {
    return ts_code_decode_mode(c, responders, n_resp, (const void *const *)products, len,
                               (void *const *)targets, 0, cond, TS_CODE_MODE_DENSE, err);
}

ts_status ts_code_decode_f64(ts_code *c, const int *responders, int n_resp,
                             const double *const *products, size_t len, double *const *targets,
                             double *cond, ts_err *err) {
    return ts_code_decode_mode(c, responders, n_resp, (const void *const *)products, len,
                               (void *const *)targets, 1, cond, TS_CODE_MODE_FAST, err);
}
