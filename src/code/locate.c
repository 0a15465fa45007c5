/* locate.c: finding wrong results (soft errors) among more than threshold
 * responses, and checking / rebuilding stored shares (digest
 * coded-matmul-polydot.md 4.2-4.3).
 *
 * The model is generic: P units (workers), each with `per` rows of a real
 * map M (P*per x U) and the matching data rows Y (len values each), healthy
 * data satisfying Y = M X up to round-off. A unit is wrong when its rows
 * are not.
 *
 * Round-off bound. A healthy row deviates from M X by at most eps times its
 * size, eps = u (inner + nA + nB + 1) with u = 2^-24 (float32): the
 * standard gamma_n bound for the inner sums of the worker's product and for
 * the sums of the encoding, unless the caller gives its own.
 *
 * 1. Syndrome (algorithm B). H spans the left null space of M (orthonormal
 *    rows, d = P*per - rank M of them), so S = H Y = H E sees only the
 *    errors; ||H N||_F <= ||N||_F <= eps ||Y||_F bounds what noise can put
 *    there, so eigenvalues of S S^T above eps^2 ||Y||_F^2 are errors. For
 *    generic errors on t units with per (t + 1) <= d (t <= P - Q - 1 for
 *    MDS-like codes), a row is wrong iff its column h of H lies in
 *    colspace(S). The residual of h after projection onto that space is
 *    O(eta), eta = sqrt(noise bound / smallest error eigenvalue), for wrong
 *    rows and O(1) for healthy ones; rows under sqrt(eta), the geometric
 *    middle, are flagged.
 * 2. Verification. The unflagged units are fitted by least squares and
 *    every unit is tested against the fit: its residual must stay under
 *    eps (||Y_p|| + ||M_p|| ||Y_T|| / sigma_min(M_T)) -- noise on the unit
 *    itself plus the noise of the fit amplified by the conditioning of the
 *    fitted units (the condition number enters here).
 * 3. Consistency search (algorithm A), when the syndrome's answer does not
 *    verify (too many errors for it, non-generic errors): seeds of Q+1 units
 *    (exhaustive when few, else random) are fitted and extended by every
 *    unit that agrees; the largest agreeing set wins. Two distinct codewords
 *    agree on at most Q-1 units, so a set larger than (P+Q-1)/2 is the true
 *    one even against adversarial errors (t <= floor((P-Q)/2)); smaller
 *    sets (up to P-Q-1 random errors) are right with probability 1. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "code_internal.h"

#define LOC_CHUNK 256

typedef struct {
    const double *map; /* R x U */
    int P, per, U, Q;  /* units, rows per unit, unknowns, units that determine X */
    int R;
    const void *const *rows; /* R data rows */
    int f64;
    size_t len;
    double eps;
    double *rown2; /* R: squared norms of the data rows */
    double *mnorm; /* P: spectral norm of each unit's map rows */
} loc_problem;

static void load_rows(const loc_problem *lp, const int *rowidx, int nr, size_t x0, int nx,
                      double *dst) {
    for (int r = 0; r < nr; r++) {
        const void *src = lp->rows[rowidx[r]];
        double *d = dst + (size_t)r * LOC_CHUNK;
        if (lp->f64)
            memcpy(d, (const double *)src + x0, (size_t)nx * sizeof *d);
        else
            for (int x = 0; x < nx; x++)
                d[x] = ((const float *)src + x0)[x];
    }
}

static int unit_rows(const loc_problem *lp, const int *units, int nu, int *rowidx) {
    int nr = 0;
    for (int i = 0; i < nu; i++)
        for (int q = 0; q < lp->per; q++)
            rowidx[nr++] = units[i] * lp->per + q;
    return nr;
}

