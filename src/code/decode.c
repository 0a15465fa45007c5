/* decode.c: decoding from any threshold-sized responder set, in double, with
 * the decoding matrix of each set cached (LRU, TS_CODE_CACHE sets).
 *
 * Real path (every code whose product map is square): an LU of M_S with
 * row pivoting, applied to column chunks of the products with two BLAS-3
 * triangular solves (for the ill-conditioned real Vandermonde family this
 * is far more accurate than multiplying by an explicit inverse). Complex Vandermonde: one k x k
 * complex solve on the combined products y_j = sum_{c,d} i^(c+d) P[j][c][d]. CRME (digest 1.2.8,
 * "option B"): two k x k complex Vandermonde solves, half the flops of the
 * 4k x 4k real solve and the same condition number. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

/* Columns per decoding step: the chunk of all rows should stay within L2
 * (about 0.5 MB of doubles), but BLAS calls need enough columns to amortize
 * their overhead. */
static int dec_chunk(int rows) {
    int ch = (1 << 16) / (rows > 0 ? rows : 1);
    ch = ch < 256 ? 256 : ch > 4096 ? 4096 : ch;
    return ch & ~63;
}

void ts_code_cache_clear(ts_code *c) {
    for (int s = 0; s < TS_CODE_CACHE; s++) {
        free(c->cache[s].ids);
        free(c->cache[s].dec);
        free(c->cache[s].zdec);
        free(c->cache[s].piv);
        free(c->cache[s].inv);
        memset(&c->cache[s], 0, sizeof c->cache[s]);
    }
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
    free(victim->ids);
    free(victim->dec);
    free(victim->zdec);
    free(victim->piv);
    free(victim->inv);
    memset(victim, 0, sizeof *victim);
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
        free(victim->ids);
        free(victim->dec);
        free(victim->zdec);
        free(victim->piv);
        free(victim->inv);
        memset(victim, 0, sizeof *victim);
        return NULL;
    }
    return victim;
}

/* ---- applying the decoding matrices ------------------------------------ */

/* Products and targets are float32 (the workers' arithmetic) or float64
 * (ts_code_decode_f64); the decoding itself is always in double. */
static void load(const void *src, int f64, size_t x0, int nx, double *dst) {
    if (f64) {
        memcpy(dst, (const double *)src + x0, (size_t)nx * sizeof *dst);
    } else {
        const float *f = (const float *)src + x0;
        for (int x = 0; x < nx; x++)
            dst[x] = f[x];
    }
}

static void store(void *dst, int f64, size_t x0, int nx, const double *src) {
    if (f64) {
        memcpy((double *)dst + x0, src, (size_t)nx * sizeof *src);
    } else {
        float *f = (float *)dst + x0;
        for (int x = 0; x < nx; x++)
            f[x] = (float)src[x];
    }
}

static ts_status grow(ts_code *c, size_t doubles, ts_err *err) {
    if (c->buf_len >= doubles) return TS_OK;
    double *b = realloc(c->buf, doubles * sizeof *b);
    if (!b) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding scratch");
    c->buf = b, c->buf_len = doubles;
    return TS_OK;
}

/* Solves M X = P for a chunk of columns with the cached LU (row swaps, then
 * two triangular solves as BLAS-3), and keeps the target rows. */
