/* circulant.c: the circulant-permutation embedding of CRME (digest 3.3c),
 * matrix-vector form: A is sent whole, B carries the code.
 *
 * q is a prime >= n. B is cut into k groups of q-1 blocks B_{i,c}; a q-th
 * block B_{i,q-1} = -(B_{i,0} + ... + B_{i,q-2}) removes each group's
 * all-ones (eigenvalue 1) component, which is singular. Worker j's share c
 * (c < q) is sum_i B_{i,(c + i j) mod q}: no multiplications. With
 * T_{i,c} = A (*) B_{i,c}, worker j returns y_{j,c} = sum_i T_{i,(c+ij) mod q};
 * after a length-q DFT over c (Y^(f) = sum_c y_c w^(-f c), w = e^(2 pi i/q)),
 *     Y_j^(f) = sum_i (w^(f j))^i T^_i(f),
 * one k x k complex Vandermonde system per frequency f = 1..q-1 (f = 0 is
 * zero by construction); because q is prime the nodes w^(f j) are distinct
 * for every f != 0. An inverse DFT then returns the T_{i,c}. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

#define CIRC_CHUNK 64

static int is_prime(int q) {
    if (q < 2) return 0;
    for (int d = 2; d * d <= q; d++)
        if (q % d == 0) return 0;
    return 1;
}

int ts_code_circ_default_q(int n) {
    int q = n < 2 ? 2 : n;
    while (!is_prime(q))
        q++;
    return q;
}

ts_status ts_code_circ_check(ts_code_params *p, ts_err *err) {
    if (p->kA > 1)
        return ts_errorf(
            err, TS_ERR_INVALID,
            "the circulant code is matrix-vector: set kA = 1 and k in kB (not kA = %d)", p->kA);
    if (p->kB < 1 || p->kB > p->n)
        return ts_errorf(err, TS_ERR_INVALID, "the circulant code needs 1 <= k <= n = %d, not %d",
                         p->n, p->kB);
    if (!p->q) p->q = ts_code_circ_default_q(p->n);
    if (p->q < p->n || !is_prime(p->q) || p->q > 4 * TS_CODE_MAX_WORKERS)
        return ts_errorf(err, TS_ERR_INVALID,
                         "the circulant code needs a prime q >= n = %d (q = %d given; %d would do)",
                         p->n, p->q, ts_code_circ_default_q(p->n));
    if ((long)p->kB * (p->q - 1) > 65536)
        return ts_errorf(err, TS_ERR_INVALID,
                         "the circulant code with k = %d, q = %d has too many blocks (%ld)", p->kB,
                         p->q, (long)p->kB * (p->q - 1));
    p->kA = 1;
    return TS_OK;
}

ts_status ts_code_circ_build(ts_code *c, ts_err *err) {
    int k = c->p.kB, q = c->p.q, n = c->n;
    c->na = 1, c->qa = 1, c->nb = k * (q - 1), c->qb = q, c->threshold = k;
    c->ntargets = k * (q - 1), c->nunk = k * (q - 1);
    c->ga = calloc((size_t)n, sizeof *c->ga);
    c->gb = calloc((size_t)n * q * c->nb, sizeof *c->gb);
    c->tsel = calloc((size_t)c->ntargets, sizeof *c->tsel);
    /* The real product map (for the syndrome checks): q rows per worker. */
    c->w = calloc((size_t)n * q * c->nunk, sizeof *c->w);
    if (!c->ga || !c->gb || !c->tsel || !c->w)
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for a circulant code");
    for (int j = 0; j < n; j++) {
        c->ga[j] = 1.0;
        for (int s = 0; s < q; s++) {
            double *g = c->gb + ((size_t)j * q + s) * c->nb;
            for (int i = 0; i < k; i++) {
                int cc = (int)((s + (long)i * j) % q);
                if (cc < q - 1)
                    g[i * (q - 1) + cc] = 1.0;
                else
                    for (int t = 0; t < q - 1; t++)
                        g[i * (q - 1) + t] = -1.0;
            }
            memcpy(c->w + ((size_t)j * q + s) * c->nunk, g, (size_t)c->nb * sizeof *g);
        }
    }
    for (int t = 0; t < c->ntargets; t++)
        c->tsel[t] = t;
    return TS_OK;
}

static double complex root(long long m, int q) {
    long long r = m % q;
    if (r < 0) r += q;
    return cexp(I * 6.283185307179586476925 * (double)r / q);
}

static double complex *freq_vandermonde(const ts_code *c, const int *ids, int f) {
    int k = c->threshold, q = c->p.q;
    double complex *v = malloc((size_t)k * k * sizeof *v);
    if (!v) return NULL;
    for (int r = 0; r < k; r++)
        for (int i = 0; i < k; i++)
            v[(size_t)r * k + i] = root((long long)f * ids[r] * i, q);
    return v;
}

/* The decoding system is block diagonal over the frequencies, so its
 * 2-norm condition number is max_f sigma_max(V_f) / min_f sigma_min(V_f). */