static ts_status prepare(loc_problem *lp, ts_err *err) {
    lp->R = lp->P * lp->per;
    lp->rown2 = calloc((size_t)lp->R, sizeof *lp->rown2);
    lp->mnorm = calloc((size_t)lp->P, sizeof *lp->mnorm);
    double *buf = malloc((size_t)LOC_CHUNK * sizeof *buf);
    double *s = malloc((size_t)(lp->per < lp->U ? lp->per : lp->U) * sizeof *s + 8);
    if (!lp->rown2 || !lp->mnorm || !buf || !s) {
        free(buf);
        free(s);
        return ts_errorf(err, TS_ERR_NOMEM, "out of memory for error location");
    }
    for (int r = 0; r < lp->R; r++)
        for (size_t x0 = 0; x0 < lp->len; x0 += LOC_CHUNK) {
            int nx = (int)(lp->len - x0 < LOC_CHUNK ? lp->len - x0 : LOC_CHUNK);
            load_rows(lp, &r, 1, x0, nx, buf);
            for (int x = 0; x < nx; x++)
                lp->rown2[r] += buf[x] * buf[x];
        }
    for (int p = 0; p < lp->P; p++)
        if (ts_la_svd(lp->map + (size_t)p * lp->per * lp->U, lp->per, lp->U, NULL, s, NULL))
            lp->mnorm[p] = s[0];
    free(buf);
    free(s);
    return TS_OK;
}

static double units_norm2(const loc_problem *lp, const int *units, int nu) {
    double s = 0;
    for (int i = 0; i < nu; i++)
        for (int q = 0; q < lp->per; q++)
            s += lp->rown2[units[i] * lp->per + q];
    return s;
}

/* pinv = V diag(1/s) U[:, :cols]^T from a full SVD (u rows x rows, vt
 * cols x cols, rows >= cols, all s > 0), as one DGEMM. 0 on allocation
 * failure. */
static int pinv_from_svd(const double *u, const double *s, const double *vt, int rows, int cols,
                         double *pinv) {
    double *t = malloc((size_t)cols * cols * sizeof *t);
    if (!t) return 0;
    for (int i = 0; i < cols; i++)
        for (int k = 0; k < cols; k++)
            t[(size_t)i * cols + k] = vt[(size_t)k * cols + i] / s[k];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, cols, rows, cols, 1.0, t, cols, u, rows,
                0.0, pinv, rows);
    free(t);
    return 1;
}

/* Fits X to the units `seed` (least squares) and measures every unit's
 * residual against its bound. Returns 0 when the seed does not determine X
 * (rank < U), -1 on allocation failure, 1 otherwise; agree[p], ratio[p]. */