static ts_status apply_real(ts_code *c, const ts_code_cache_entry *e, const void *const *rows,
                            int N, size_t len, void *const *targets, int f64, ts_err *err) {
    const int CH = dec_chunk(N);
    int T = c->ntargets;
    TS_TRY(grow(c, (size_t)(N + T) * CH + CH, err));
    double *in = c->buf, *tmp = c->buf + (size_t)N * CH, *out = tmp + CH;
    if (!f64 && e->inv) {
        for (size_t x0 = 0; x0 < len; x0 += CH) {
            int nx = (int)(len - x0 < (size_t)CH ? len - x0 : (size_t)CH);
            for (int r = 0; r < N; r++)
                load(rows[r], f64, x0, nx, in + (size_t)r * CH);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, nx, N, 1.0, e->inv, N, in, CH,
                        0.0, out, CH);
            for (int t = 0; t < T; t++)
                store(targets[t], f64, x0, nx, out + (size_t)t * CH);
        }
        return TS_OK;
    }
    for (size_t x0 = 0; x0 < len; x0 += CH) {
        int nx = (int)(len - x0 < (size_t)CH ? len - x0 : (size_t)CH);
        for (int r = 0; r < N; r++)
            load(rows[r], f64, x0, nx, in + (size_t)r * CH);
        for (int k = 0; k < N; k++)
            if (e->piv[k] != k) {
                double *a = in + (size_t)k * CH, *b = in + (size_t)e->piv[k] * CH;
                memcpy(tmp, a, (size_t)nx * sizeof *tmp);
                memcpy(a, b, (size_t)nx * sizeof *tmp);
                memcpy(b, tmp, (size_t)nx * sizeof *tmp);
            }
        cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, N, nx, 1.0,
                    e->dec, N, in, CH);
        cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, N, nx, 1.0,
                    e->dec, N, in, CH);
        for (int t = 0; t < c->ntargets; t++)
            store(targets[t], f64, x0, nx, in + (size_t)c->tsel[t] * CH);
    }
    return TS_OK;
}

/* Complex Vandermonde: y_r = sum_{c,d} i^(c+d) P[r][c][d]; T = Re(inv(V) y). */
static ts_status apply_complex(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                               int k, size_t len, void *const *targets, int f64, ts_err *err) {
    const int CH = dec_chunk(2 * k);
    int per = c->qa * c->qb;
    TS_TRY(grow(c, (size_t)5 * k * CH, err));
    double complex *y = (double complex *)c->buf, *z = y + (size_t)k * CH;
    double *tmp = (double *)(z + (size_t)k * CH);
    static const double complex IPOW[3] = {1, I, -1};
    const double complex one = 1, zero = 0;
    for (size_t x0 = 0; x0 < len; x0 += CH) {
        int nx = (int)(len - x0 < (size_t)CH ? len - x0 : (size_t)CH);
        for (int r = 0; r < k; r++) {
            double complex *yr = y + (size_t)r * CH;
            for (int x = 0; x < nx; x++)
                yr[x] = 0;
            for (int a = 0; a < c->qa; a++)
                for (int b = 0; b < c->qb; b++) {
                    load(prod[r * per + a * c->qb + b], f64, x0, nx, tmp);
                    double complex f = IPOW[a + b];
                    for (int x = 0; x < nx; x++)
                        yr[x] += f * tmp[x];
                }
        }
        cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, nx, k, &one, e->zdec, k, y, CH,
                    &zero, z, CH);
        for (int t = 0; t < k; t++) {
            for (int x = 0; x < nx; x++)
                tmp[x] = creal(z[(size_t)t * CH + x]);
            store(targets[t], f64, x0, nx, tmp);
        }
    }
    return TS_OK;
}

/* CRME option B (digest 1.2.8). From worker j's outputs o_cd:
 *   P_j = (o00 - o11 - i(o01 + o10)) / 2,  Q_j = (o00 + o11 + i(o01 - o10)) / 2,
 * ZP = inv(V_P) P, ZQ = inv(V_Q) Q (column (i,l) = i*kB + l), then
 *   Y_{2i,2l} = Re ZP + Re ZQ,    Y_{2i+1,2l+1} = Re ZQ - Re ZP,
 *   Y_{2i,2l+1} = Im ZQ - Im ZP,  Y_{2i+1,2l} = -Im ZP - Im ZQ. */