double ts_code_circ_cond(const ts_code *c, const int *ids) {
    int k = c->threshold, q = c->p.q;
    double hi = 0, lo = INFINITY;
    for (int f = 1; f < q; f++) {
        double complex *v = freq_vandermonde(c, ids, f);
        if (!v) return NAN;
        double s_hi, s_lo;
        int ok = ts_la_zsv_range(v, k, k, &s_hi, &s_lo);
        free(v);
        if (!ok) return NAN;
        hi = fmax(hi, s_hi), lo = fmin(lo, s_lo);
    }
    return lo > 0 ? hi / lo : INFINITY;
}

ts_status ts_code_circ_entry(const ts_code *c, ts_code_cache_entry *e, ts_err *err) {
    int k = c->threshold, q = c->p.q;
    e->zdec = malloc((size_t)(q - 1) * k * k * sizeof *e->zdec);
    if (!e->zdec) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for circulant decoding");
    for (int f = 1; f < q; f++) {
        double complex *v = freq_vandermonde(c, e->ids, f);
        if (!v) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for circulant decoding");
        memcpy(e->zdec + (size_t)(f - 1) * k * k, v, (size_t)k * k * sizeof *v);
        free(v);
        TS_TRY(ts_la_zinverse(e->zdec + (size_t)(f - 1) * k * k, k, err));
    }
    return TS_OK;
}

/* Per column chunk: DFT of each responder's q outputs (a q x q complex
 * matrix product: q is small and prime, where BLAS beats a hand FFT), one
 * k x k solve per frequency, inverse DFT per group, real part. */
ts_status ts_code_circ_apply(ts_code *c, const ts_code_cache_entry *e, const void *const *prod,
                             size_t len, void *const *targets, int f64, ts_err *err) {
    int k = c->threshold, q = c->p.q;
    size_t CH = CIRC_CHUNK;
    size_t need = 2 * ((size_t)q * q * 2 + (size_t)k * q * CH * 3) + CH;
    if (c->buf_len < need) {
        double *b = realloc(c->buf, need * sizeof *b);
        if (!b) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding scratch");
        c->buf = b, c->buf_len = need;
    }
    double complex *F = (double complex *)c->buf; /* q x q forward DFT */
    double complex *Fi = F + (size_t)q * q;       /* q x q inverse DFT / q */
    double complex *Y = Fi + (size_t)q * q;       /* responder r, freq f, column: [r][f][x] */
    double complex *Yf = Y + (size_t)k * q * CH;  /* per frequency: [f][r][x] */
    double complex *Z = Yf + (size_t)k * q * CH;  /* [f][i][x], then reused */
    double *tmp = (double *)(Z + (size_t)k * q * CH);
    for (int f = 0; f < q; f++)
        for (int s = 0; s < q; s++) {
            F[(size_t)f * q + s] = root(-(long long)f * s, q);
            Fi[(size_t)s * q + f] = root((long long)f * s, q) / q;
        }
    const double complex one = 1, zero = 0;
    for (size_t x0 = 0; x0 < len; x0 += CH) {
        int nx = (int)(len - x0 < CH ? len - x0 : CH);
        for (int r = 0; r < k; r++) {
            double complex *yr = Z; /* q x CH real outputs as complex */
            for (int s = 0; s < q; s++) {
                const void *src = prod[(size_t)r * q + s];
                if (f64)
                    for (int x = 0; x < nx; x++)
                        tmp[x] = ((const double *)src)[x0 + x];
                else
                    for (int x = 0; x < nx; x++)
                        tmp[x] = ((const float *)src)[x0 + x];
                for (int x = 0; x < nx; x++)
                    yr[(size_t)s * CH + x] = tmp[x];
            }
            cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q, nx, q, &one, F, q, yr,
                        (int)CH, &zero, Y + (size_t)r * q * CH, (int)CH);
        }
        for (int f = 1; f < q; f++)
            for (int r = 0; r < k; r++)
                memcpy(Yf + ((size_t)f * k + r) * CH, Y + ((size_t)r * q + f) * CH,
                       (size_t)nx * sizeof *Y);
        for (int f = 1; f < q; f++)
            cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k, nx, k, &one,
                        e->zdec + (size_t)(f - 1) * k * k, k, Yf + (size_t)f * k * CH, (int)CH,
                        &zero, Z + (size_t)f * k * CH, (int)CH);
        for (int i = 0; i < k; i++) {
            /* gather T^_i(f) for f = 0..q-1 (f = 0 is zero), inverse DFT */
            double complex *ti = Yf; /* reuse: q x CH */
            memset(ti, 0, (size_t)CH * sizeof *ti);
            for (int f = 1; f < q; f++)
                memcpy(ti + (size_t)f * CH, Z + ((size_t)f * k + i) * CH, (size_t)nx * sizeof *ti);
            double complex *out = Y; /* q x CH */
            cblas_zgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q - 1, nx, q, &one, Fi, q, ti,
                        (int)CH, &zero, out, (int)CH);
            for (int s = 0; s < q - 1; s++) {
                void *dst = targets[(size_t)i * (q - 1) + s];
                const double complex *o = out + (size_t)s * CH;
                if (f64)
                    for (int x = 0; x < nx; x++)
                        ((double *)dst)[x0 + x] = creal(o[x]);
                else
                    for (int x = 0; x < nx; x++)
                        ((float *)dst)[x0 + x] = (float)creal(o[x]);
            }
        }
    }
    return TS_OK;
}