static int fit_and_test(const loc_problem *lp, const int *seed, int ns, int *agree, double *ratio) {
    int U = lp->U, R = lp->R;
    int *ridx = malloc((size_t)ns * lp->per * sizeof *ridx);
    if (!ridx) return -1;
    int RT = unit_rows(lp, seed, ns, ridx);
    double *mt = malloc((size_t)RT * U * sizeof *mt), *u = malloc((size_t)RT * RT * sizeof *u);
    double *s = malloc((size_t)(RT < U ? RT : U) * sizeof *s + 8);
    double *vt = malloc((size_t)U * U * sizeof *vt), *pinv = calloc((size_t)U * RT, sizeof *pinv);
    double *L = malloc((size_t)R * RT * sizeof *L),
           *yt = malloc((size_t)RT * LOC_CHUNK * sizeof *yt);
    double *res = malloc((size_t)R * LOC_CHUNK * sizeof *res),
           *e2 = calloc((size_t)lp->P, sizeof *e2);
    int *all = malloc((size_t)R * sizeof *all);
    int rc = -1;
    if (!mt || !u || !s || !vt || !pinv || !L || !yt || !res || !e2 || !all) goto done;
    for (int r = 0; r < RT; r++)
        memcpy(mt + (size_t)r * U, lp->map + (size_t)ridx[r] * U, (size_t)U * sizeof *mt);
    if (!ts_la_svd(mt, RT, U, u, s, vt)) goto done;
    rc = 0;
    if (RT < U) goto done;
    double cut = s[0] * (RT > U ? RT : U) * DBL_EPSILON;
    if (!(s[U - 1] > cut)) goto done; /* the seed does not determine X */
    if (!pinv_from_svd(u, s, vt, RT, U, pinv)) {
        rc = -1;
        goto done;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, RT, U, 1.0, lp->map, U, pinv, RT, 0.0,
                L, RT);
    for (int r = 0; r < R; r++)
        all[r] = r;
    for (size_t x0 = 0; x0 < lp->len; x0 += LOC_CHUNK) {
        int nx = (int)(lp->len - x0 < LOC_CHUNK ? lp->len - x0 : LOC_CHUNK);
        load_rows(lp, ridx, RT, x0, nx, yt);
        load_rows(lp, all, R, x0, nx, res);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, nx, RT, -1.0, L, RT, yt,
                    LOC_CHUNK, 1.0, res, LOC_CHUNK);
        for (int r = 0; r < R; r++)
            for (int x = 0; x < nx; x++)
                e2[r / lp->per] += res[(size_t)r * LOC_CHUNK + x] * res[(size_t)r * LOC_CHUNK + x];
    }
    double yT = sqrt(units_norm2(lp, seed, ns)), smin = s[U - 1];
    for (int p = 0; p < lp->P; p++) {
        double yp = sqrt(units_norm2(lp, &p, 1));
        double bound = lp->eps * (yp + lp->mnorm[p] * yT / smin);
        double r = sqrt(e2[p]);
        ratio[p] = bound > 0 ? r / bound : (r > 0 ? INFINITY : 0);
        agree[p] = r <= bound;
    }
    rc = 1;
done:
    free(ridx), free(mt), free(u), free(s), free(vt), free(pinv), free(L), free(yt), free(res);
    free(e2), free(all);
    return rc;
}

/* Algorithm B: candidate wrong units from the syndrome subspace. Returns
 * the syndrome rank (errors seen), or -1 when it cannot decide. */
static int syndrome_candidates(const loc_problem *lp, int *flag) {
    int R = lp->R, U = lp->U, rank = 0;
    double *u = malloc((size_t)R * R * sizeof *u),
           *s = malloc((size_t)(R < U ? R : U) * sizeof *s + 8);
    double *H = NULL, *G = NULL, *S = NULL, *y = NULL, *w = NULL, *z = NULL;
    int *all = malloc((size_t)R * sizeof *all), t = -1;
    if (!u || !s || !all || !ts_la_svd(lp->map, R, U, u, s, NULL)) goto done;
    int k = R < U ? R : U;
    double cut = s[0] * (R > U ? R : U) * DBL_EPSILON;
    while (rank < k && s[rank] > cut)
        rank++;
    int d = R - rank;
    if (d < 1) goto done;
    H = malloc((size_t)d * R * sizeof *H); /* rows: the left singular vectors past the rank */
    G = calloc((size_t)d * d, sizeof *G);
    S = malloc((size_t)d * LOC_CHUNK * sizeof *S);
    y = malloc((size_t)R * LOC_CHUNK * sizeof *y);
    w = malloc((size_t)d * sizeof *w), z = malloc((size_t)d * d * sizeof *z);
    if (!H || !G || !S || !y || !w || !z) goto done;
    for (int i = 0; i < d; i++)
        for (int r = 0; r < R; r++)
            H[(size_t)i * R + r] = u[(size_t)r * R + rank + i];
    for (int r = 0; r < R; r++)
        all[r] = r;
    for (size_t x0 = 0; x0 < lp->len; x0 += LOC_CHUNK) {
        int nx = (int)(lp->len - x0 < LOC_CHUNK ? lp->len - x0 : LOC_CHUNK);
        load_rows(lp, all, R, x0, nx, y);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, nx, R, 1.0, H, R, y, LOC_CHUNK,
                    0.0, S, LOC_CHUNK);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, nx, 1.0, S, LOC_CHUNK, S,
                    LOC_CHUNK, 1.0, G, d);
    }
    if (!ts_la_syev(G, d, w, z)) goto done;
    double noise = 0;
    for (int r = 0; r < R; r++)
        noise += lp->rown2[r];
    noise *= lp->eps * lp->eps;
    t = 0;
    while (t < d && w[d - 1 - t] > noise)
        t++;
    memset(flag, 0, (size_t)lp->P * sizeof *flag);
    if (t == 0 || t >= d) goto done; /* clean, or more errors than B can separate */
    double eta = sqrt(noise / w[d - t]), tau = sqrt(eta);
    for (int r = 0; r < R; r++) {
        double hn = 0, proj = 0;
        for (int i = 0; i < d; i++)
            hn += H[(size_t)i * R + r] * H[(size_t)i * R + r];
        for (int e = 0; e < t; e++) {
            const double *v = z + (size_t)(d - 1 - e) * d;
            double dot = 0;
            for (int i = 0; i < d; i++)
                dot += v[i] * H[(size_t)i * R + r];
            proj += dot * dot;
        }
        double rho = hn > 0 ? sqrt(fmax(hn - proj, 0) / hn) : 1;
        if (rho <= tau) flag[r / lp->per] = 1;
    }