static ts_status apply_crme(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                            int k, size_t len, void *const *targets, int f64, ts_err *err) {
    const int CH = dec_chunk(8 * k);
    int kB = c->p.kB, nb = c->nb;
    TS_TRY(grow(c, (size_t)8 * k * CH + 4 * CH, err));
    double *o = c->buf + (size_t)8 * k * CH; /* 4 rows of one worker, then 4 targets */
    double complex *p = (double complex *)c->buf, *q = p + (size_t)k * CH;
    double complex *zp = q + (size_t)k * CH, *zq = zp + (size_t)k * CH;
    const double complex one = 1, zero = 0;
    for (size_t x0 = 0; x0 < len; x0 += CH) {
        int nx = (int)(len - x0 < (size_t)CH ? len - x0 : (size_t)CH);
        for (int r = 0; r < k; r++) {
            for (int q = 0; q < 4; q++)
                load(prod[4 * r + q], f64, x0, nx, o + q * CH);
            const double *o00 = o, *o01 = o + CH, *o10 = o + 2 * CH, *o11 = o + 3 * CH;
            double complex *pr = p + (size_t)r * CH, *qr = q + (size_t)r * CH;
            for (int x = 0; x < nx; x++) {
                double a = o00[x], b = o01[x], cc = o10[x], d = o11[x];
                pr[x] = CMPLX(0.5 * (a - d), -0.5 * (b + cc));
                qr[x] = CMPLX(0.5 * (a + d), 0.5 * (b - cc));
            }
        }
        cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, nx, k, &one, e->zdec, k, p, CH,
                    &zero, zp, CH);
        cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, nx, k, &one,
                    e->zdec + (size_t)k * k, k, q, CH, &zero, zq, CH);
        for (int u = 0; u < k; u++) {
            int i = u / kB, l = u % kB;
            const double complex *a = zp + (size_t)u * CH, *b = zq + (size_t)u * CH;
            double *y00 = o, *y01 = o + CH, *y10 = o + 2 * CH, *y11 = o + 3 * CH;
            for (int x = 0; x < nx; x++) {
                double rp = creal(a[x]), ip = cimag(a[x]), rq = creal(b[x]), iq = cimag(b[x]);
                y00[x] = rp + rq;
                y11[x] = rq - rp;
                y01[x] = iq - ip;
                y10[x] = -ip - iq;
            }
            store(targets[(2 * i) * nb + 2 * l], f64, x0, nx, y00);
            store(targets[(2 * i) * nb + 2 * l + 1], f64, x0, nx, y01);
            store(targets[(2 * i + 1) * nb + 2 * l], f64, x0, nx, y10);
            store(targets[(2 * i + 1) * nb + 2 * l + 1], f64, x0, nx, y11);
        }
    }
    return TS_OK;
}

/* Matrix-vector CRME: p_j = o_0 - i o_1 = sum_l w^(l j) (Y_{2l} - i Y_{2l+1}),
 * so one k x k complex solve gives Y_{2l} = Re z_l, Y_{2l+1} = -Im z_l. */
static ts_status apply_crme_mv(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                               int k, size_t len, void *const *targets, int f64, ts_err *err) {
    const int CH = dec_chunk(4 * k);
    TS_TRY(grow(c, (size_t)4 * k * CH + 2 * CH, err));
    double complex *p = (double complex *)c->buf, *z = p + (size_t)k * CH;
    double *o = c->buf + (size_t)4 * k * CH;
    const double complex one = 1, zero = 0;
    for (size_t x0 = 0; x0 < len; x0 += CH) {
        int nx = (int)(len - x0 < (size_t)CH ? len - x0 : (size_t)CH);
        for (int r = 0; r < k; r++) {
            load(prod[2 * r], f64, x0, nx, o);
            load(prod[2 * r + 1], f64, x0, nx, o + CH);
            double complex *pr = p + (size_t)r * CH;
            for (int x = 0; x < nx; x++)
                pr[x] = CMPLX(o[x], -o[CH + x]);
        }
        cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, nx, k, &one, e->zdec, k, p, CH,
                    &zero, z, CH);
        for (int l = 0; l < k; l++) {
            const double complex *zl = z + (size_t)l * CH;
            for (int x = 0; x < nx; x++)
                o[x] = creal(zl[x]), o[CH + x] = -cimag(zl[x]);
            store(targets[2 * l], f64, x0, nx, o);
            store(targets[2 * l + 1], f64, x0, nx, o + CH);
        }
    }
    return TS_OK;
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
    if (c->p.kind == TS_CODE_CIRCULANT)
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