done:
    free(u), free(s), free(H), free(G), free(S), free(y), free(w), free(z), free(all);
    return t;
}

static int next_subset(int *set, int k, int n) {
    int i = k - 1;
    while (i >= 0 && set[i] == n - k + i)
        i--;
    if (i < 0) return 0;
    set[i]++;
    for (int j = i + 1; j < k; j++)
        set[j] = set[j - 1] + 1;
    return 1;
}

static int count(const int *v, int n) {
    int c = 0;
    for (int i = 0; i < n; i++)
        c += v[i] != 0;
    return c;
}

static ts_status locate(loc_problem *lp, const ts_code_locate_opts *o, ts_code_locate_report *rep,
                        int *healthy, ts_err *err) {
    int P = lp->P, Q = lp->Q;
    int flag[TS_CODE_MAX_WORKERS], agree[TS_CODE_MAX_WORKERS], units[TS_CODE_MAX_WORKERS];
    double ratio[TS_CODE_MAX_WORKERS];
    TS_TRY(prepare(lp, err));
    rep->eps = lp->eps;
    int t = syndrome_candidates(lp, flag);
    rep->syndrome_rank = t;
    int majority = (P + Q - 1) / 2 + 1; /* more than (P+Q-1)/2 agreeing units */
    if (t >= 0) {
        int nu = 0;
        for (int p = 0; p < P; p++)
            if (t == 0 || !flag[p]) units[nu++] = p;
        if (nu >= Q) {
            int rc = fit_and_test(lp, units, nu, agree, ratio);
            if (rc < 0) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for error location");
            int ok = rc == 1;
            for (int p = 0; ok && p < P; p++)
                ok = agree[p] == !(t > 0 && flag[p]);
            if (ok) {
                memcpy(healthy, agree, (size_t)P * sizeof *agree);
                memcpy(rep->score, ratio, (size_t)P * sizeof *ratio);
                rep->method = t == 0 ? 0 : 1;
                rep->guaranteed = count(agree, P) >= majority;
                return TS_OK;
            }
        }
    }
    /* Algorithm A: consistency search over seeds of Q+1 units. */
    long tries = o && o->max_tries > 0 ? o->max_tries : 5000;
    long total = ts_code_num_sets(P, Q + 1, tries);
    int exhaustive = total <= tries, best = -1, seed[TS_CODE_MAX_WORKERS];
    if (Q + 1 > P)
        return ts_errorf(err, TS_ERR_INVALID,
                         "locating errors needs more than the threshold (%d) of responders, got %d",
                         Q, P);
    ts_rng r;
    ts_rng_seed(&r, o ? o->seed : 0);
    for (int i = 0; i <= Q; i++)
        seed[i] = i;
    for (long it = 0; it < (exhaustive ? total : tries); it++) {
        if (!exhaustive) {
            int pool[TS_CODE_MAX_WORKERS];
            for (int i = 0; i < P; i++)
                pool[i] = i;
            for (int i = 0; i <= Q; i++) {
                int j = i + (int)ts_rng_below(&r, (uint64_t)(P - i)), tmp = pool[i];
                pool[i] = pool[j], pool[j] = tmp;
            }
            memcpy(seed, pool, (size_t)(Q + 1) * sizeof *seed);
        }
        int rc = fit_and_test(lp, seed, Q + 1, agree, ratio);
        if (rc < 0) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for error location");
        int seed_ok = rc == 1;
        for (int i = 0; seed_ok && i <= Q; i++)
            seed_ok = agree[seed[i]];
        if (seed_ok) {
            /* refit on everything that agrees, then keep the largest set */
            int nu = 0;
            for (int p = 0; p < P; p++)
                if (agree[p]) units[nu++] = p;
            int agree2[TS_CODE_MAX_WORKERS];
            double ratio2[TS_CODE_MAX_WORKERS];
            if (fit_and_test(lp, units, nu, agree2, ratio2) == 1) {
                int ok = 1;
                for (int i = 0; ok && i < nu; i++)
                    ok = agree2[units[i]];
                if (ok) memcpy(agree, agree2, sizeof agree2), memcpy(ratio, ratio2, sizeof ratio2);
            }
            int c = count(agree, P);
            if (c > best) {
                best = c;
                memcpy(healthy, agree, (size_t)P * sizeof *agree);
                memcpy(rep->score, ratio, (size_t)P * sizeof *ratio);
            }
            if (best >= majority) break;
        }
        if (exhaustive && !next_subset(seed, Q + 1, P)) break;
    }
    rep->method = 2;
    if (best < Q + 1)
        return ts_errorf(err, TS_ERR_NUMERIC,
                         "no %d of the %d responses agree within round-off (eps %.2g): too many "
                         "wrong results to locate",
                         Q + 1, P, lp->eps);
    rep->guaranteed = best >= majority;
    return TS_OK;
}

static double default_eps(const ts_code *c, const ts_code_locate_opts *o) {
    if (o && o->rel_noise > 0) return o->rel_noise;
    int inner = o && o->inner > 0 ? o->inner : 1;
    return ldexp(1.0, -24) * (inner + c->na + c->nb + 1);
}

ts_status ts_code_locate(ts_code *c, const int *resp, int n_resp, const float *const *products,
                         size_t len, const ts_code_locate_opts *opt, ts_code_locate_report *rep,
                         ts_err *err) {
    if (!c || !rep) return ts_errorf(err, TS_ERR_INVALID, "locate needs a code and a report");
    memset(rep, 0, sizeof *rep);
    if (!products) return ts_errorf(err, TS_ERR_INVALID, "locate needs products");
    if (len == 0) return ts_errorf(err, TS_ERR_INVALID, "cannot check zero-length products");
    TS_TRY(ts_code_check_responders(c, resp, n_resp, c->threshold + 1, err));
    int per = c->qa * c->qb;
    for (int r = 0; r < n_resp * per; r++)
        if (!products[r]) return ts_errorf(err, TS_ERR_INVALID, "locate: product %d is NULL", r);
    double *map = malloc((size_t)n_resp * per * c->nunk * sizeof *map);
    if (!map) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for error location");
    for (int r = 0; r < n_resp; r++)
        memcpy(map + (size_t)r * per * c->nunk, c->w + (size_t)resp[r] * per * c->nunk,
               (size_t)per * c->nunk * sizeof *map);
    loc_problem lp = {.map = map,
                      .P = n_resp,
                      .per = per,
                      .U = c->nunk,
                      .Q = c->threshold,
                      .rows = (const void *const *)products,
                      .len = len,
                      .eps = default_eps(c, opt)};
    int healthy[TS_CODE_MAX_WORKERS];
    ts_status st = locate(&lp, opt, rep, healthy, err);
    if (st == TS_OK)
        for (int r = 0; r < n_resp; r++)
            if (!healthy[r]) rep->bad[rep->n_bad++] = resp[r];
    free(map);
    free(lp.rown2);
    free(lp.mnorm);
    return st;
}

ts_status ts_code_decode_robust(ts_code *c, const int *resp, int n_resp,
                                const float *const *products, size_t len, float *const *targets,
                                const ts_code_locate_opts *opt, ts_code_locate_report *rep,
                                double *cond, ts_err *err) {
    ts_code_locate_report local;
    if (!rep) rep = &local;
    TS_TRY(ts_code_locate(c, resp, n_resp, products, len, opt, rep, err));
    int per = c->qa * c->qb, good[TS_CODE_MAX_WORKERS], ng = 0;
    const float **pp = malloc((size_t)n_resp * per * sizeof *pp);
    if (!pp) return ts_errorf(err, TS_ERR_NOMEM, "out of memory for decoding");
    for (int r = 0; r < n_resp; r++) {
        int bad = 0;
        for (int b = 0; b < rep->n_bad; b++)
            bad |= rep->bad[b] == resp[r];
        if (bad) continue;
        for (int q = 0; q < per; q++)
            pp[ng * per + q] = products[r * per + q];
        good[ng++] = resp[r];
    }
    ts_status st = ts_code_decode(c, good, ng, pp, len, targets, cond, err);
    free(pp);
    return st;
}

/* ---- stored shares ------------------------------------------------------ */

static ts_status share_problem(const ts_code *c, int operand, const float *const *shares,
                               size_t len, const ts_code_locate_opts *opt, loc_problem *lp,
                               ts_err *err) {
    if (operand != 0 && operand != 1)
        return ts_errorf(err, TS_ERR_INVALID, "operand must be 0 (A) or 1 (B), not %d", operand);
    if (!shares) return ts_errorf(err, TS_ERR_INVALID, "share check needs the shares");
    if (len == 0) return ts_errorf(err, TS_ERR_INVALID, "cannot check zero-length shares");
    int q = operand ? c->qb : c->qa, nblk = operand ? c->nb : c->na;
    for (int r = 0; r < c->n * q; r++)
        if (!shares[r]) return ts_errorf(err, TS_ERR_INVALID, "share %d is NULL", r);
    /* units that determine the blocks: ceil(nblk / q) for a generic code */
    int Q = (nblk + q - 1) / q;
    if (Q + 1 > c->n)
        return ts_errorf(err, TS_ERR_INVALID,
                         "the %s shares of this code have no redundancy to check (%d workers, %d "
                         "needed)",
                         operand ? "B" : "A", c->n, Q);
    double eps = opt && opt->rel_noise > 0 ? opt->rel_noise : ldexp(1.0, -24) * (nblk + 1);
    *lp = (loc_problem){.map = operand ? c->gb : c->ga,
                        .P = c->n,
                        .per = q,
                        .U = nblk,
                        .Q = Q,
                        .rows = (const void *const *)shares,
                        .len = len,
                        .eps = eps};
    return TS_OK;
}

ts_status ts_code_check_shares(const ts_code *c, int operand, const float *const *shares,
                               size_t len, const ts_code_locate_opts *opt,
                               ts_code_locate_report *rep, ts_err *err) {
    if (!c || !rep) return ts_errorf(err, TS_ERR_INVALID, "share check needs a code and a report");
    memset(rep, 0, sizeof *rep);
    loc_problem lp;
    TS_TRY(share_problem(c, operand, shares, len, opt, &lp, err));
    int healthy[TS_CODE_MAX_WORKERS];
    ts_status st = locate(&lp, opt, rep, healthy, err);
    if (st == TS_OK)
        for (int p = 0; p < c->n; p++)
            if (!healthy[p]) rep->bad[rep->n_bad++] = p;
    free(lp.rown2);
    free(lp.mnorm);
    return st;
}

ts_status ts_code_rebuild_share(const ts_code *c, int operand, int worker, const int *healthy,
                                int n_healthy, const float *const *shares, size_t len,
                                float *const *out, ts_err *err) {
    if (!c || !healthy || !out)
        return ts_errorf(err, TS_ERR_INVALID, "rebuild needs its arguments");
    if (worker < 0 || worker >= c->n)
        return ts_errorf(err, TS_ERR_INVALID, "worker %d is not one of the %d workers", worker,
                         c->n);
    loc_problem lp;
    TS_TRY(share_problem(c, operand, shares, len, NULL, &lp, err));
    TS_TRY(ts_code_check_responders(c, healthy, n_healthy, lp.Q, err));
    for (int i = 0; i < n_healthy; i++)
        if (healthy[i] == worker)
            return ts_errorf(err, TS_ERR_INVALID, "worker %d cannot rebuild from its own share",
                             worker);
    int q = lp.per, U = lp.U;
    int *ridx = malloc((size_t)n_healthy * q * sizeof *ridx);
    if (!ridx) return ts_errorf(err, TS_ERR_NOMEM, "out of memory rebuilding a share");
    int RT = unit_rows(&lp, healthy, n_healthy, ridx);
    double *mt = malloc((size_t)RT * U * sizeof *mt), *u = malloc((size_t)RT * RT * sizeof *u);
    double *s = malloc((size_t)(RT < U ? RT : U) * sizeof *s + 8),
           *vt = malloc((size_t)U * U * sizeof *vt);
    double *pinv = calloc((size_t)U * RT, sizeof *pinv), *L = malloc((size_t)q * RT * sizeof *L);
    double *yt = malloc((size_t)RT * LOC_CHUNK * sizeof *yt),
           *o = malloc((size_t)q * LOC_CHUNK * sizeof *o);
    ts_status st = TS_OK;
    if (!mt || !u || !s || !vt || !pinv || !L || !yt || !o) {
        st = ts_errorf(err, TS_ERR_NOMEM, "out of memory rebuilding a share");
        goto done;
    }
    for (int r = 0; r < RT; r++)
        memcpy(mt + (size_t)r * U, lp.map + (size_t)ridx[r] * U, (size_t)U * sizeof *mt);
    if (!ts_la_svd(mt, RT, U, u, s, vt) || RT < U ||
        !(s[U - 1] > s[0] * (RT > U ? RT : U) * DBL_EPSILON)) {
        st = ts_errorf(err, TS_ERR_NUMERIC,
                       "the %d healthy workers given do not determine the blocks; add workers",
                       n_healthy);
        goto done;
    }
    if (!pinv_from_svd(u, s, vt, RT, U, pinv)) {
        st = ts_errorf(err, TS_ERR_NOMEM, "out of memory rebuilding a share");
        goto done;
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q, RT, U, 1.0,
                lp.map + (size_t)worker * q * U, U, pinv, RT, 0.0, L, RT);
    for (size_t x0 = 0; x0 < len; x0 += LOC_CHUNK) {
        int nx = (int)(len - x0 < LOC_CHUNK ? len - x0 : LOC_CHUNK);
        load_rows(&lp, ridx, RT, x0, nx, yt);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q, nx, RT, 1.0, L, RT, yt, LOC_CHUNK,
                    0.0, o, LOC_CHUNK);
        for (int a = 0; a < q; a++)
            for (int x = 0; x < nx; x++)
                out[a][x0 + x] = (float)o[(size_t)a * LOC_CHUNK + x];
    }
done:
    free(mt), free(u), free(s), free(vt), free(pinv), free(L), free(yt), free(o), free(ridx);
    return st;
}
